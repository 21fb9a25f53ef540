//! Tests that need the crate's internals: the MP4 index we write, and the audio decoded back through
//! our own demuxer (so A/V sync is checked even where ffmpeg is not installed).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::mp4::demux::{TrackTable, read_tracks};
use crate::{Audio, Frame, Mp4Writer, VideoSettings};

/// Deterministic noise in [-1, 1] (a 32-bit LCG): reproducible without a `rand` dependency.
fn noise(seed: &mut u32) -> f32 {
    *seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
    (*seed >> 8) as f32 / (1u32 << 23) as f32 - 1.0
}

/// Speech-like test audio: low-passed noise bursts (energy mostly below 4 kHz, as in speech) of varying
/// level separated by silence, so that a shift of even one sample changes its alignment with the original.
pub(crate) fn burst_audio(frames: usize, channels: usize, sample_rate: u32) -> Vec<f32> {
    let mut seed = 7u32;
    let burst = sample_rate as usize / 20;
    // One-pole low-pass with a ~2 kHz corner whatever the sample rate.
    let k = 1.0 - (-2.0 * std::f32::consts::PI * 2000.0 / sample_rate as f32).exp();
    let mut state = 0.0f32;
    (0..frames)
        .flat_map(|i| {
            let on = (i / burst) % 3 != 2;
            let level = 0.4 + 0.2 * ((i / burst) % 4) as f32;
            state += k * (noise(&mut seed) - state);
            let s = if on { level * state } else { 0.0 };
            (0..channels).map(move |c| if c == 0 { s } else { -0.5 * s })
        })
        .collect()
}

/// Writes `n` small frames with `audio`, returning the file's path inside `dir`.
fn write_clip(dir: &Path, n: u32, audio: Audio<'_>) -> std::path::PathBuf {
    let path = dir.join("clip.mp4");
    let mut w = Mp4Writer::create(&path, VideoSettings::default(), Some(audio)).expect("create");
    let mut rgb = vec![0u8; 64 * 48 * 3];
    for t in 0..n {
        for (i, px) in rgb.iter_mut().enumerate() {
            *px = ((i as u32 * 7 + t * 5) % 251) as u8;
        }
        w.write_frame(Frame {
            width: 64,
            height: 48,
            rgb: &rgb,
        })
        .expect("frame");
    }
    w.finish().expect("finish");
    path
}

fn tracks(path: &Path) -> (u32, Vec<TrackTable>) {
    let mut f = File::open(path).expect("open");
    read_tracks(&mut f).expect("demux")
}

#[test]
fn index_describes_what_was_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sr = 16_000;
    let audio = burst_audio(sr as usize * 2 + 123, 1, sr);
    let path = write_clip(dir.path(), 30, Audio::mono(&audio, sr));
    let (movie_timescale, tracks) = tracks(&path);
    assert_eq!(tracks.len(), 2);
    let video = &tracks[0];
    assert_eq!(&video.handler, b"vide");
    assert_eq!(&video.code, b"avc1");
    assert_eq!(video.samples.len(), 30);
    assert_eq!(video.duration as f64 / f64::from(video.timescale), 30.0 / 25.0);
    let audio_track = &tracks[1];
    assert_eq!(&audio_track.handler, b"soun");
    assert_eq!(audio_track.timescale, sr);
    let (segment, media_time) = audio_track.edit.expect("audio edit list");
    // The presented audio lasts exactly as long as the video: 30 frames = 1.2 s.
    assert_eq!(segment, u64::from(movie_timescale) * 12 / 10);
    if cfg!(feature = "aac") {
        assert!(media_time > 0, "the AAC encoder delay must be skipped");
    } else {
        assert_eq!(media_time, 0, "FLAC has no encoder delay");
    }
    // The media covers priming + presentation.
    assert!(audio_track.duration >= media_time as u64 + u64::from(sr) * 12 / 10);
}

#[cfg(feature = "aac")]
mod aac_sync {
    use symphonia_codec_aac::AacDecoder;
    use symphonia_core::audio::SampleBuffer;
    use symphonia_core::codecs::{CODEC_TYPE_AAC, CodecParameters, Decoder, DecoderOptions};
    use symphonia_core::formats::Packet;

