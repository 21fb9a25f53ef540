//! Loading a speech file the way the reference's `audio.load_wav(path, 16000)` does
//! (`librosa.load(path, sr=16000)`): decode, average the channels, resample to 16 kHz.
//!
//! Decoding is in-process with symphonia (WAV, FLAC, MP3, OGG/Vorbis, MP4/M4A with AAC-LC).
//! Integer PCM becomes `f32` as libsndfile does it (`s / 2^(bits-1)`), so a 16 kHz mono WAV comes
//! out bit-identical to librosa's. MP3 encoder delay/padding is removed from the LAME tag
//! (symphonia's gapless mode), Vorbis from the granule positions, and AAC priming from the MP4
//! edit list (see [`crate::mp4`]). AAC is then rounded to 16 bits, as the reference's audioread
//! fallback delivers it (see `quantize_like_audioread`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::codecs::audio::well_known as ids;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use crate::error::{AudioError, AudioWarning};
use crate::mp4;
use crate::resample::resample;

/// The sample rate the models take.
pub const SAMPLE_RATE: u32 = 16_000;
/// Video frames per second.
pub const FPS: u32 = 25;
/// Samples per video frame at 16 kHz.
pub const SAMPLES_PER_FRAME: usize = (SAMPLE_RATE / FPS) as usize;
/// Peak level under which audio counts as silent (−60 dBFS).
pub const SILENCE_PEAK: f32 = 1e-3;
/// Lowest sample rate read (telephone audio is 8 kHz; nothing intelligible is recorded below 1 kHz).
pub const MIN_SAMPLE_RATE: u32 = 1_000;
/// Highest sample rate read (the highest PCM rate of studio interfaces).
pub const MAX_SAMPLE_RATE: u32 = 384_000;
/// Default duration limit: ten minutes (15 000 video frames). Everything downstream holds the
/// whole clip in memory, and rendering that many frames already takes hours on a CPU.
pub const DEFAULT_MAX_SECONDS: f64 = 600.0;

/// Options of [`load_speech`].
#[derive(Clone, Debug, PartialEq)]
pub struct LoadOptions {
    /// Refuse audio longer than this many seconds.
    pub max_seconds: f64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            max_seconds: DEFAULT_MAX_SECONDS,
        }
    }
}

/// What the file was.
#[derive(Clone, Debug, PartialEq)]
pub struct SourceInfo {
    /// Codec name (`pcm`, `flac`, `mp3`, `vorbis`, `aac`, ...).
    pub codec: String,
    /// Native sample rate.
    pub sample_rate: u32,
    /// Channels in the file.
    pub channels: usize,
    /// Samples per channel after removing encoder delay/padding, at the native rate.
    pub frames: u64,
    /// Encoder priming removed at the start (samples at the native rate) by the MP4 edit list or
    /// `iTunSMPB`; MP3/Vorbis delay is removed inside the decoder and not counted here.
    pub priming_removed: u64,
    /// Encoder padding removed at the end (samples at the native rate), same scope as above.
    pub padding_removed: u64,
}

/// Decoded audio at its native rate, channels kept apart.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded {
    /// One vector per channel.
    pub channels: Vec<Vec<f32>>,
    /// The file's description.
    pub info: SourceInfo,
    /// Recoverable problems met while decoding.
    pub warnings: Vec<AudioWarning>,
}

/// A speech clip ready for the mel front end: mono, 16 kHz.
#[derive(Clone, Debug, PartialEq)]
pub struct Speech {
    /// Samples in `[-1, 1]`, 16 kHz.
    pub samples: Vec<f32>,
    /// The file's description.
    pub source: SourceInfo,
    /// Things worth telling the user (silence, skipped packets).
    pub warnings: Vec<AudioWarning>,
}

impl Speech {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SAMPLE_RATE)
    }
}

