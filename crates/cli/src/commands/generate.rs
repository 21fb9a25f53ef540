//! `sadtalker generate`: portrait + speech → talking-head MP4 (the reference's `inference.py`).
//!
//! A thin layer over `sadtalker_pipeline::generate`: the arguments (kebab-case, with the reference's
//! underscore spellings as aliases), one progress bar on stderr, the result as text or `--json`, and the
//! exit code (degraded output is never 0).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::anyhow;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sadtalker_pipeline::Precision;
use sadtalker_pipeline::source_cache::DEFAULT_SOURCE_CACHE;
use sadtalker_pipeline::{
    DeviceChoice, ErrorKind, Fallback, GenerateOptions, Models, PipelineError, Progress, Report, Stage,
};
use sadtalker_preprocess::PreprocessMode;
use sadtalker_store::{ConsoleMode, ConsoleReporter};

use crate::commands::models::StoreArgs;
use crate::exit::{Failure, Kind};

/// `--fallback`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FallbackArg {
    /// A failed stage fails the command.
    None,
    /// A stage failing after the inputs were read writes the portrait held still for the speech, tagged as
    /// degraded, and exits with the degraded code (5).
    Still,
}

impl From<FallbackArg> for Fallback {
    fn from(f: FallbackArg) -> Self {
        match f {
            FallbackArg::None => Fallback::None,
            FallbackArg::Still => Fallback::Still,
        }
    }
}

/// Built-in deterministic networks instead of model files (tests and demos of the plumbing only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BuiltinWeights {
    /// The self-test's networks: a reduced 64-pixel face renderer (`--size 64`); seconds per clip.
    SelfTest,
    /// Full-size networks with the recipe values of tools/reference/make_official_checkpoints.py.
    Recipe,
}

/// The model-finding and download options shared by `generate` and `batch`.
#[derive(Args, Clone, Default)]
pub struct ModelArgs {
    /// A reference-layout `checkpoints` folder to use as is (files are looked for there, then in
    /// DIR/../gfpgan/weights, then in the model store).
    #[arg(long, alias = "checkpoint_dir", value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Use this model manifest (JSON) instead of the built-in list of official files.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Never download: missing model files are an error that says how to install them.
    #[arg(long)]
    pub offline: bool,
    /// Try this mirror first for downloads (<URL>/<file name>; default $SADTALKER_MIRROR).
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Test only: built-in deterministic weights instead of model files; the video shows noise.
    #[arg(long, hide = true, value_enum)]
    pub builtin_weights: Option<BuiltinWeights>,
}

impl ModelArgs {
    /// The networks these arguments name.
    pub fn models(&self, quiet: bool) -> Result<Models, Failure> {
        if let Some(b) = self.builtin_weights {
            // Never silent: the output of these weights is noise.
            eprintln!(
                "warning: --builtin-weights {}: built-in deterministic test weights, not the model files; the \
                 video shows noise",
                match b {
                    BuiltinWeights::SelfTest => "self-test",
                    BuiltinWeights::Recipe => "recipe",
                }
            );
            return Ok(match b {
                BuiltinWeights::SelfTest => Models::self_test(),
                BuiltinWeights::Recipe => Models::recipe(),
            });
        }
        let store = StoreArgs {
            manifest: self.manifest.clone(),
            checkpoint_dir: self.checkpoint_dir.clone(),
        };
        let mut opts = store.options()?;
        opts.offline = self.offline;
        if let Some(m) = &self.mirror {
            opts.mirror = Some(m.clone());
        }
        let mode = if quiet { ConsoleMode::Quiet } else { ConsoleMode::Auto };
        Models::from_store(opts, Arc::new(ConsoleReporter::new(mode))).map_err(pipeline_failure)
    }
}