    use super::*;

    /// Extracts the AudioSpecificConfig from an `mp4a` sample entry (its `esds` box).
    fn audio_specific_config(entry: &[u8]) -> Vec<u8> {
        // mp4a: 28 bytes of AudioSampleEntry fields, then the esds box; inside, descriptor tag 5 holds it.
        let esds = &entry[28..];
        let pos = esds.iter().position(|&b| b == 0x05).expect("DecoderSpecificInfo tag");
        let mut i = pos + 1;
        let mut len = 0usize;
        loop {
            let b = esds[i];
            len = (len << 7) | usize::from(b & 0x7f);
            i += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        esds[i..i + len].to_vec()
    }

    /// Decodes the audio track as a player does, with an independent decoder (Symphonia's): all
    /// access units, then the edit list applied.
    fn decode_presented(path: &Path, channels: usize) -> Vec<f32> {
        let (movie_timescale, tracks) = tracks(path);
        let track = tracks.iter().find(|t| &t.handler == b"soun").expect("audio track");
        let mut params = CodecParameters::new();
        params
            .for_codec(CODEC_TYPE_AAC)
            .with_sample_rate(track.timescale)
            .with_extra_data(audio_specific_config(&track.entry).into_boxed_slice());
        let mut decoder = AacDecoder::try_new(&params, &DecoderOptions::default()).expect("decoder");
        let mut file = File::open(path).expect("open");
        let mut pcm = Vec::new();
        for (i, &(offset, size)) in track.samples.iter().enumerate() {
            let mut buf = vec![0u8; size as usize];
            file.seek(SeekFrom::Start(offset)).expect("seek");
            file.read_exact(&mut buf).expect("read");
            let decoded = decoder
                .decode(&Packet::new_from_slice(0, i as u64 * 1024, 1024, &buf))
                .expect("decode");
            let mut samples = SampleBuffer::<f32>::new(decoded.capacity() as u64, *decoded.spec());
            samples.copy_interleaved_ref(decoded);
            pcm.extend_from_slice(samples.samples());
        }
        let (segment, media_time) = track.edit.expect("edit list");
        let start = media_time as usize * channels;
        let len = (segment * u64::from(track.timescale) / u64::from(movie_timescale)) as usize * channels;
        pcm[start..start + len].to_vec()
    }

    /// The lag (in samples) at which `decoded` best matches `input` on channel 0, searched over
    /// ±`max_lag`, and the normalised correlation there.
    pub(crate) fn best_lag(input: &[f32], decoded: &[f32], channels: usize, max_lag: i64) -> (i64, f64) {
        let a: Vec<f64> = input.iter().step_by(channels).map(|&v| f64::from(v)).collect();
        let b: Vec<f64> = decoded.iter().step_by(channels).map(|&v| f64::from(v)).collect();
        let n = a.len().min(b.len()) as i64;
        let mut best = (0, f64::MIN);
        for lag in -max_lag..=max_lag {
            let (mut dot, mut ea, mut eb) = (0.0, 0.0, 0.0);
            for i in max_lag..n - max_lag {
                let (x, y) = (a[i as usize], b[(i + lag) as usize]);
                dot += x * y;
                ea += x * x;
                eb += y * y;
            }
            let r = dot / (ea * eb).sqrt().max(1e-12);
            if r > best.1 {
                best = (lag, r);
            }
        }
        best
    }

    /// Audio decoded from our file lines up with the input to the sample: the edit list removes exactly
    /// the encoder's priming. (A wrong priming of even one AAC frame would show as a lag of 1024.)
    #[test]
    fn aac_track_is_sample_aligned_with_input() {
        for (sr, channels) in [(16_000u32, 1usize), (44_100, 2), (48_000, 1)] {
            let dir = tempfile::tempdir().expect("tempdir");
            let audio = burst_audio(sr as usize, channels, sr);
            let path = write_clip(
                dir.path(),
                25,
                Audio {
                    samples: &audio,
                    sample_rate: sr,
                    channels: channels as u16,
                },
            );
            let decoded = decode_presented(&path, channels);
            let (_, tables) = tracks(&path);
            let priming = tables
                .iter()
                .find_map(|t| t.edit.filter(|_| &t.handler == b"soun"))
                .map(|e| e.1);
            println!("{sr} Hz x{channels}: AAC priming skipped by the edit list: {priming:?} samples");
            assert_eq!(decoded.len(), audio.len(), "{sr} Hz: presented length");
            let (lag, r) = best_lag(&audio, &decoded, channels, 1100);
            println!("{sr} Hz x{channels}: decoded audio lag {lag} samples, correlation {r:.4}");
            assert_eq!(lag, 0, "{sr} Hz: audio is shifted by {lag} samples");
            assert!(r > 0.9, "{sr} Hz: decoded audio does not resemble the input (r = {r})");
        }
    }
}

/// The FLAC track decodes (with an independent decoder, claxon) to exactly the input's 16-bit samples,
/// from the first sample: nothing shifted, nothing lost.
#[test]
fn flac_track_is_bit_exact_and_aligned() {
    use crate::{AudioCodec, audio::to_i16};

    let dir = tempfile::tempdir().expect("tempdir");
    let (sr, channels) = (22_050u32, 2usize);
    let audio = burst_audio(sr as usize, channels, sr);
    let path = dir.path().join("flac.mp4");
    let settings = VideoSettings {
        audio_codec: AudioCodec::Flac,
        ..VideoSettings::default()
    };
    let mut w = Mp4Writer::create(
        &path,
        settings,
        Some(Audio {
            samples: &audio,
            sample_rate: sr,
            channels: 2,
        }),
    )
    .expect("create");
    let rgb = vec![90u8; 32 * 32 * 3];
    for _ in 0..25 {
        w.write_frame(Frame {
            width: 32,
            height: 32,
            rgb: &rgb,
        })
        .expect("frame");
    }
    w.finish().expect("finish");

    let (_, tracks) = tracks(&path);
    let track = tracks.iter().find(|t| &t.handler == b"soun").expect("audio track");
    assert_eq!(&track.code, b"fLaC");
    assert_eq!(track.edit.map(|e| e.1), Some(0), "FLAC needs no priming skip");
    // Rebuild a native FLAC stream: "fLaC", the STREAMINFO block from `dfLa`, then the frames.
    // fLaC sample entry: 28 bytes of AudioSampleEntry, then the dfLa full box (8 header + 4 version/flags).
    let dfla = &track.entry[28..];
    assert_eq!(&dfla[4..8], b"dfLa");
    let mut stream = b"fLaC".to_vec();
    stream.extend_from_slice(&dfla[12..]);
    let mut file = File::open(&path).expect("open");
    for &(offset, size) in &track.samples {
        let mut buf = vec![0u8; size as usize];
        file.seek(SeekFrom::Start(offset)).expect("seek");
        file.read_exact(&mut buf).expect("read");
        stream.extend_from_slice(&buf);
    }
    let mut reader = claxon::FlacReader::new(std::io::Cursor::new(stream)).expect("valid FLAC");
    assert_eq!(reader.streaminfo().sample_rate, sr);
    let decoded: Vec<i32> = reader.samples().collect::<Result<_, _>>().expect("decode");
    let expected: Vec<i32> = audio.iter().map(|&s| i32::from(to_i16(s))).collect();
    assert!(decoded.len() >= expected.len());
    assert_eq!(
        &decoded[..expected.len()],
        &expected[..],
        "FLAC round trip must be exact"
    );
    assert!(
        decoded[expected.len()..].iter().all(|&s| s == 0),
        "only silence pads the last frame"
    );
}

/// A box: size, type, body.
fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(kind);
    v.extend_from_slice(body);
    v
}

