//! In-process video I/O for sadtalker: no ffmpeg needed at run time.
//!
//! - [`Mp4Writer`]: streaming MP4 writer. RGB frames in, H.264 (yuv420p, constant quantiser) out, with
//!   the driving audio as an AAC-LC track (FLAC without the `aac` feature), audio and video starting
//!   together (encoder priming removed by an edit list). Memory stays flat with length; the file
//!   appears at its path only when complete.
//! - [`Mp4Reader`] / [`read_video`]: H.264 MP4/MOV back to RGB frames + fps, with a conversion hint
//!   for anything else.
//! - [`write_still_video`]: the degraded fallback, the portrait held for the audio, tagged
//!   `comment=degraded: <reason>`.
//! - [`FrameDumper`] / [`save_png`]: PNG frame dumps for `--frames-dir`.
//!
//! See README.md for the codec and licence choices.

mod audio;
mod color;
mod error;
mod frames;
mod h264;
mod mp4;
mod reader;
mod still;
mod writer;

pub use audio::{Audio, AudioCodec, SUPPORTED_SAMPLE_RATES};
pub use error::{CONVERT_HINT, Result, VideoError};
pub use frames::{FrameDumper, save_png};
pub use reader::{DecodedVideo, Mp4Reader, VideoInfo, read_video};
pub use still::{DEGRADED_PREFIX, write_still_video};
pub use writer::{
    AudioSummary, DEFAULT_FPS, DEFAULT_QP, Frame, Mp4Writer, VideoSettings, WriteSummary, frames_for_audio,
};

#[cfg(test)]
mod tests;