/// `--source-cache`, for the commands that run many jobs on one set of models (`batch`, `serve`).
#[derive(Args, Clone)]
pub struct SourceCacheArg {
    /// Portraits kept prepared between jobs (crop, 3DMM coefficients, the renderer's source volume;
    /// about 10 MB each at 256, 40 MB at 512): another recording for the same portrait goes straight
    /// to the audio stages. 0 turns it off.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_SOURCE_CACHE as u16,
          value_parser = clap::value_parser!(u16).range(0..=256))]
    pub source_cache: u16,
}

impl SourceCacheArg {
    /// Applies the cache size to `models`.
    pub fn apply(&self, models: Models) -> Models {
        models.with_source_cache(usize::from(self.source_cache))
    }
}

#[derive(Args)]
#[command(after_help = "Examples:
  sadtalker generate --source-image examples/astronaut.jpg --driven-audio examples/speech.wav
  sadtalker generate --source_image face.png --driven_audio talk.wav --preprocess full --still -o talk.mp4
  sadtalker generate --source-image face.png --driven-audio talk.wav --fallback still --json

Exit codes: 0 success, 1 internal failure, 2 invalid command line (also: an output location blocked by a
file), 3 bad input, 4 model files missing or damaged, 5 degraded output (--fallback still wrote the still
video; the message names the failed stage), 130/143 stopped by Ctrl-C/SIGTERM (temporary files removed).")]
pub struct GenerateArgs {
    /// The portrait (PNG, JPEG, WebP, BMP or TIFF).
    #[arg(long, alias = "source_image", value_name = "IMG")]
    pub source_image: PathBuf,
    /// The speech (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC).
    #[arg(long, alias = "driven_audio", value_name = "AUDIO")]
    pub driven_audio: PathBuf,
    /// Folder for the video, named by the time as the reference does (YYYY_MM_DD_HH.MM.SS.mp4).
    #[arg(long, alias = "result_dir", value_name = "DIR", default_value = "./results")]
    pub result_dir: PathBuf,
    /// Write the video to this file instead.
    #[arg(short, long, value_name = "FILE.mp4")]
    pub output: Option<PathBuf>,
    /// Face render size: 256 or 512.
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// How the portrait is cut: crop, extcrop, resize, full (paste back into the whole picture), extfull.
    #[arg(long, default_value = "crop", value_parser = parse_preprocess)]
    pub preprocess: PreprocessMode,
    /// Keep the portrait's head pose (less head motion; use with --preprocess full).
    #[arg(long)]
    pub still: bool,
    /// Head-motion style, 0..45.
    #[arg(long, alias = "pose_style", default_value_t = 0)]
    pub pose_style: u32,
    /// Scale of the expression (mouth) motion.
    #[arg(long, alias = "expression_scale", default_value_t = 1.0)]
    pub expression_scale: f32,
    /// A video (H.264 MP4 in process; other codecs through ffmpeg) or coefficient .mat whose eye blinks are used.
    #[arg(long, alias = "ref_eyeblink", value_name = "VIDEO")]
    pub ref_eyeblink: Option<PathBuf>,
    /// A video (H.264 MP4 in process; other codecs through ffmpeg) or coefficient .mat whose head motion is used.
    #[arg(long, alias = "ref_pose", value_name = "VIDEO")]
    pub ref_pose: Option<PathBuf>,
    /// Yaw waypoints in degrees (head turns through them over the video).
    #[arg(long, alias = "input_yaw", num_args = 1.., allow_negative_numbers = true, value_name = "DEG")]
    pub input_yaw: Option<Vec<f64>>,
    /// Pitch waypoints in degrees.
    #[arg(long, alias = "input_pitch", num_args = 1.., allow_negative_numbers = true, value_name = "DEG")]
    pub input_pitch: Option<Vec<f64>>,
    /// Roll waypoints in degrees.
    #[arg(long, alias = "input_roll", num_args = 1.., allow_negative_numbers = true, value_name = "DEG")]
    pub input_roll: Option<Vec<f64>>,
    /// Frames per face-renderer call.
    #[arg(long, alias = "batch_size", default_value_t = 2)]
    pub batch_size: usize,
    /// Face enhancer: gfpgan (GFPGAN v1.4) or RestoreFormer; frames come out twice the size.
    #[arg(long, value_name = "NAME")]
    pub enhancer: Option<String>,
    /// Background enhancer for --enhancer: realesrgan (Real-ESRGAN x2 upscales the frame under the faces).
    #[arg(long, alias = "background_enhancer", value_name = "NAME")]
    pub background_enhancer: Option<String>,
    /// The reference's 3-D face visualisation video (`3dface.mp4`): not offered; the message says why.
    #[arg(long)]
    pub face3dvis: bool,
    /// Seed of the random blinks and head-motion latents.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Run on the CPU (the reference's flag; the same as --device cpu).
    #[arg(long, conflicts_with = "device")]
    pub cpu: bool,
    #[arg(long, value_parser = parse_device, value_name = "D", help = DEVICE_HELP)]
    pub device: Option<DeviceChoice>,
    /// Keep the intermediate files (first-frame .mat, crop, coefficients) beside the video.
    #[arg(long)]
    pub verbose: bool,
    /// Use the pre-v0.0.2 .pth checkpoints instead of the safetensors.
    #[arg(long, alias = "old_version")]
    pub old_version: bool,
    /// No random eye blinks.
    #[arg(long)]
    pub no_blink: bool,
    /// The portrait's 68 landmarks (text, x y per line) instead of face detection.
    #[arg(long, value_name = "FILE")]
    pub landmarks: Option<PathBuf>,
    /// Which face when several are found (0: the most prominent).
    #[arg(long, default_value_t = 0)]
    pub face_index: usize,
    /// Face probability a detection needs.
    #[arg(long, default_value_t = sadtalker_preprocess::detect::CONF_THRESHOLD)]
    pub face_threshold: f32,
    /// On a failed stage: none (fail) or still (write a flagged still video, exit code 5).
    #[arg(long, value_enum, default_value = "none")]
    pub fallback: FallbackArg,
    /// Also write every frame as PNG into this folder.
    #[arg(long, value_name = "DIR")]
    pub frames_dir: Option<PathBuf>,
    /// Refuse speech longer than this many seconds.
    #[arg(long, default_value_t = sadtalker_audio::decode::DEFAULT_MAX_SECONDS)]
    pub max_seconds: f64,
    /// Face renderer precision: fp32 (matches the reference) or bf16 (bf16 operands with fp32 sums
    /// on AMX tiles: Intel Xeon since Sapphire Rapids; about 40 dB PSNR against fp32's frames). A CPU
    /// without AMX renders fp32 and says so.
    #[arg(long, value_parser = parse_precision, default_value = "fp32", value_name = "P")]
    pub precision: Precision,
    #[command(flatten)]
    pub models: ModelArgs,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the result as JSON on stdout (no progress output).
    #[arg(long)]
    pub json: bool,
}

