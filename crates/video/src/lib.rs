//! In-process video I/O for sadtalker: no ffmpeg needed at run time for H.264 MP4 (ours and most
//! phones'); ffmpeg, when installed, opens other reference videos.
//!
//! - [`Mp4Writer`]: streaming MP4 writer. RGB frames in, H.264 (yuv420p, constant quantiser) out, with
//!   the driving audio as an AAC-LC track (FLAC without the `aac` feature), audio and video starting
//!   together (encoder priming removed by an edit list). Memory stays flat with length; the file
//!   appears at its path only when complete.
//! - [`Mp4Reader`]: H.264 MP4/MOV back to RGB frames + fps, in process.
//! - [`VideoReader`] / [`read_video`]: any common video: H.264 MP4/MOV in process, other codecs
//!   (MPEG-4 Part 2, HEVC, VP9, AV1, …) and containers (MKV/WebM, AVI, …) through an `ffmpeg`
//!   executable when one is on the PATH ([`FfmpegReader`], frames streamed on a pipe), else an error
//!   naming the codec and the command that converts the file.
//! - [`write_still_video`]: the degraded fallback, the portrait held for the audio, tagged
//!   `comment=degraded: <reason>`.
//! - [`FrameDumper`] / [`save_png`]: PNG frame dumps for `--frames-dir`.
//!
//! See README.md for the codec and licence choices.

mod audio;
mod color;
mod error;
mod external;
mod frames;
mod h264;
mod mp4;
mod reader;
mod still;
mod writer;

pub use audio::{Audio, AudioCodec, SUPPORTED_SAMPLE_RATES};
pub use error::{CONVERT_HINT, Result, VideoError};
pub use external::{FfmpegReader, MAX_EXTERNAL_SIDE, find_ffmpeg};
pub use frames::{FrameDumper, save_png};
pub use h264::{check_frame_size, fit_frame_size};
pub use reader::{
    DecodedVideo, MAX_DECODED_BYTES, Mp4Reader, VideoInfo, VideoReader, convert_command, read_video, read_video_with,
};
pub use still::{DEGRADED_PREFIX, write_still_video};
pub use writer::{
    AudioSummary, DEFAULT_FPS, DEFAULT_QP, Frame, Mp4Writer, VideoSettings, WriteSummary, frames_for_audio,
};

#[cfg(test)]
mod tests;