/// Loads a speech file as `librosa.load(path, sr=16000)` does (decode, channel mean, resample),
/// refusing files that are unreadable, unsupported, truncated, empty, shorter than one video frame,
/// longer than `opts.max_seconds` or holding NaN/infinite samples, and warning about silence.
pub fn load_speech(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Speech, AudioError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let decoded = decode_file(path, opts.max_seconds)?;
    speech_from_decoded(decoded, &name)
}

/// Mono 16 kHz speech from decoded audio, with the length checks of [`load_speech`].
pub fn speech_from_decoded(decoded: Decoded, source_name: &str) -> Result<Speech, AudioError> {
    let Decoded {
        channels,
        info,
        mut warnings,
    } = decoded;
    if channels.first().is_none_or(|c| c.is_empty()) {
        return Err(AudioError::Empty {
            source_name: source_name.to_string(),
        });
    }
    if let Some(at) = channels
        .iter()
        .flat_map(|c| c.iter().position(|v| !v.is_finite()))
        .min()
    {
        let count = channels.iter().flatten().filter(|v| !v.is_finite()).count();
        return Err(AudioError::NonFinite {
            source_name: source_name.to_string(),
            count,
            first_seconds: at as f64 / f64::from(info.sample_rate.max(1)),
        });
    }
    let mono = to_mono(&channels);
    drop(channels);
    let samples = resample(&mono, info.sample_rate, SAMPLE_RATE)?;
    if samples.len() < SAMPLES_PER_FRAME {
        return Err(AudioError::TooShort {
            source_name: source_name.to_string(),
            seconds: mono.len() as f64 / f64::from(info.sample_rate),
            min_seconds: 1.0 / f64::from(FPS),
        });
    }
    let peak = samples.iter().fold(0f32, |m, &v| m.max(v.abs()));
    if peak < SILENCE_PEAK {
        warnings.push(AudioWarning::Silent { peak });
    }
    Ok(Speech {
        samples,
        source: info,
        warnings,
    })
}

/// The channel mean, as librosa's `to_mono` (`np.mean(y, axis=0)` in `float32`): the first
/// channel plus the sum of the others, divided by the channel count.
pub fn to_mono(channels: &[Vec<f32>]) -> Vec<f32> {
    match channels {
        [] => Vec::new(),
        [only] => only.clone(),
        [first, rest @ ..] => {
            let n = channels.len() as f32;
            (0..first.len())
                .map(|i| {
                    let others = rest.iter().fold(0f32, |s, c| s + c[i]);
                    (first[i] + others) / n
                })
                .collect()
        }
    }
}

/// Decodes a file to planar `f32` at its native rate, stopping with [`AudioError::TooLong`] once
/// more than `max_seconds` have been decoded (or the container declares more).
pub fn decode_file(path: &Path, max_seconds: f64) -> Result<Decoded, AudioError> {
    let name = path.display().to_string();
    let open = |path: &Path| {
        File::open(path).map_err(|source| AudioError::Open {
            path: path.to_path_buf(),
            source,
        })
    };
    let mut file = open(path)?;
    let mut head = [0u8; 12];
    let head_len = read_head(&mut file, &mut head).map_err(|source| AudioError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let head = &head[..head_len];
    let is_mp4 = mp4::looks_like_mp4(head);
    let known_container = container_name(head);

    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    let mss = MediaSourceStream::new(Box::new(file), Default::default());
    // Symphonia has panicked on crafted headers (found by fuzzing: a WAVE_FORMAT_EXTENSIBLE channel
    // mask overflows a shift in `fix_wave_channel_mask`, riff 0.6.1). A decoder panic is about the
    // file, not our state: report it as a damaged file rather than crash the run or the batch.
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decode_stream(mss, &hint, &name, max_seconds, known_container)
    }));
    let mut decoded = match decoded {
        Ok(result) => result?,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            return Err(AudioError::Corrupt {
                source_name: name,
                detail: format!("the decoder failed on its headers: {what}"),
            });
        }
    };

    if is_mp4 && decoded.info.codec == "aac" {
        let mut file = open(path)?;
        let trim = mp4::read_trim(&mut file, decoded.info.sample_rate).map_err(|source| AudioError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(trim) = trim {
            // The limit applies to what the edit list makes of the audio: an empty edit inserts
            // silence, so a crafted edit could otherwise ask for hundreds of gigabytes.
            let effective = trimmed_len(&decoded, &trim);
            let max_frames = max_frames(max_seconds, decoded.info.sample_rate);
            if effective > max_frames {
                return Err(AudioError::TooLong {
                    source_name: name,
                    seconds: effective as f64 / f64::from(decoded.info.sample_rate),
                    max_seconds,
                });
            }
            apply_trim(&mut decoded, &trim);
        }
    }
    if decoded.info.codec == "aac" {
        quantize_like_audioread(&mut decoded.channels);
    }
    Ok(decoded)
}