fn parse_preprocess(s: &str) -> Result<PreprocessMode, String> {
    s.parse()
}

/// `--device`'s help (generate, batch, render, enhance, extract).
pub const DEVICE_HELP: &str = "Where the networks run: auto (a discrete or Apple GPU that passes a self-test, else the CPU), \
     cpu, vulkan (NVIDIA, AMD, Intel; Mesa's lavapipe on the CPU), metal (Apple), cuda (not in this build yet: use \
     vulkan on NVIDIA). Audio, coefficients and image warps stay on the CPU; `sadtalker doctor` lists the devices found";

/// `--device`'s parser (generate, batch, render, enhance, extract).
pub fn parse_device(s: &str) -> Result<DeviceChoice, String> {
    s.parse()
}

/// `--precision`'s parser (generate, batch, render).
pub fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse()
}

impl GenerateArgs {
    /// The library's options.
    pub fn options(&self) -> GenerateOptions {
        GenerateOptions {
            source_image: self.source_image.clone(),
            driven_audio: self.driven_audio.clone(),
            ref_eyeblink: self.ref_eyeblink.clone(),
            ref_pose: self.ref_pose.clone(),
            result_dir: self.result_dir.clone(),
            output: self.output.clone(),
            pose_style: self.pose_style,
            batch_size: self.batch_size,
            size: self.size,
            expression_scale: self.expression_scale,
            input_yaw: self.input_yaw.clone(),
            input_pitch: self.input_pitch.clone(),
            input_roll: self.input_roll.clone(),
            enhancer: self.enhancer.clone(),
            background_enhancer: self.background_enhancer.clone(),
            device: if self.cpu {
                DeviceChoice::Cpu
            } else {
                self.device.unwrap_or_default()
            },
            still: self.still,
            preprocess: self.preprocess,
            verbose: self.verbose,
            old_version: self.old_version,
            seed: self.seed,
            use_blink: !self.no_blink,
            landmarks: self.landmarks.clone(),
            face_index: self.face_index,
            face_threshold: self.face_threshold,
            fallback: self.fallback.into(),
            frames_dir: self.frames_dir.clone(),
            max_seconds: self.max_seconds,
            precision: self.precision,
        }
    }
}

