//! The one error type of this crate: each variant says what went wrong and what to do about it.

use std::path::PathBuf;

/// Everything that can go wrong while writing or reading video.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The output file (or its temporary sibling) could not be created or written.
    #[error("cannot write video file {path}: {source} (check that the directory exists and is writable)")]
    Write {
        /// The file we were writing.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// An input file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file we were reading.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: std::io::Error,
    },
    /// `finish` was called before any frame was written.
    #[error("no video frames were written: a video needs at least one frame")]
    NoFrames,
    /// A frame's size differs from the first frame's.
    #[error(
        "frame {index} is {got_width}x{got_height} but the video is {width}x{height}: \
         all frames of one video must have the same size"
    )]
    FrameSizeMismatch {
        /// Index of the offending frame (0-based).
        index: u64,
        /// Size fixed by the first frame.
        width: u32,
        /// Size fixed by the first frame.
        height: u32,
        /// Size of the offending frame.
        got_width: u32,
        /// Size of the offending frame.
        got_height: u32,
    },
    /// A frame buffer's length does not match `width * height * 3`.
    #[error("frame {index}: RGB buffer holds {len} bytes but {width}x{height} RGB needs {expected}")]
    FrameBufferLength {
        /// Index of the offending frame (0-based).
        index: u64,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Actual buffer length.
        len: usize,
        /// `width * height * 3`.
        expected: usize,
    },
    /// The frame size is outside what the H.264 encoder supports.
    #[error("frame size {width}x{height} is not supported: {reason}")]
    UnsupportedFrameSize {
        /// Requested width.
        width: u32,
        /// Requested height.
        height: u32,
        /// Why, and the allowed range.
        reason: &'static str,
    },
    /// The audio given to the writer cannot be encoded.
    #[error("unsupported audio: {0}")]
    UnsupportedAudio(String),
    /// A setting is out of range.
    #[error("invalid setting: {0}")]
    InvalidSetting(String),
    /// The H.264 encoder or decoder reported an error.
    #[error("H.264 {stage} failed: {message}")]
    H264 {
        /// `encoding` or `decoding`, with the frame index where known.
        stage: String,
        /// OpenH264's message.
        message: String,
    },
    /// The audio encoder reported an error.
    #[error("audio encoding failed: {0}")]
    AudioEncoder(String),
    /// The file is not an MP4 we can read (not MP4 at all, damaged, or fragmented).
    #[error("{path}: {reason}. {CONVERT_HINT}")]
    UnreadableMp4 {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The H.264 stream of a file we read is damaged: a sample or parameter set does not decode.
    #[error(
        "{path}: the H.264 video stream is damaged ({detail}); re-download the file, or re-encode what \
         can be decoded: `ffmpeg -err_detect ignore_err -i INPUT -c:v libx264 -pix_fmt yuv420p -an OUTPUT.mp4`"
    )]
    DamagedVideo {
        /// The file.
        path: PathBuf,
        /// Where and what (the sample index and the decoder's message).
        detail: String,
    },
    /// The MP4's video track uses a codec other than H.264.
    #[error("{path}: the video track is {codec}, but only H.264 video can be read. {CONVERT_HINT}")]
    UnsupportedCodec {
        /// The file.
        path: PathBuf,
        /// Human-readable codec name with its MP4 sample-entry code.
        codec: String,
    },
    /// A video that is decoded through ffmpeg, and no `ffmpeg` executable was found.
    #[error(
        "{path}: the video is {codec}; only H.264 in MP4/MOV is decoded in process, other codecs and \
         containers through an `ffmpeg` executable, and none was found on the PATH. Install ffmpeg \
         (e.g. `apt-get install ffmpeg`), or convert the file once where ffmpeg is installed: `{command}`"
    )]
    NeedsFfmpeg {
        /// The file.
        path: PathBuf,
        /// What the file holds, as far as we can tell (codec and/or container).
        codec: String,
        /// The ffmpeg command that converts this file to one we decode in process.
        command: String,
    },
    /// ffmpeg could not decode a video (or could not be run).
    #[error("{path}{}: decoding through ffmpeg failed: {reason}", codec.as_ref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Ffmpeg {
        /// The file.
        path: PathBuf,
        /// ffmpeg's name of the codec, once known.
        codec: Option<String>,
        /// What went wrong, with the end of ffmpeg's own message.
        reason: String,
    },
    /// A decoded video would need more memory than is allowed for a reference video.
    #[error(
        "{path}: the video decodes to more than {limit_mb} MB of frames ({width}x{height}, {frames}+ frames); \
         cut it shorter or smaller, e.g. `ffmpeg -i INPUT -t 30 -vf scale=512:-2 -c:v libx264 -an OUTPUT.mp4`"
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Frame size.
        width: u32,
        /// Frame size.
        height: u32,
        /// Frames decoded when the limit was reached.
        frames: usize,
        /// The limit in MB.
        limit_mb: u64,
    },
    /// An image could not be read or written (PNG/JPEG).
    #[error("image {path}: {source}")]
    Image {
        /// The image file.
        path: PathBuf,
        /// The codec's reason.
        #[source]
        source: image::ImageError,
    },
}

/// How to turn any video into one we read; part of every "can't read this video" message.
pub const CONVERT_HINT: &str = "Convert it to H.264 in MP4 with ffmpeg, e.g. \
     `ffmpeg -i INPUT -c:v libx264 -pix_fmt yuv420p -an OUTPUT.mp4`";

/// Shorthand for this crate's results.
pub type Result<T, E = VideoError> = std::result::Result<T, E>;
