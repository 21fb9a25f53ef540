//! `sadtalker render`: coefficients + a cropped portrait → frames (PNG folder or MP4).
//!
//! The coefficient windows come from `sadtalker-coeffs` (`get_facerender_data`), the
//! networks from `sadtalker-render`, the files from `sadtalker-store`, the video from
//! `sadtalker-video`. Frames are produced in batches and handed straight to the output:
//! no list of all frames is ever held.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sadtalker_checkpoint::Weights;
use sadtalker_coeffs::CoeffTable;
use sadtalker_coeffs::facerender::{FaceRenderInput, FaceRenderOptions, SEMANTIC_WINDOW, get_facerender_data};
use sadtalker_render::image::{RgbF32, frame_to_rgb8};
use sadtalker_render::{DrivingFrame, FaceRenderConfig, FaceRenderer};

use crate::commands::models::StoreArgs;
use crate::exit::{Failure, Kind};

/// The reference's `--preprocess` modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preprocess {
    /// Crop to the face (default).
    Crop,
    /// Crop with a margin.
    Extcrop,
    /// The whole image resized.
    Resize,
    /// Crop, render, paste back into the full image (73-input mapping).
    Full,
    /// Extended crop, pasted back (73-input mapping).
    Extfull,
}

impl Preprocess {
    fn name(self) -> &'static str {
        match self {
            Preprocess::Crop => "crop",
            Preprocess::Extcrop => "extcrop",
            Preprocess::Resize => "resize",
            Preprocess::Full => "full",
            Preprocess::Extfull => "extfull",
        }
    }
}

#[derive(Args)]
#[command(after_help = "Examples:
  sadtalker render --coeffs out/speech.mat --first-coeff out/portrait.mat --source-image out/portrait_crop.png -o frames/
  sadtalker render --coeffs speech.mat --first-coeff portrait.mat --source-image crop.png --driven-audio speech.wav -o talk.mp4")]
pub struct RenderArgs {
    /// Audio2Coeff output: a .mat with `coeff_3dmm` (frames × 70).
    #[arg(long, alias = "coeff", value_name = "COEFFS.mat")]
    coeffs: PathBuf,
    /// The portrait's first-frame coefficients (`sadtalker extract` output; `coeff_3dmm` 1 × 73).
    #[arg(long, alias = "first_coeff", value_name = "FIRST.mat")]
    first_coeff: PathBuf,
    /// The cropped portrait (resized to --size as the reference does if it is not already).
    #[arg(long, alias = "source_image", value_name = "IMG")]
    source_image: PathBuf,
    /// Output: a folder for PNG frames (000001.png, ...), or a .mp4 file.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Speech to mux into an .mp4 output (trimmed or padded to the frames).
    #[arg(long, alias = "driven_audio", value_name = "AUDIO")]
    driven_audio: Option<PathBuf>,
    /// Face render size: 256 or 512 (picks SadTalker_V0.0.2_<size>.safetensors).
    #[arg(long, default_value_t = 256, value_parser = parse_size)]
    size: usize,
    /// Keep the portrait's head pose (and crop) instead of the generated one.
    #[arg(long)]
    still: bool,
    /// Preprocess mode the coefficients were made with; full/extfull use the 73-input mapping.
    #[arg(long, value_enum, default_value_t = Preprocess::Crop)]
    preprocess: Preprocess,
    /// Scale of the expression coefficients (the reference's --expression_scale).
    #[arg(long, alias = "expression_scale", default_value_t = 1.0)]
    expression_scale: f32,
    /// Yaw waypoints in degrees (one value: constant; several: a path over the clip).
    #[arg(long, alias = "input_yaw", num_args = 1.., value_name = "DEG", allow_negative_numbers = true)]
    input_yaw: Option<Vec<f64>>,
    /// Pitch waypoints in degrees.
    #[arg(long, alias = "input_pitch", num_args = 1.., value_name = "DEG", allow_negative_numbers = true)]
    input_pitch: Option<Vec<f64>>,
    /// Roll waypoints in degrees.
    #[arg(long, alias = "input_roll", num_args = 1.., value_name = "DEG", allow_negative_numbers = true)]
    input_roll: Option<Vec<f64>>,
    /// Frames rendered per network call (the reference's default is 2).
    #[arg(long, alias = "batch_size", default_value_t = 2)]
    batch_size: usize,
    #[command(flatten)]
    store: StoreArgs,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

/// Where frames go.
enum Sink {
    /// PNG frames into a staging folder renamed to the target at the end.
    Pngs { staging: PathBuf, target: PathBuf },
    /// An MP4 (the writer stages and renames itself).
    Mp4(Box<sadtalker_video::Mp4Writer<'static>>),
}

impl Sink {
    fn open(output: &Path, audio: Option<Vec<f32>>) -> Result<Sink, Failure> {
        let is_mp4 = output.extension().is_some_and(|e| e.eq_ignore_ascii_case("mp4"));
        if is_mp4 {
            // The writer borrows its audio for the file's lifetime; leaking one clip's samples
            // for the rest of this short-lived process is simpler than a self-referential sink.
            let audio: Option<&'static [f32]> = audio.map(|a| &*Box::leak(a.into_boxed_slice()));
            let settings = sadtalker_video::VideoSettings::default();
            let writer = sadtalker_video::Mp4Writer::create(
                output,
                settings,
                audio.map(|s| sadtalker_video::Audio::mono(s, sadtalker_audio::SAMPLE_RATE)),
            )
            .map_err(|e| Failure::new(Kind::BadInput, e))?;
            return Ok(Sink::Mp4(Box::new(writer)));
        }
        if output.exists()
            && std::fs::read_dir(output)
                .map(|mut d| d.next().is_some())
                .unwrap_or(true)
        {
            return Err(Failure::new(
                Kind::BadInput,
                anyhow!(
                    "{} already exists and is not an empty folder; choose another output or remove it",
                    output.display()
                ),
            ));
        }
        let parent = output
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = output
            .file_name()
            .ok_or_else(|| Failure::new(Kind::BadInput, anyhow!("-o needs a folder name")))?;
        let staging = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
        std::fs::create_dir_all(&staging)
            .with_context(|| format!("cannot create {}", staging.display()))
            .map_err(|e| Failure::new(Kind::BadInput, e))?;
        Ok(Sink::Pngs {
            staging,
            target: output.to_owned(),
        })
    }