/// A damaged H.264 stream (a NAL length past its sample, as a cut or corrupted copy has) is bad
/// input naming the file, not an internal "H.264 decoding failed" (exit code 1 at the CLI).
#[test]
fn damaged_h264_stream_names_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("clean.mp4");
    let mut w = Mp4Writer::create(&path, VideoSettings::default(), None).expect("create");
    let rgb = vec![90u8; 64 * 48 * 3];
    for _ in 0..3 {
        w.write_frame(Frame {
            width: 64,
            height: 48,
            rgb: &rgb,
        })
        .expect("frame");
    }
    w.finish().expect("finish");
    let mut bytes = std::fs::read(&path).expect("read");
    let (_, t) = tracks(&path);
    let first = t.iter().find(|t| &t.handler == b"vide").expect("video track").samples[0].0 as usize;
    bytes[first..first + 4].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    let damaged = dir.path().join("damaged.mp4");
    std::fs::write(&damaged, bytes).expect("write");

    let e = crate::read_video_with(&damaged, None).expect_err("a damaged stream");
    assert!(
        matches!(&e, crate::VideoError::DamagedVideo { path, .. } if *path == damaged),
        "{e:?}"
    );
    assert!(e.to_string().contains("damaged.mp4"), "{e}");
}

/// A fixed-size `stsz` claiming 2^28 samples in a file of a few hundred bytes is refused before its
/// table is allocated (it was a 1 GiB vector, then 4 GiB of sample positions).
#[test]
fn sample_count_is_bounded_by_the_file() {
    let mvhd = bx(
        b"mvhd",
        &[[0u8; 12].as_slice(), &1000u32.to_be_bytes(), &[0u8; 84]].concat(),
    );
    let hdlr = bx(b"hdlr", &[[0u8; 8].as_slice(), b"vide", &[0u8; 13]].concat());
    let mdhd = bx(
        b"mdhd",
        &[[0u8; 12].as_slice(), &25u32.to_be_bytes(), &[0u8; 8]].concat(),
    );
    let stsd = bx(
        b"stsd",
        &[[0u8; 4].as_slice(), &1u32.to_be_bytes(), &bx(b"avc1", &[0u8; 78])].concat(),
    );
    let stts = bx(b"stts", &[0u8; 8]);
    let stsz = bx(
        b"stsz",
        &[[0u8; 4].as_slice(), &1u32.to_be_bytes(), &0x0fff_ffffu32.to_be_bytes()].concat(),
    );
    let stco = bx(b"stco", &[0u8; 8]);
    let stsc = bx(b"stsc", &[0u8; 8]);
    let stbl = bx(b"stbl", &[stsd, stts, stsz, stco, stsc].concat());
    let mdia = bx(b"mdia", &[hdlr, mdhd, bx(b"minf", &stbl)].concat());
    let moov = bx(b"moov", &[mvhd, bx(b"trak", &mdia)].concat());
    let file = [bx(b"ftyp", b"isom\0\0\0\0"), moov, bx(b"mdat", &[0u8; 16])].concat();
    let e = read_tracks(&mut std::io::Cursor::new(file)).expect_err("refused");
    let msg = match e {
        crate::mp4::demux::DemuxError::Invalid(m) => m,
        other => panic!("{other:?}"),
    };
    assert!(msg.contains("'stsz'") && msg.contains("268435455"), "{msg}");
}