/// The exit-code kind of a pipeline failure.
pub fn kind_of(kind: ErrorKind) -> Kind {
    match kind {
        ErrorKind::BadInput => Kind::BadInput,
        ErrorKind::Model => Kind::Model,
        ErrorKind::Internal => Kind::Internal,
    }
}

/// An output location blocked by a file: a usage error (exit 2), found before any model is loaded.
pub fn blocked_failure(e: sadtalker_pipeline::OutputBlocked) -> Failure {
    Failure::new(Kind::Usage, anyhow!("{e}"))
}

/// A pipeline failure as the CLI reports it: the message, then what to try. A run stopped by a signal
/// exits 130 (SIGINT) or 143 (SIGTERM).
pub fn pipeline_failure(e: PipelineError) -> Failure {
    if e.is_cancelled()
        && let Some(signal) = crate::signals::received()
    {
        return Failure::new(
            Kind::of_signal(signal),
            anyhow!(
                "stopped in the {} stage; no video was written and its temporary files were removed",
                e.stage
            ),
        );
    }
    let kind = kind_of(e.kind());
    let h = e.code().hint();
    Failure::new(kind, anyhow!("{e}\nhint: {h}"))
}

/// One progress bar across the stages: stage name, frames done of total, ETA (stderr). Clones share the
/// bar (the batch runner's job observer prints through one).
#[derive(Clone)]
pub struct StageBar {
    bar: ProgressBar,
    prefix: Arc<Mutex<String>>,
    /// Progress wanted (not --quiet/--json); when stderr is no terminal the bar hides itself and the
    /// stages are printed as plain lines instead (logs of batch machines).
    show: bool,
}

impl StageBar {
    /// A bar on stderr, or a hidden one.
    pub fn new(show: bool) -> Self {
        let bar = if show {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            prefix: Arc::default(),
            show,
        }
    }

    /// Text shown before the stage (e.g. `job 3/10 alice`).
    pub fn set_prefix(&self, prefix: String) {
        *self.prefix.lock().unwrap_or_else(|p| p.into_inner()) = prefix;
    }

