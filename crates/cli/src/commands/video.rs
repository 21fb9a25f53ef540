//! `sadtalker video`: the in-process video tools (`still`: the degraded still-video fallback on demand;
//! `info`: what our reader sees in an MP4).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand, ValueEnum};
use sadtalker_video::{
    Audio, AudioCodec, DEFAULT_QP, Mp4Reader, SUPPORTED_SAMPLE_RATES, VideoError, VideoSettings, write_still_video,
};
use serde_json::json;

use crate::exit::{Failure, Kind};

#[derive(Subcommand)]
pub enum VideoCmd {
    /// Write the portrait held still for the whole audio, with the audio, as an MP4 (H.264 + AAC).
    ///
    /// This is the fallback video the pipeline writes when a later stage fails and degradation is
    /// allowed; the file's `comment` tag says `degraded: <reason>` (`ffprobe -show_entries format_tags`).
    /// The video lasts as long as the audio, rounded up to a whole frame at 25 fps.
    Still(StillArgs),
    /// Show what the MP4 reader sees in a video: size, frame rate, frame count, duration.
    ///
    /// Reads H.264 MP4/MOV files (as used for --ref-eyeblink / --ref-pose); anything else fails with
    /// the ffmpeg command that converts it.
    Info(InfoArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum AudioCodecArg {
    /// AAC-LC (plays everywhere).
    Aac,
    /// Lossless FLAC in MP4 (patent-free; plays in browsers, ffmpeg, VLC).
    Flac,
}

#[derive(Args)]
pub struct StillArgs {
    /// The portrait (PNG, JPEG, WebP, BMP or TIFF).
    #[arg(long, value_name = "IMG")]
    source_image: PathBuf,
    /// The speech (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC). Kept at its own rate and channels where the MP4
    /// takes them; otherwise mixed to mono and resampled to 16 kHz.
    #[arg(long, value_name = "AUDIO")]
    driven_audio: PathBuf,
    /// Output MP4 file (written only when complete; an existing file is replaced).
    #[arg(short, long, value_name = "OUT.mp4")]
    output: PathBuf,
    /// Why the video is a still: stored in the file as `comment=degraded: <REASON>`.
    #[arg(long, default_value = "still video requested (no animation)")]
    reason: String,
    /// H.264 quantiser, 0 (best, largest) to 51 (worst, smallest).
    #[arg(long, default_value_t = DEFAULT_QP, value_parser = clap::value_parser!(u8).range(0..=51))]
    qp: u8,
    /// Audio codec of the MP4.
    #[arg(long, value_enum, default_value_t = AudioCodecArg::Aac)]
    audio_codec: AudioCodecArg,
    /// Also write every frame as DIR/000000.png, 000001.png, …
    #[arg(long, value_name = "DIR")]
    frames_dir: Option<PathBuf>,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct InfoArgs {
    /// The video file.
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: VideoCmd) -> Result<(), Failure> {
    match cmd {
        VideoCmd::Still(args) => still(args),
        VideoCmd::Info(args) => info(args),
    }
}

/// Classifies video errors: problems with the user's files or paths are bad input, encoder faults internal.
impl From<VideoError> for Failure {
    fn from(e: VideoError) -> Self {
        let kind = match &e {
            VideoError::H264 { .. } | VideoError::AudioEncoder(_) | VideoError::NoFrames => Kind::Internal,
            VideoError::InvalidSetting(_) => Kind::Internal,
            _ => Kind::BadInput,
        };
        Failure::new(kind, e)
    }
}

fn still(args: StillArgs) -> Result<(), Failure> {
    let image = image::open(&args.source_image)
        .map_err(|e| {
            bad_input(format!(
                "cannot read the source image {}: {e}",
                args.source_image.display()
            ))
        })?
        .to_rgb8();
    let audio = load_audio(&args.driven_audio)?;
    let codec = match args.audio_codec {
        AudioCodecArg::Aac => AudioCodec::Aac,
        AudioCodecArg::Flac => AudioCodec::Flac,
    };
    let settings = VideoSettings {
        qp: args.qp,
        frames_dir: args.frames_dir.clone(),
        audio_codec: codec,
        ..Default::default()
    };
    let audio_ref = Audio {
        samples: &audio.samples,
        sample_rate: audio.sample_rate,
        channels: audio.channels,
    };
    let summary = write_still_video(&args.output, &image, audio_ref, &args.reason, settings)?;
    let degraded = format!("{}{}", sadtalker_video::DEGRADED_PREFIX, args.reason);
    if args.json {
        let audio = summary.audio.as_ref().map(|a| {
            json!({"codec": a.codec, "sample_rate": a.sample_rate, "channels": a.channels,
                   "padded_samples": a.padded_samples, "trimmed_samples": a.trimmed_samples})
        });
        let doc = json!({
            "output": summary.path, "frames": summary.frames, "fps": summary.fps,
            "width": summary.coded_width, "height": summary.coded_height,
            "duration_secs": summary.duration_secs, "audio_duration_secs": audio_ref.duration_secs(),
            "audio": audio, "bytes": summary.bytes, "degraded": true, "comment": degraded,
        });
        println!("{doc:#}");
    } else {
        println!(
            "{}: {} frames {}x{} at {} fps ({:.2} s, audio {:.2} s), {} bytes; marked \"{degraded}\"",
            summary.path.display(),
            summary.frames,
            summary.coded_width,
            summary.coded_height,
            summary.fps,
            summary.duration_secs,
            audio_ref.duration_secs(),
            summary.bytes,
        );
    }
    Ok(())
}

fn info(args: InfoArgs) -> Result<(), Failure> {
    let reader = Mp4Reader::open(&args.file)?;
    let i = reader.info();
    if args.json {
        let doc = json!({
            "file": args.file, "codec": "h264", "width": i.width, "height": i.height, "fps": i.fps,
            "frames": i.frame_count, "duration_secs": i.duration_secs, "has_audio": i.has_audio,
        });
        println!("{doc:#}");
    } else {
        println!(
            "{}: H.264 {}x{}, {} fps, {} frames, {:.3} s{}",
            args.file.display(),
            i.width,
            i.height,
            i.fps,
            i.frame_count,
            i.duration_secs,
            if i.has_audio { ", with audio" } else { ", no audio" }
        );
    }
    Ok(())
}

fn bad_input(message: String) -> Failure {
    Failure::new(Kind::BadInput, anyhow::anyhow!(message))
}

/// Decoded audio owned by the command.
struct LoadedAudio {
    samples: Vec<f32>,
    sample_rate: u32,
    channels: u16,
}

/// Decodes the driving audio (any format sadtalker-audio reads) for the MP4's sound track, keeping its
/// native rate and stereo where the MP4 audio codecs take them; otherwise (more than two channels, or a
/// rate AAC has no index for) the channel mean, resampled to 16 kHz as the reference's output is.
fn load_audio(path: &Path) -> Result<LoadedAudio, Failure> {
    let audio_err = |e: sadtalker_audio::AudioError| Failure::new(Kind::BadInput, e);
    let decoded =
        sadtalker_audio::decode::decode_file(path, sadtalker_audio::decode::DEFAULT_MAX_SECONDS).map_err(audio_err)?;
    for warning in &decoded.warnings {
        eprintln!("warning: {}: {warning}", path.display());
    }
    let rate = decoded.info.sample_rate;
    let channels = &decoded.channels;
    if channels.first().is_none_or(|c| c.is_empty()) {
        return Err(bad_input(format!("the audio {} holds no samples", path.display())));
    }
    if channels.len() <= 2 && SUPPORTED_SAMPLE_RATES.contains(&rate) {
        let frames = channels[0].len();
        let samples = (0..frames).flat_map(|i| channels.iter().map(move |c| c[i])).collect();
        return Ok(LoadedAudio {
            samples,
            sample_rate: rate,
            channels: channels.len() as u16,
        });
    }
    let mono = sadtalker_audio::decode::to_mono(channels);
    let target = if SUPPORTED_SAMPLE_RATES.contains(&rate) {
        rate
    } else {
        sadtalker_audio::SAMPLE_RATE
    };
    let samples = sadtalker_audio::resample::resample(&mono, rate, target).map_err(audio_err)?;
    Ok(LoadedAudio {
        samples,
        sample_rate: target,
        channels: 1,
    })
}
