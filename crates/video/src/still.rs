//! The fallback "still video": the portrait held for the audio's duration, marked as degraded.

use std::path::Path;

use image::RgbImage;

use crate::audio::Audio;
use crate::error::Result;
use crate::writer::{Frame, Mp4Writer, VideoSettings, WriteSummary};

/// Prefix of the `comment` tag that marks a degraded video; the reason follows.
pub const DEGRADED_PREFIX: &str = "degraded: ";

/// Writes `image` held still for the whole of `audio`, with the audio, as the pipeline's fallback
/// output when a later stage failed and the user allowed degradation.
///
/// The file's `comment` tag reads `degraded: <reason>` (shown by `ffprobe -show_entries format_tags`),
/// replacing any comment in `settings`. The frame count is rounded up so that no audio is cut: the
/// video is at most one frame (40 ms at 25 fps) longer than the audio, the rest padded with silence.
/// A portrait larger than the encoder takes is scaled down to fit (a fallback must be writable for any
/// portrait the pipeline accepted).
pub fn write_still_video(
    path: impl AsRef<Path>,
    image: &RgbImage,
    audio: Audio<'_>,
    reason: &str,
    settings: VideoSettings,
) -> Result<WriteSummary> {
    let settings = VideoSettings {
        comment: Some(format!("{DEGRADED_PREFIX}{reason}")),
        ..settings
    };
    audio.validate()?;
    let frames = (audio.frames() as u64 * u64::from(settings.fps))
        .div_ceil(u64::from(audio.sample_rate))
        .max(1);
    let (w, h) = crate::h264::fit_frame_size(image.width(), image.height());
    let fitted;
    let image = if (w, h) == image.dimensions() {
        image
    } else {
        fitted = image::imageops::resize(image, w, h, image::imageops::FilterType::Triangle);
        &fitted
    };
    let mut writer = Mp4Writer::create(path, settings, Some(audio))?;
    let frame = Frame::from(image);
    for _ in 0..frames {
        writer.write_frame(frame)?;
    }
    writer.finish()
}