    /// Prints a line above the bar.
    pub fn println(&self, line: &str) {
        if !self.show {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.suspend(|| eprintln!("{line}"));
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for StageBar {
    fn stage(&mut self, stage: Stage, total: Option<u64>) {
        let prefix = self.prefix.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let msg = format!("{prefix}{}", stage.label());
        match total {
            Some(n) => {
                self.bar.set_style(
                    ProgressStyle::with_template("{msg:32} {bar:30} {pos}/{len} frames  ETA {eta}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                self.bar.set_length(n);
                self.bar.set_position(0);
                self.bar.reset_eta();
                self.bar.disable_steady_tick();
            }
            None => {
                self.bar.set_style(
                    ProgressStyle::with_template("{msg:32} {spinner} {elapsed}")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                self.bar.set_length(0);
                self.bar.enable_steady_tick(Duration::from_millis(200));
            }
        }
        if self.show && self.bar.is_hidden() {
            eprintln!("{msg}{}", total.map(|n| format!(" ({n} steps)")).unwrap_or_default());
        }
        self.bar.set_message(msg);
    }

    fn advance(&mut self, done: u64) {
        self.bar.set_position(done);
    }

    fn note(&mut self, text: &str) {
        self.println(text);
    }

    /// Ctrl-C / SIGTERM asks the run to stop (see `crate::signals`).
    fn cancelled(&self) -> bool {
        crate::signals::received().is_some()
    }
}

/// The result as JSON (the report, with `degraded` a boolean plus its details).
pub fn report_json(r: &Report) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("ok".into(), serde_json::Value::Bool(r.degraded.is_none()));
        let details = o.remove("degraded").unwrap_or(serde_json::Value::Null);
        o.insert("degraded".into(), serde_json::Value::Bool(r.degraded.is_some()));
        o.insert("degraded_reason".into(), details);
    }
    v
}

/// Why `--face3dvis` is refused.
pub const FACE3DVIS_UNAVAILABLE: &str = "--face3dvis is not offered: the reference's 3-D face video renders the \
     Basel Face Model mesh (checkpoints/BFM_Fitting/BFM_model_front.mat, built from the BFM 2009 \
     `01_MorphableModel.mat`, which the University of Basel gives out only after registration, and which the \
     official download script does not fetch) with a GPU rasteriser (nvdiffrast / pytorch3d). The shape, \
     expression and texture bases it needs are in none of the checkpoints this program loads, so there is no \
     mesh to draw. The coefficients the 3-D face would show are kept with --verbose (the first-frame and \
     audio-driven .mat files); run without --face3dvis.";

/// Runs `sadtalker generate`.
pub fn run(args: GenerateArgs) -> Result<(), Failure> {
    if args.face3dvis {
        return Err(Failure::new(Kind::BadInput, anyhow!(FACE3DVIS_UNAVAILABLE)));
    }
    let quiet = args.quiet || args.json;
    let opts = args.options();
    // Before anything slow: a file where an output folder must be is a mistake in the command line.
    sadtalker_pipeline::check_output_locations(&opts).map_err(blocked_failure)?;
    // Opening the store reads no model file; `generate` checks the options and inputs before it loads any.
    let models = args.models.models(quiet)?;
    let mut bar = StageBar::new(!quiet);
    let result = sadtalker_pipeline::generate(&models, &opts, &mut bar);
    bar.finish();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if args.json {
                // Scripts get the failure on stdout too, in the same shape as a result.
                let v = serde_json::json!({
                    "ok": false,
                    "degraded": false,
                    "error": {
                        "stage": e.stage,
                        "kind": e.kind(),
                        "code": e.code(),
                        "message": e.to_string(),
                        "hint": e.code().hint(),
                    },
                });
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            }
            return Err(pipeline_failure(e));
        }
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report_json(&report)).unwrap_or_default()
        );
    } else {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
        let total = report.seconds.get("total").copied().unwrap_or(0.0);
        println!(
            "{}: {} frames, {}x{}, {:.2} s video, made in {:.1} s",
            report.output.display(),
            report.frames,
            report.width,
            report.height,
            report.video_seconds,
            total
        );
        if !args.quiet {
            let stages: Vec<String> = report
                .seconds
                .iter()
                .filter(|(k, _)| k.as_str() != "total")
                .map(|(k, v)| format!("{k} {v:.1} s"))
                .collect();
            eprintln!("stages: {}", stages.join(", "));
        }
    }
    if let Some(d) = &report.degraded {
        return Err(Failure::new(
            Kind::Degraded,
            anyhow!(
                "degraded output: the {} stage failed, so {} is the portrait held still for the speech \
                 (--fallback still): {}\nhint: {}",
                d.stage,
                report.output.display(),
                d.reason,
                d.code.hint()
            ),
        ));
    }
    Ok(())
}