#[test]
fn frame_sizes_are_fitted_to_the_encoder() {
    use crate::{check_frame_size, fit_frame_size};
    assert_eq!(fit_frame_size(640, 480), (640, 480), "fits already");
    assert_eq!(fit_frame_size(7680, 4320), (3840, 2160));
    assert_eq!(fit_frame_size(3000, 6000), (1920, 3840), "portrait orientation");
    assert_eq!(fit_frame_size(8, 8), (16, 16));
    for (w, h) in [(7680, 4320), (3000, 6000), (5000, 100), (100, 9000), (8, 8), (10, 4000)] {
        let (fw, fh) = fit_frame_size(w, h);
        assert!(check_frame_size(fw, fh).is_ok(), "{w}x{h} -> {fw}x{fh}");
    }
    assert!(check_frame_size(4000, 3000).is_err());
}

#[test]
fn a_still_video_of_a_portrait_larger_than_the_encoder_takes_is_written_scaled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("still.mp4");
    let image = image::RgbImage::from_pixel(4400, 2200, image::Rgb([200, 120, 40]));
    let samples = vec![0.0f32; 640];
    let summary = crate::write_still_video(
        &path,
        &image,
        Audio::mono(&samples, 16_000),
        "test",
        VideoSettings::default(),
    )
    .expect("the fallback is written");
    assert_eq!((summary.width, summary.height), (3840, 1920));
    assert_eq!(summary.frames, 1);
}
