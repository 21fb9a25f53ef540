//! The options of one job: the reference's `inference.py` arguments with its defaults, plus what this
//! implementation adds (seed, fallback, given landmarks, frame dumps).

use std::path::PathBuf;

use sadtalker_preprocess::PreprocessMode;
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Stage};

/// What to do when a stage after reading the inputs fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fallback {
    /// Fail: no video.
    #[default]
    None,
    /// Write the portrait held still for the whole speech, tagged `comment=degraded: <reason>`, and
    /// report the job as degraded.
    Still,
}

impl std::str::FromStr for Fallback {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Fallback::None),
            "still" => Ok(Fallback::Still),
            other => Err(format!("`{other}`: none or still")),
        }
    }
}

/// Where the networks run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// The best available (the CPU in this build).
    #[default]
    Auto,
    /// The CPU (`--cpu`).
    Cpu,
    /// An NVIDIA GPU (not in this build).
    Cuda,
}

/// One job's options. Field names and defaults follow `inference.py`'s arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateOptions {
    /// `--source_image`: the portrait (PNG or JPEG).
    pub source_image: PathBuf,
    /// `--driven_audio`: the speech (WAV, FLAC, MP3, OGG/Vorbis, M4A/AAC).
    pub driven_audio: PathBuf,
    /// `--ref_eyeblink`: a video (H.264 MP4) whose eye blinks replace the random ones, or its coefficient
    /// `.mat` (`sadtalker extract --video`).
    pub ref_eyeblink: Option<PathBuf>,
    /// `--ref_pose`: a video (or coefficient `.mat`) whose head motion is added.
    pub ref_pose: Option<PathBuf>,
    /// `--result_dir` (default `./results`): the video is `<result_dir>/<YYYY_MM_DD_HH.MM.SS>.mp4`
    /// unless `output` is given.
    pub result_dir: PathBuf,
    /// `-o`: the output file (ours; the reference always names it by the time).
    pub output: Option<PathBuf>,
    /// `--pose_style` 0..45 (default 0).
    pub pose_style: u32,
    /// `--batch_size`: frames per face-renderer call (default 2).
    pub batch_size: usize,
    /// `--size`: face render size, 256 or 512 (default 256).
    pub size: u32,
    /// `--expression_scale` (default 1.0).
    pub expression_scale: f32,
    /// `--input_yaw`: yaw waypoints in degrees.
    pub input_yaw: Option<Vec<f64>>,
    /// `--input_pitch`.
    pub input_pitch: Option<Vec<f64>>,
    /// `--input_roll`.
    pub input_roll: Option<Vec<f64>>,
    /// `--enhancer`: `gfpgan` (GFPGAN v1.4: faces restored, frames upscaled ×2); `RestoreFormer` is refused
    /// as not available.
    pub enhancer: Option<String>,
    /// `--background_enhancer`: `realesrgan`.
    pub background_enhancer: Option<String>,
    /// `--cpu` / `--device`.
    pub device: DeviceChoice,
    /// `--still`: keep the portrait's head pose.
    pub still: bool,
    /// `--preprocess` (default `crop`).
    pub preprocess: PreprocessMode,
    /// `--verbose`: keep the intermediate files (first-frame .mat, crop, coefficients) beside the video.
    pub verbose: bool,
    /// `--old_version`: the pre-v0.0.2 `.pth` checkpoints instead of the safetensors.
    pub old_version: bool,
    /// Seed of the random blinks (Python's `random.seed`) and head-motion latents (ours: the reference
    /// does not seed).
    pub seed: u64,
    /// Random eye blinks (the reference web UI's `use_blink`).
    pub use_blink: bool,
    /// 68 landmarks of the portrait (text, x y per point) instead of face detection.
    pub landmarks: Option<PathBuf>,
    /// Which face when several are found (0: largest × most confident).
    pub face_index: usize,
    /// Face probability a detection needs (the reference's 0.97).
    pub face_threshold: f32,
    /// What to do when a stage fails.
    pub fallback: Fallback,
    /// Also write every frame as PNG into this folder.
    pub frames_dir: Option<PathBuf>,
    /// Refuse speech longer than this (seconds).
    pub max_seconds: f64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            source_image: PathBuf::new(),
            driven_audio: PathBuf::new(),
            ref_eyeblink: None,
            ref_pose: None,
            result_dir: PathBuf::from("./results"),
            output: None,
            pose_style: 0,
            batch_size: 2,
            size: 256,
            expression_scale: 1.0,
            input_yaw: None,
            input_pitch: None,
            input_roll: None,
            enhancer: None,
            background_enhancer: None,
            device: DeviceChoice::Auto,
            still: false,
            preprocess: PreprocessMode::Crop,
            verbose: false,
            old_version: false,
            seed: 0,
            use_blink: true,
            landmarks: None,
            face_index: 0,
            face_threshold: sadtalker_preprocess::detect::CONF_THRESHOLD,
            fallback: Fallback::None,
            frames_dir: None,
            max_seconds: sadtalker_audio::decode::DEFAULT_MAX_SECONDS,
        }
    }
}

