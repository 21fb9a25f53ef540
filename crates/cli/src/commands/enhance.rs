//! `sadtalker enhance`: the reference's `--enhancer gfpgan` on its own, for an image or a video.
//!
//! Each frame goes through GFPGAN v1.4 as gfpgan's `GFPGANer.enhance` runs it (`sadtalker-enhance`): faces
//! found, aligned, restored, pasted back into the frame upscaled ×2. A frame without a face comes back
//! upscaled and is counted. Videos are streamed: one frame decoded, enhanced and encoded at a time; the
//! input's audio track, if any, is copied into the output. Model files come from the store's `enhancer`
//! feature.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow};
use candle_core::Device;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sadtalker_enhance::{EnhanceError, EnhancedFrame, EnhancerFiles, GFPGANer};
use sadtalker_video::{Audio, Mp4Reader, Mp4Writer, VideoSettings};

use crate::commands::models::StoreArgs;
use crate::exit::{Failure, Kind};

#[derive(Args)]
#[command(after_help = "Examples:
  sadtalker enhance --input talk.mp4 -o talk_enhanced.mp4
  sadtalker enhance --input portrait.png -o portrait_x2.png --json")]
pub struct EnhanceArgs {
    /// An image (PNG/JPEG) or an H.264 MP4 video.
    #[arg(short, long, value_name = "VIDEO|IMG")]
    input: PathBuf,
    /// Output: an image (for an image input; format from the extension) or an .mp4 (for a video).
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Seed of the StyleGAN noise GFPGAN adds (the reference draws fresh random noise every run).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_parser = crate::commands::generate::parse_device, default_value = "auto", value_name = "D",
          help = crate::commands::generate::DEVICE_HELP)]
    device: sadtalker_pipeline::DeviceChoice,
    #[command(flatten)]
    store: StoreArgs,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

impl From<EnhanceError> for Failure {
    fn from(e: EnhanceError) -> Self {
        let kind = match &e {
            EnhanceError::ModelFile { .. } => Kind::Model,
            EnhanceError::Nn(e) if e.is_weights() => Kind::Model,
            EnhanceError::BadFrame(_) => Kind::BadInput,
            _ => Kind::Internal,
        };
        Failure::new(kind, e)
    }
}

/// What an enhance run did (the `--json` output).
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    input: PathBuf,
    output: PathBuf,
    kind: &'static str,
    frames: u64,
    /// Frames with at least one restored face.
    frames_enhanced: u64,
    /// Frames without a usable face: passed through, upscaled.
    frames_without_face: u64,
    faces_restored: u64,
    width: u32,
    height: u32,
    audio: bool,
    seconds: f64,
    ms_per_frame: f64,
    /// Where the convolutions ran: `cpu` or the GPU's API.
    device: &'static str,
    /// The CPU's kernel level or the GPU adapter's name.
    device_name: String,
}

impl Summary {
    fn count(&mut self, frame: &EnhancedFrame) {
        self.frames += 1;
        self.faces_restored += frame.faces_restored as u64;
        if frame.faces_restored > 0 {
            self.frames_enhanced += 1;
        } else {
            self.frames_without_face += 1;
        }
        (self.width, self.height) = frame.image.dimensions();
    }
}

fn is_video(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["mp4", "mov", "m4v"].contains(&e.to_ascii_lowercase().as_str()))
}

/// The enhancer's files from the store (`enhancer` feature); missing ones are reported together with
/// `sadtalker models fetch --for enhancer`.
fn enhancer_files(store: &StoreArgs) -> Result<EnhancerFiles, Failure> {
    let located = store.open()?.require("enhancer")?;
    let path_of = |name: &str| -> Result<PathBuf, Failure> {
        located
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.path.clone())
            .ok_or_else(|| {
                Failure::new(
                    Kind::Model,
                    anyhow!("the model manifest's `enhancer` feature lacks {name}; use the built-in manifest"),
                )
            })
    };
    let [gfpgan, parsenet, detector] = EnhancerFiles::NAMES;
    Ok(EnhancerFiles {
        gfpgan: path_of(gfpgan)?,
        parsenet: path_of(parsenet)?,
        detector: path_of(detector)?,
    })
}

pub fn run(args: EnhanceArgs) -> Result<(), Failure> {
    if !args.input.is_file() {
        return Err(Failure::new(
            Kind::BadInput,
            anyhow!("--input {}: no such file", args.input.display()),
        ));
    }
    let video = is_video(&args.input);
    if video != is_video(&args.output) {
        return Err(Failure::new(
            Kind::BadInput,
            anyhow!(
                "-o {}: a video input needs an .mp4 output and an image input an image output",
                args.output.display()
            ),
        ));
    }
    let compute = sadtalker_pipeline::Compute::resolve(args.device, sadtalker_pipeline::Precision::Fp32)
        .map_err(crate::commands::generate::pipeline_failure)?;
    if let Some(w) = &compute.device.warning
        && !args.json
    {
        eprintln!("warning: {w}");
    }
    let files = enhancer_files(&args.store)?;
    let mut enhancer = GFPGANer::load(&files, &Device::Cpu, args.seed)?;
    let start = Instant::now();
    let mut summary = Summary {
        input: args.input.clone(),
        output: args.output.clone(),
        device: compute.device.kind,
        device_name: compute.device.name.clone(),
        ..Summary::default()
    };
    // The whole run on the device: each network call inside picks it up.
    compute.run_fp32(|| {
        if video {
            enhance_video(&args, &mut enhancer, &mut summary)
        } else {
            enhance_image(&args, &mut enhancer, &mut summary)
        }
    })?;
    summary.seconds = start.elapsed().as_secs_f64();
    summary.ms_per_frame = 1000.0 * summary.seconds / summary.frames.max(1) as f64;
    if args.json {
        let json = serde_json::to_string_pretty(&summary).map_err(|e| Failure::new(Kind::Internal, e))?;
        println!("{json}");
    } else {
        println!(
            "{}: {} frame(s) at {}x{}, {} enhanced ({} faces), {} without a face (upscaled only){}; {:.0} ms/frame",
            summary.output.display(),
            summary.frames,
            summary.width,
            summary.height,
            summary.frames_enhanced,
            summary.faces_restored,
            summary.frames_without_face,
            if summary.audio { ", audio kept" } else { "" },
            summary.ms_per_frame
        );
    }
    Ok(())
}