    fn push(&mut self, index: usize, width: usize, height: usize, rgb: Vec<u8>) -> anyhow::Result<()> {
        match self {
            Sink::Pngs { staging, .. } => {
                let img = image::RgbImage::from_raw(width as u32, height as u32, rgb)
                    .ok_or_else(|| anyhow!("internal: frame buffer size mismatch"))?;
                let path = staging.join(format!("{:06}.png", index + 1));
                img.save(&path)
                    .with_context(|| format!("cannot write {}", path.display()))
            }
            Sink::Mp4(w) => {
                let frame = sadtalker_video::Frame {
                    width: width as u32,
                    height: height as u32,
                    rgb: &rgb,
                };
                Ok(w.write_frame(frame)?)
            }
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Pngs { staging, target } => {
                if target.exists() {
                    std::fs::remove_dir(&target).with_context(|| format!("cannot replace {}", target.display()))?;
                }
                std::fs::rename(&staging, &target)
                    .with_context(|| format!("cannot move the frames into {}", target.display()))
            }
            Sink::Mp4(w) => w.finish().map(|_| ()).map_err(Into::into),
        }
    }

    fn abandon(self) {
        if let Sink::Pngs { staging, .. } = self {
            let _ = std::fs::remove_dir_all(staging);
        }
        // An Mp4Writer removes its temporary file when dropped unfinished.
    }
}

/// `--size`: the two sizes official checkpoints exist for.
fn parse_size(s: &str) -> Result<usize, String> {
    match s {
        "256" => Ok(256),
        "512" => Ok(512),
        _ => Err(format!("{s} is not a face render size; use 256 or 512")),
    }
}

fn bad(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(Kind::BadInput, e)
}

/// Loads the portrait as the reference does, at `size × size`.
fn load_source(path: &Path, size: usize) -> Result<RgbF32, Failure> {
    let img = image::open(path)
        .with_context(|| format!("cannot read the source image {}", path.display()))
        .map_err(bad)?
        .to_rgb8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let rgb = RgbF32::from_rgb8(w, h, img.as_raw()).map_err(bad)?;
    Ok(rgb.resize_like_skimage(size, size))
}

/// The driving frames of output frames `start .. start + n` (padded frames repeat the last).
fn driving(input: &FaceRenderInput, start: usize, n: usize) -> anyhow::Result<Vec<DrivingFrame>> {
    let angle = |p: &Option<sadtalker_coeffs::camera::CameraPath>, i: usize| p.as_ref().map(|p| p.values[i]);
    (start..start + n)
        .map(|i| {
            let w = input.target_window(i).to_vec();
            Ok(DrivingFrame {
                semantics: candle_core::Tensor::from_vec(
                    w,
                    (input.channels, SEMANTIC_WINDOW),
                    &candle_core::Device::Cpu,
                )?,
                yaw: angle(&input.yaw, i),
                pitch: angle(&input.pitch, i),
                roll: angle(&input.roll, i),
            })
        })
        .collect()
}

pub fn run(args: RenderArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let full = matches!(args.preprocess, Preprocess::Full | Preprocess::Extfull);
    let first = CoeffTable::read(&args.first_coeff, "coeff_3dmm").map_err(bad)?;
    let generated = CoeffTable::read(&args.coeffs, "coeff_3dmm").map_err(bad)?;
    let opts = FaceRenderOptions {
        batch_size: args.batch_size,
        expression_scale: args.expression_scale,
        still_mode: args.still,
        full,
        yaw: args.input_yaw.clone(),
        pitch: args.input_pitch.clone(),
        roll: args.input_roll.clone(),
    };
    let input = get_facerender_data(&first, &generated, &opts).map_err(bad)?;
    let source = load_source(&args.source_image, args.size)?;

    let store = args.store.open()?;
    let facevid_name = format!("SadTalker_V0.0.2_{}.safetensors", args.size);
    let mapping_name = if full {
        "mapping_00109-model.pth.tar"
    } else {
        "mapping_00229-model.pth.tar"
    };
    let facevid = store.locate(&facevid_name)?;
    let mapping = store.locate(mapping_name)?;
    let device = candle_core::Device::Cpu;
    let cfg = FaceRenderConfig::official(full);
    let renderer = FaceRenderer::load(
        &Weights::from_file(&facevid.path, &device)?,
        &Weights::from_file(&mapping.path, &device)?,
        &cfg,
    )
    .map_err(|e| Failure::new(Kind::Model, e))?;

    let audio = match &args.driven_audio {
        Some(p) => Some(
            sadtalker_audio::load_speech(p, &sadtalker_audio::LoadOptions::default())
                .map_err(bad)?
                .samples,
        ),
        None => None,
    };
    let source_semantics = candle_core::Tensor::from_vec(
        input.source_semantics.clone(),
        (input.channels, SEMANTIC_WINDOW),
        &device,
    )
    .map_err(|e| Failure::new(Kind::Internal, e))?;
    let prepared = renderer
        .prepare(
            &source.to_tensor().map_err(|e| Failure::new(Kind::Internal, e))?,
            &source_semantics,
        )
        .map_err(|e| Failure::new(Kind::Internal, e))?;

    let mut sink = Sink::open(&args.output, audio)?;
    let bar = if args.quiet || args.json {
        ProgressBar::hidden()
    } else {
        let b = ProgressBar::new(input.frame_num as u64);
        b.set_style(
            ProgressStyle::with_template("Face renderer {bar:30} {pos}/{len} frames  {per_sec}  ETA {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    };
    let render_started = Instant::now();
    let result = (|| -> anyhow::Result<()> {
        let padded = input.frame_num.div_ceil(args.batch_size.max(1)) * args.batch_size.max(1);
        for start in (0..padded).step_by(args.batch_size.max(1)) {
            let frames = driving(&input, start, args.batch_size.max(1))?;
            let batch = renderer.render(&prepared, &frames)?;
            for (k, i) in (start..start + frames.len()).enumerate() {
                if i >= input.frame_num {
                    break;
                }
                let (w, h, rgb) = frame_to_rgb8(&batch.get(k)?)?;
                sink.push(i, w, h, rgb)?;
                bar.inc(1);
            }
        }
        Ok(())
    })();
    bar.finish_and_clear();
    if let Err(e) = result {
        sink.abandon();
        return Err(Failure::new(
            Kind::Internal,
            e.context("rendering failed; nothing was written"),
        ));
    }
    sink.finish().map_err(|e| Failure::new(Kind::BadInput, e))?;
    let secs = render_started.elapsed().as_secs_f64();
    if args.json {
        let doc = serde_json::json!({
            "output": args.output,
            "frames": input.frame_num,
            "size": args.size,
            "preprocess": args.preprocess.name(),
            "render_seconds": secs,
            "seconds_per_frame": secs / input.frame_num as f64,
            "total_seconds": started.elapsed().as_secs_f64(),
            "models": { "facevid": facevid.path, "mapping": mapping.path },
        });
        println!("{doc:#}");
    } else {
        println!(
            "wrote {} frames to {} ({:.2} s per frame)",
            input.frame_num,
            args.output.display(),
            secs / input.frame_num as f64
        );
    }
    Ok(())
}