/// The enhancers the reference offers (`--enhancer`).
pub const ENHANCERS: [&str; 2] = ["gfpgan", "RestoreFormer"];

impl GenerateOptions {
    /// Checks the options that need no file, before any work. `sizes` are the render sizes the models
    /// support (256/512 for the official files).
    pub fn validate(&self, sizes: &[u32]) -> Result<(), PipelineError> {
        let bad = |m: String| Err(PipelineError::input(Stage::Inputs, m));
        if !sizes.contains(&self.size) {
            return bad(format!(
                "--size {}: the face render size is one of {sizes:?}",
                self.size
            ));
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be at least 1".into());
        }
        if let Err(e) = sadtalker_coeffs::splice::check_pose_style(self.pose_style) {
            return bad(format!("--pose-style: {e}"));
        }
        if !self.expression_scale.is_finite() {
            return bad("--expression-scale must be a finite number".into());
        }
        if !(0.0..=1.0).contains(&self.face_threshold) {
            return bad(format!(
                "--face-threshold {}: a probability between 0 and 1",
                self.face_threshold
            ));
        }
        for (name, list) in [
            ("--input-yaw", &self.input_yaw),
            ("--input-pitch", &self.input_pitch),
            ("--input-roll", &self.input_roll),
        ] {
            if let Some(l) = list
                && (l.is_empty() || l.iter().any(|v| !v.is_finite()))
            {
                return bad(format!("{name} needs one or more finite angles in degrees"));
            }
        }
        if self.device == DeviceChoice::Cuda {
            return Err(PipelineError::new(
                Stage::Inputs,
                crate::error::Cause::Unavailable(
                    "--device cuda: this build runs on the CPU only (no GPU support compiled in); use --cpu".into(),
                ),
            ));
        }
        if let Some(e) = &self.enhancer {
            if !ENHANCERS.iter().any(|k| k.eq_ignore_ascii_case(e)) {
                return bad(format!("--enhancer {e}: one of {}", ENHANCERS.join(", ")));
            }
            if !e.eq_ignore_ascii_case("gfpgan") {
                return Err(PipelineError::new(
                    Stage::Enhance,
                    crate::error::Cause::Unavailable(format!(
                        "--enhancer {e}: RestoreFormer is not available in this build; use --enhancer gfpgan, or \
                         run without --enhancer"
                    )),
                ));
            }
        }
        if let Some(b) = &self.background_enhancer {
            return Err(PipelineError::new(
                Stage::Enhance,
                crate::error::Cause::Unavailable(format!(
                    "--background-enhancer {b}: the background enhancer (Real-ESRGAN) is not available in this \
                     build (the reference uses it only on CUDA); run without it"
                )),
            ));
        }
        if self.source_image.as_os_str().is_empty() {
            return bad("no portrait given (--source-image)".into());
        }
        if self.driven_audio.as_os_str().is_empty() {
            return bad("no speech given (--driven-audio)".into());
        }
        Ok(())
    }

    /// Whether the face renderer takes the 73-input mapping (the `full` modes, `facerender_still.yaml`).
    pub fn full(&self) -> bool {
        self.preprocess.pastes_back()
    }
}