/// The container a file's first bytes announce, if it is one the decoder knows.
fn container_name(head: &[u8]) -> Option<&'static str> {
    if head.len() >= 12 && &head[0..4] == b"RIFF" && &head[8..12] == b"WAVE" {
        Some("WAV")
    } else if head.starts_with(b"fLaC") {
        Some("FLAC")
    } else if head.starts_with(b"OggS") {
        Some("OGG")
    } else if mp4::looks_like_mp4(head) {
        Some("MP4")
    } else if head.starts_with(b"ID3") || (head.len() >= 2 && head[0] == 0xff && head[1] & 0xe0 == 0xe0) {
        Some("MP3")
    } else {
        None
    }
}

fn read_head(file: &mut File, head: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    file.seek(SeekFrom::Start(0))?;
    Ok(n)
}

/// The reference cannot read AAC with libsndfile, so `librosa.load` falls back to audioread, which
/// pipes ffmpeg's output as 16-bit PCM (`-f s16le`, converted with `lrintf(x · 32768)` and
/// clipping). Rounding our float decode the same way reproduces that quantisation, which matters
/// in quiet passages: without it the mel of the M4A fixture differed ~10× more from the
/// reference's (mean 6e-4 vs 5e-5), the error coming from the reference's 16-bit rounding.
fn quantize_like_audioread(channels: &mut [Vec<f32>]) {
    for v in channels.iter_mut().flat_map(|c| c.iter_mut()) {
        *v = (*v * 32768.0).round_ties_even().clamp(-32768.0, 32767.0) / 32768.0;
    }
}

/// The most samples (per channel, at `rate`) that `max_seconds` allows.
fn max_frames(max_seconds: f64, rate: u32) -> u64 {
    // `as` saturates: an infinite or huge limit gives `u64::MAX`, a negative or NaN one 0.
    (max_seconds * f64::from(rate)).ceil() as u64
}

/// `(skip, keep)` of a trim over `total` decoded samples, clamped to what was decoded.
fn trim_bounds(total: u64, trim: &mp4::Mp4Trim) -> (u64, u64) {
    let skip = trim.skip.min(total);
    let available = total - skip;
    (skip, trim.keep.map_or(available, |k| k.min(available)))
}

/// The length (samples per channel) the audio will have once `trim` is applied.
fn trimmed_len(decoded: &Decoded, trim: &mp4::Mp4Trim) -> u64 {
    let total = decoded.channels.first().map_or(0, Vec::len) as u64;
    trim.leading_silence.saturating_add(trim_bounds(total, trim).1)
}

/// Applies an edit-list trim; the caller has bounded [`trimmed_len`] first.
fn apply_trim(decoded: &mut Decoded, trim: &mp4::Mp4Trim) {
    let total = decoded.channels.first().map_or(0, Vec::len) as u64;
    let (skip, keep) = trim_bounds(total, trim);
    let available = total - skip;
    for ch in &mut decoded.channels {
        let mut kept: Vec<f32> = vec![0.0; usize::try_from(trim.leading_silence).unwrap_or(usize::MAX)];
        kept.extend_from_slice(&ch[skip as usize..(skip + keep) as usize]);
        *ch = kept;
    }
    decoded.info.priming_removed = skip;
    decoded.info.padding_removed = available - keep;
    decoded.info.frames = trim.leading_silence + keep;
}