fn enhance_image(args: &EnhanceArgs, enhancer: &mut GFPGANer, summary: &mut Summary) -> Result<(), Failure> {
    summary.kind = "image";
    let format = image::ImageFormat::from_path(&args.output).map_err(|e| {
        Failure::new(
            Kind::BadInput,
            anyhow!(
                "-o {}: unknown image format ({e}); use .png or .jpg",
                args.output.display()
            ),
        )
    })?;
    let input = image::open(&args.input)
        .map_err(|e| Failure::new(Kind::BadInput, anyhow!("cannot read {}: {e}", args.input.display())))?
        .to_rgb8();
    let out = enhancer.enhance(&input)?;
    summary.count(&out);
    // Written next to the target and renamed, so a failed run leaves nothing partial.
    let written = (|| -> anyhow::Result<()> {
        let mut file = sadtalker_fsio::AtomicFile::create(&args.output)?;
        out.image
            .write_to(&mut std::io::BufWriter::new(file.file_mut()), format)?;
        file.commit()?;
        Ok(())
    })();
    written
        .with_context(|| format!("cannot write {}", args.output.display()))
        .map_err(|e| Failure::new(Kind::BadInput, e))
}

/// The input's audio track as the writer takes it (interleaved, at most two channels), or `None` when the
/// file has none or it cannot be carried over (then the video is written silent, with a warning).
fn input_audio(path: &Path, has_audio: bool, quiet: bool) -> Option<(Vec<f32>, u32, u16)> {
    if !has_audio {
        return None;
    }
    let warn = |why: String| {
        if !quiet {
            eprintln!("warning: the output has no audio: {why}");
        }
    };
    match sadtalker_audio::decode::decode_file(path, f64::INFINITY) {
        Ok(d) => {
            let rate = d.info.sample_rate;
            if !sadtalker_video::SUPPORTED_SAMPLE_RATES.contains(&rate) {
                warn(format!("its sample rate {rate} Hz cannot be written"));
                return None;
            }
            if d.channels.len() == 2 {
                let (l, r) = (&d.channels[0], &d.channels[1]);
                let samples = l.iter().zip(r).flat_map(|(a, b)| [*a, *b]).collect();
                Some((samples, rate, 2))
            } else {
                Some((sadtalker_audio::decode::to_mono(&d.channels), rate, 1))
            }
        }
        Err(e) => {
            warn(e.to_string());
            None
        }
    }
}

fn enhance_video(args: &EnhanceArgs, enhancer: &mut GFPGANer, summary: &mut Summary) -> Result<(), Failure> {
    summary.kind = "video";
    let mut reader = Mp4Reader::open(&args.input).map_err(|e| Failure::new(Kind::BadInput, e))?;
    let info = reader.info().clone();
    let audio = input_audio(&args.input, info.has_audio, args.quiet || args.json);
    summary.audio = audio.is_some();
    let settings = VideoSettings {
        fps: info.fps.round().max(1.0) as u32,
        ..VideoSettings::default()
    };
    let track = audio.as_ref().map(|(samples, rate, channels)| Audio {
        samples,
        sample_rate: *rate,
        channels: *channels,
    });
    // The writer stages the file and renames it on `finish`; dropped unfinished, it leaves nothing.
    let mut writer: Option<Mp4Writer<'_>> = None;
    let bar = if args.quiet || args.json {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(info.frame_count as u64);
        b.set_style(
            ProgressStyle::with_template("GFPGAN {bar:30} {pos}/{len} frames  {per_sec}  ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    while let Some(frame) = reader.next_frame().map_err(|e| Failure::new(Kind::BadInput, e))? {
        let out = enhancer.enhance(&frame)?;
        summary.count(&out);
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(
                Mp4Writer::create(&args.output, settings.clone(), track)
                    .map_err(|e| Failure::new(Kind::BadInput, e))?,
            ),
        };
        w.write_image(&out.image).map_err(|e| Failure::new(Kind::Internal, e))?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let writer =
        writer.ok_or_else(|| Failure::new(Kind::BadInput, anyhow!("{} has no video frames", args.input.display())))?;
    writer.finish().map_err(|e| Failure::new(Kind::Internal, e))?;
    Ok(())
}
