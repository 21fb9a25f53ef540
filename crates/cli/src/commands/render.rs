//! `sadtalker render`: coefficients + a cropped portrait → frames (PNG folder or MP4).
//!
//! The same steps as `sadtalker generate`'s render stage, through the same library functions: the
//! renderer from `sadtalker_pipeline::Models` (the same files, `--checkpoint-dir` and store lookup),
//! the windows, source and frame loop from `sadtalker_pipeline::frames`. This module parses the
//! arguments, shows progress and writes the frames where they were asked for.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, anyhow};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sadtalker_coeffs::CoeffTable;
use sadtalker_pipeline::GenerateOptions;
use sadtalker_pipeline::frames::{facerender_input, prepare_source, render_frames, source_picture};
use sadtalker_preprocess::PreprocessMode;

use crate::commands::generate::{ModelArgs, pipeline_failure};
use crate::exit::{Failure, Kind};

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
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Keep the portrait's head pose (and crop) instead of the generated one.
    #[arg(long)]
    still: bool,
    /// Preprocess mode the coefficients were made with (crop, extcrop, resize, full, extfull); full and
    /// extfull use the 73-input mapping.
    #[arg(long, default_value = "crop", value_parser = parse_preprocess)]
    preprocess: PreprocessMode,
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
    /// Precision: fp32 (matches the reference) or bf16 (AMX tiles; fp32 with a warning on CPUs
    /// without them).
    #[arg(long, value_parser = crate::commands::generate::parse_precision, default_value = "fp32", value_name = "P")]
    precision: sadtalker_pipeline::Precision,
    #[arg(long, value_parser = crate::commands::generate::parse_device, default_value = "auto", value_name = "D",
          help = crate::commands::generate::DEVICE_HELP)]
    device: sadtalker_pipeline::DeviceChoice,
    #[command(flatten)]
    models: ModelArgs,
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

    fn push(&mut self, index: usize, img: &image::RgbImage) -> anyhow::Result<()> {
        match self {
            Sink::Pngs { staging, .. } => {
                let path = staging.join(format!("{:06}.png", index + 1));
                img.save(&path)
                    .with_context(|| format!("cannot write {}", path.display()))
            }
            Sink::Mp4(w) => Ok(w.write_image(img)?),
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

fn parse_preprocess(s: &str) -> Result<PreprocessMode, String> {
    s.parse()
}

fn bad(e: impl Into<anyhow::Error>) -> Failure {
    Failure::new(Kind::BadInput, e)
}

pub fn run(args: RenderArgs) -> Result<(), Failure> {
    let started = Instant::now();
    let opts = GenerateOptions {
        source_image: args.source_image.clone(),
        size: args.size,
        preprocess: args.preprocess,
        still: args.still,
        expression_scale: args.expression_scale,
        batch_size: args.batch_size,
        precision: args.precision,
        device: args.device,
        input_yaw: args.input_yaw.clone(),
        input_pitch: args.input_pitch.clone(),
        input_roll: args.input_roll.clone(),
        ..GenerateOptions::default()
    };
    let compute = sadtalker_pipeline::Compute::resolve(opts.device, opts.precision).map_err(pipeline_failure)?;
    let mut warnings = Vec::new();
    for w in compute.warnings() {
        if !args.json {
            eprintln!("warning: {w}");
        }
        warnings.push(w.clone());
    }
    let models = args.models.models(args.quiet || args.json)?;
    if !models.sizes().contains(&opts.size) {
        return Err(Failure::new(
            Kind::BadInput,
            anyhow!(
                "--size {}: the face render size is one of {:?}",
                opts.size,
                models.sizes()
            ),
        ));
    }
    let first = CoeffTable::read(&args.first_coeff, "coeff_3dmm").map_err(bad)?;
    let generated = CoeffTable::read(&args.coeffs, "coeff_3dmm").map_err(bad)?;
    let input = facerender_input(&first, &generated, &opts).map_err(pipeline_failure)?;
    let picture = image::open(&args.source_image)
        .with_context(|| format!("cannot read the source image {}", args.source_image.display()))
        .map_err(bad)?
        .to_rgb8();
    let source = source_picture(&picture, opts.size).map_err(pipeline_failure)?;
    let renderer = models.renderer(&opts).map_err(pipeline_failure)?;
    let audio = match &args.driven_audio {
        Some(p) => Some(
            sadtalker_audio::load_speech(p, &sadtalker_audio::LoadOptions::default())
                .map_err(bad)?
                .samples,
        ),
        None => None,
    };
    let prepared = prepare_source(&renderer, &source, &input, &compute).map_err(|e| Failure::new(Kind::Internal, e))?;

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
    let result = render_frames(&renderer, &prepared, &input, opts.batch_size, &compute, |i, img| {
        sink.push(i, &img)?;
        bar.inc(1);
        Ok::<(), anyhow::Error>(())
    });
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
        let used: serde_json::Map<String, serde_json::Value> = models
            .files_used()
            .into_iter()
            .map(|(role, path)| (role, serde_json::json!(path)))
            .collect();
        let doc = serde_json::json!({
            "output": args.output,
            "frames": input.frame_num,
            "size": args.size,
            "preprocess": args.preprocess.as_str(),
            "render_seconds": secs,
            "seconds_per_frame": secs / input.frame_num.max(1) as f64,
            "total_seconds": started.elapsed().as_secs_f64(),
            "precision": compute.precision.ran,
            "device": compute.device.kind,
            "device_name": compute.device.name,
            "warnings": warnings,
            "models": used,
        });
        println!("{doc:#}");
    } else {
        println!(
            "wrote {} frames to {} ({:.2} s per frame, {}, {})",
            input.frame_num,
            args.output.display(),
            secs / input.frame_num.max(1) as f64,
            compute.precision.ran,
            compute.device.name
        );
    }
    Ok(())
}