/// A name for codecs the decoder lacks, for the error message.
fn codec_name(id: symphonia::core::codecs::audio::AudioCodecId) -> String {
    let known = [
        (ids::CODEC_ID_OPUS, "Opus"),
        (ids::CODEC_ID_SPEEX, "Speex"),
        (ids::CODEC_ID_AC3, "AC-3"),
        (ids::CODEC_ID_EAC3, "E-AC-3"),
        (ids::CODEC_ID_DCA, "DTS"),
        (ids::CODEC_ID_WMA, "WMA"),
        (ids::CODEC_ID_ALAC, "ALAC"),
        (ids::CODEC_ID_MP1, "MP1"),
        (ids::CODEC_ID_MP2, "MP2"),
    ];
    known
        .iter()
        .find(|(k, _)| *k == id)
        .map_or_else(|| format!("codec id {id}"), |(_, n)| (*n).to_string())
}

fn decode_stream(
    mss: MediaSourceStream<'_>,
    hint: &Hint,
    name: &str,
    max_seconds: f64,
    container: Option<&'static str>,
) -> Result<Decoded, AudioError> {
    let corrupt = |detail: String| AudioError::Corrupt {
        source_name: name.to_string(),
        detail,
    };
    let mut format = symphonia::default::get_probe()
        .probe(hint, mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| match (e, container) {
            (SymError::IoError(io), _) if io.kind() != std::io::ErrorKind::UnexpectedEof => corrupt(io.to_string()),
            // The file announces a container we read, yet it does not open: say why.
            (SymError::Unsupported(what), Some(kind)) if what.contains("missing") => {
                corrupt(format!("{kind} file: {what}; was it cut short?"))
            }
            (SymError::Unsupported(what), Some(kind)) => AudioError::UnsupportedCodec {
                source_name: name.to_string(),
                codec: format!("{what} in a {kind} file"),
            },
            (SymError::IoError(_), Some(kind)) => corrupt(format!(
                "the {kind} file ends before its headers are complete, or misses its index"
            )),
            (other, Some(kind)) => corrupt(format!("{kind} headers: {other}")),
            (_, None) => AudioError::UnrecognizedFormat {
                source_name: name.to_string(),
            },
        })?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| AudioError::NoAudioTrack {
            source_name: name.to_string(),
        })?;
    let track_id = track.id;
    let declared_frames = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .cloned()
        .ok_or_else(|| AudioError::NoAudioTrack {
            source_name: name.to_string(),
        })?;
    let rate = params
        .sample_rate
        .filter(|&r| r > 0)
        .ok_or_else(|| AudioError::NoSampleRate {
            source_name: name.to_string(),
        })?;
    // The resampler's filter grows with the rate ratio (its length and table are sized by
    // `rate / 16000`): a header claiming 2 GHz asked for a 140 GB table. Real recordings are
    // 8–192 kHz; refuse what no audio interface records.
    if !(MIN_SAMPLE_RATE..=MAX_SAMPLE_RATE).contains(&rate) {
        return Err(AudioError::BadSampleRate {
            source_name: name.to_string(),
            rate,
        });
    }
    let too_long = |frames: u64| AudioError::TooLong {
        source_name: name.to_string(),
        seconds: frames as f64 / f64::from(rate),
        max_seconds,
    };
    let max_frames = max_frames(max_seconds, rate);
    // A header that announces more than the limit is not trusted on its own: a damaged or crafted
    // one (a WAV `data` size past the end of the file) is not "too long" but truncated. Decoding
    // stops at the limit anyway, so memory stays bounded by `max_seconds` whatever it claims; the
    // end of the loop tells the two cases apart.
    let declared_over_limit = track.num_frames.filter(|&n| n > max_frames);
    let registry = symphonia::default::get_codecs();
    let codec = registry
        .get_audio_decoder(params.codec)
        .map(|d| d.codec.info.short_name.to_string());
    let mut decoder = registry
        .make_audio_decoder(&params, &AudioDecoderOptions::default())
        .map_err(|e| match (e, &codec) {
            (SymError::Unsupported(_), _) | (_, None) => AudioError::UnsupportedCodec {
                source_name: name.to_string(),
                codec: codec_name(params.codec),
            },
            (other, Some(_)) => corrupt(other.to_string()),
        })?;
    let codec = codec.unwrap_or_default();

    let mut channels: Vec<Vec<f32>> = Vec::new();
    let mut scratch: Vec<Vec<f32>> = Vec::new();
    let (mut skipped, mut first_error) = (0usize, None::<String>);
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // A chained OGG stream or a file cut short: keep what was decoded.
            Err(SymError::ResetRequired) => break,
            Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            // The container itself is damaged: what follows is lost, so refuse rather than
            // silently animate only the start of the speech.
            Err(e) => {
                let at = channels.first().map_or(0, Vec::len) as f64 / f64::from(rate);
                return Err(corrupt(format!("{e} after {at:.2} s")));
            }
        };
        if packet.track_id != track_id {
            continue;
        }
        match decoder.decode(&packet) {
            Ok(buf) => {
                buf.copy_to_vecs_planar::<f32>(&mut scratch);
                if channels.is_empty() {
                    channels = vec![Vec::new(); scratch.len()];
                }
                if scratch.len() != channels.len() {
                    return Err(corrupt(format!(
                        "the channel count changes mid-stream ({} → {})",
                        channels.len(),
                        scratch.len()
                    )));
                }
                for (dst, src) in channels.iter_mut().zip(&scratch) {
                    dst.extend_from_slice(src);
                }
                let frames = channels[0].len() as u64;
                if frames > max_frames {
                    return Err(too_long(frames));
                }
            }
            Err(SymError::DecodeError(m)) => {
                skipped += 1;
                first_error.get_or_insert_with(|| m.to_string());
            }
            Err(SymError::IoError(e)) => {
                skipped += 1;
                first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => return Err(corrupt(e.to_string())),
        }
    }
    let frames = channels.first().map_or(0, Vec::len) as u64;
    if let Some(declared) = declared_over_limit {
        return Err(AudioError::Truncated {
            source_name: name.to_string(),
            decoded_seconds: frames as f64 / f64::from(rate),
            declared_seconds: declared as f64 / f64::from(rate),
        });
    }
    let mut warnings = Vec::new();
    if skipped > 0 {
        if frames == 0 {
            return Err(corrupt(first_error.unwrap_or_else(|| "no packet decodes".to_string())));
        }
        warnings.push(AudioWarning::SkippedPackets {
            count: skipped,
            first_error: first_error.unwrap_or_default(),
        });
    }
    if let Some(declared) = declared_frames
        && frames > 0
        && frames + u64::from(rate / 10) < declared
    {
        warnings.push(AudioWarning::Truncated {
            decoded_seconds: frames as f64 / f64::from(rate),
            declared_seconds: declared as f64 / f64::from(rate),
        });
    }
    let n_channels = channels.len().max(params.channels.as_ref().map_or(0, |c| c.count()));
    Ok(Decoded {
        channels,
        info: SourceInfo {
            codec,
            sample_rate: rate,
            channels: n_channels,
            frames,
            priming_removed: 0,
            padding_removed: 0,
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mono_is_the_float32_mean() {
        let l = vec![0.5f32, 1.0, -0.25];
        let r = vec![0.25f32, -1.0, 0.125];
        assert_eq!(to_mono(&[l.clone(), r]), vec![0.375, 0.0, -0.0625]);
        assert_eq!(to_mono(std::slice::from_ref(&l)), l);
    }
}
