//! Errors and warnings of the audio front end.

use std::path::PathBuf;

use thiserror::Error;

/// Formats the decoder reads, for messages.
pub const SUPPORTED: &str = "WAV, FLAC, MP3, OGG/Vorbis and M4A/MP4 (AAC-LC)";

/// A speech file that cannot be used, or an internal failure of the front end.
#[derive(Debug, Error)]
pub enum AudioError {
    /// The file could not be opened or read.
    #[error("cannot read audio file {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// No supported container was recognised.
    #[error("{source_name}: not a recognised audio file (supported: {SUPPORTED}); convert it to WAV or FLAC")]
    UnrecognizedFormat {
        /// Where the audio came from.
        source_name: String,
    },
    /// The container holds no audio track.
    #[error("{source_name}: the file has no audio track")]
    NoAudioTrack {
        /// Where the audio came from.
        source_name: String,
    },
    /// The audio track uses a codec the decoder does not have.
    #[error("{source_name}: unsupported audio encoding: {codec} (supported: {SUPPORTED}); convert it to WAV or FLAC")]
    UnsupportedCodec {
        /// Where the audio came from.
        source_name: String,
        /// The codec, by name where known.
        codec: String,
    },
    /// The data is damaged: no packet could be decoded, or the stream broke off.
    #[error("{source_name}: the audio data is corrupt or truncated ({detail})")]
    Corrupt {
        /// Where the audio came from.
        source_name: String,
        /// What the decoder reported.
        detail: String,
    },
    /// The header announces more audio than the file holds (a cut-short or damaged file whose
    /// declared length is over the limit, e.g. a WAV `data` size past the end of the file).
    #[error(
        "{source_name}: the file is truncated or damaged: its header announces {declared_seconds:.1} s of audio \
         but it holds only {decoded_seconds:.2} s; re-export or re-download it"
    )]
    Truncated {
        /// Where the audio came from.
        source_name: String,
        /// Seconds that decode.
        decoded_seconds: f64,
        /// Seconds the header announces.
        declared_seconds: f64,
    },
    /// Samples that are NaN or infinite (a broken float WAV): no mel spectrogram can be made of them.
    #[error(
        "{source_name}: the audio holds {count} NaN or infinite sample(s), the first at {first_seconds:.3} s; \
         the file is damaged: re-export it (as 16-bit PCM WAV, e.g. `ffmpeg -i IN -c:a pcm_s16le out.wav`)"
    )]
    NonFinite {
        /// Where the audio came from.
        source_name: String,
        /// How many samples are not finite.
        count: usize,
        /// Where the first one is, in seconds.
        first_seconds: f64,
    },
    /// The file decodes to no samples at all.
    #[error("{source_name}: the file contains no audio samples")]
    Empty {
        /// Where the audio came from.
        source_name: String,
    },
    /// Shorter than one video frame: no frame could be generated.
    #[error(
        "{source_name}: the audio is {seconds:.3} s long, shorter than one video frame ({min_seconds} s at 25 fps); \
         give at least {min_seconds} s of speech"
    )]
    TooShort {
        /// Where the audio came from.
        source_name: String,
        /// Its duration.
        seconds: f64,
        /// The minimum.
        min_seconds: f64,
    },
    /// Longer than the configured limit.
    #[error(
        "{source_name}: the audio is {seconds:.1} s long, over the {max_seconds:.0} s limit; split it into shorter \
         clips (or raise the limit)"
    )]
    TooLong {
        /// Where the audio came from.
        source_name: String,
        /// Its duration (at least; decoding stops at the limit).
        seconds: f64,
        /// The limit.
        max_seconds: f64,
    },
    /// The container states a sample rate of zero or none.
    #[error("{source_name}: the audio track has no valid sample rate")]
    NoSampleRate {
        /// Where the audio came from.
        source_name: String,
    },
    /// A sample rate outside what recordings use (a damaged or crafted header).
    #[error(
        "{source_name}: the header gives a sample rate of {rate} Hz, outside the {} Hz to {} Hz of real recordings; \
         the file is damaged, or convert it: `ffmpeg -i IN -ar 16000 out.wav`",
        crate::decode::MIN_SAMPLE_RATE,
        crate::decode::MAX_SAMPLE_RATE
    )]
    BadSampleRate {
        /// Where the audio came from.
        source_name: String,
        /// The rate the header gives.
        rate: u32,
    },
    /// The resampler failed (a bug: please report it).
    #[error("resampling {from_rate} Hz → {to_rate} Hz failed: {detail}")]
    Resample {
        /// Input rate.
        from_rate: u32,
        /// Output rate.
        to_rate: u32,
        /// The resampler's message.
        detail: String,
    },
}

/// Something worth telling the user about an input that is still usable.
#[derive(Clone, Debug, PartialEq)]
pub enum AudioWarning {
    /// The audio is (near) silent: the face will barely move.
    Silent {
        /// Peak absolute sample value (full scale is 1.0).
        peak: f32,
    },
    /// The stream ends before the duration its header declares (a cut-short file).
    Truncated {
        /// Seconds decoded.
        decoded_seconds: f64,
        /// Seconds the header declares.
        declared_seconds: f64,
    },
    /// Some packets could not be decoded and were skipped (timing may shift there).
    SkippedPackets {
        /// How many.
        count: usize,
        /// The first decoder message.
        first_error: String,
    },
}

impl std::fmt::Display for AudioWarning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudioWarning::Silent { peak } if *peak > 0.0 => write!(
                f,
                "the audio is silent (peak {:.0} dBFS): the face will barely move",
                20.0 * peak.log10()
            ),
            AudioWarning::Silent { .. } => write!(f, "the audio is digital silence: the face will barely move"),
            AudioWarning::Truncated {
                decoded_seconds,
                declared_seconds,
            } => write!(
                f,
                "the file ends after {decoded_seconds:.2} s although its header announces {declared_seconds:.2} s; \
                 it may have been cut short"
            ),
            AudioWarning::SkippedPackets { count, first_error } => {
                write!(
                    f,
                    "{count} damaged audio packet(s) were skipped ({first_error}); lip sync may drift there"
                )
            }
        }
    }
}
