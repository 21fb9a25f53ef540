//! The options of one job: the reference's `inference.py` arguments with its defaults, plus what this
//! implementation adds (seed, fallback, given landmarks, frame dumps).

use std::path::PathBuf;

use sadtalker_ops::Precision;
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

/// Where the networks' convolutions run (`--device`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// A discrete or Apple GPU that opens and passes the self-test, else the CPU
    /// ([`crate::compute::auto_eligible`]).
    #[default]
    Auto,
    /// The CPU (`--cpu`).
    Cpu,
    /// An NVIDIA GPU through CUDA (refused with a message: not in this build yet).
    Cuda,
    /// A Vulkan device (NVIDIA, AMD, Intel; Mesa's lavapipe on the CPU).
    Vulkan,
    /// An Apple GPU through Metal.
    Metal,
}

impl DeviceChoice {
    /// The name on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Vulkan => "vulkan",
            DeviceChoice::Metal => "metal",
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "vulkan" => Ok(DeviceChoice::Vulkan),
            "metal" => Ok(DeviceChoice::Metal),
            other => Err(format!("`{other}`: auto, cpu, cuda, vulkan or metal")),
        }
    }
}

/// One job's options. Field names and defaults follow `inference.py`'s arguments.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenerateOptions {
    /// `--source_image`: the portrait (PNG, JPEG, WebP, BMP or TIFF).
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
    /// `--enhancer`: `gfpgan` (GFPGAN v1.4) or `RestoreFormer`: faces restored, frames upscaled ×2.
    pub enhancer: Option<String>,
    /// `--background_enhancer`: `realesrgan` (Real-ESRGAN x2 upscales the frame under the restored faces;
    /// with `--enhancer` only, as in the reference).
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
    /// Precision of the face renderer's convolutions: fp32 (default, matches the reference) or bf16
    /// (bf16 operands, fp32 sums on AMX tiles; fp32 with a warning where the CPU has none).
    pub precision: Precision,
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
            precision: Precision::Fp32,
        }
    }
}

/// The most frames per renderer call `--batch-size` takes: each frame of a call is computed on its own,
/// so a larger batch gains nothing and its buffers grow with it.
pub const MAX_BATCH_SIZE: usize = 64;

/// The largest `--expression-scale`: past a few times the reference's 1.0 the mouth leaves the face.
pub const MAX_EXPRESSION_SCALE: f32 = 10.0;

/// The most head-angle waypoints per `--input-yaw` / `--input-pitch` / `--input-roll`.
pub const MAX_WAYPOINTS: usize = 1000;

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
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return bad(format!(
                "--batch-size {}: frames per renderer call, 1 to {MAX_BATCH_SIZE} (more only costs memory)",
                self.batch_size
            ));
        }
        if let Err(e) = sadtalker_coeffs::splice::check_pose_style(self.pose_style) {
            return bad(format!("--pose-style: {e}"));
        }
        if !(0.0..=MAX_EXPRESSION_SCALE).contains(&self.expression_scale) {
            return bad(format!(
                "--expression-scale {}: a number from 0 (no expression motion) to {MAX_EXPRESSION_SCALE} (1 is the \
                 reference's default)",
                self.expression_scale
            ));
        }
        if !(self.max_seconds.is_finite() && self.max_seconds > 0.0) {
            return bad(format!(
                "--max-seconds {}: a positive number of seconds",
                self.max_seconds
            ));
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
                && (l.is_empty() || l.len() > MAX_WAYPOINTS || l.iter().any(|v| !(-180.0..=180.0).contains(v)))
            {
                return bad(format!(
                    "{name} needs 1 to {MAX_WAYPOINTS} angles in degrees, each from -180 to 180"
                ));
            }
        }
        if let Some(e) = &self.enhancer
            && !ENHANCERS.iter().any(|k| k.eq_ignore_ascii_case(e))
        {
            return bad(format!("--enhancer {e}: one of {}", ENHANCERS.join(", ")));
        }
        if let Some(b) = &self.background_enhancer {
            if !b.eq_ignore_ascii_case("realesrgan") {
                return bad(format!(
                    "--background-enhancer {b}: the background enhancer is realesrgan"
                ));
            }
            if self.enhancer.is_none() {
                // The reference's background upsampler is the face enhancer's (GFPGANer's bg_upsampler).
                return bad(format!(
                    "--background-enhancer {b} upscales the background for the face enhancer: add --enhancer gfpgan \
                     (or RestoreFormer)"
                ));
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut GenerateOptions)) -> Result<(), PipelineError> {
        let mut o = GenerateOptions {
            source_image: "a.png".into(),
            driven_audio: "a.wav".into(),
            ..GenerateOptions::default()
        };
        f(&mut o);
        o.validate(&[256, 512])
    }

    #[test]
    fn option_ranges_are_checked_up_front_including_nan() {
        assert!(with(|_| {}).is_ok());
        type Change = Box<dyn Fn(&mut GenerateOptions)>;
        let refused: [(&str, Change); 9] = [
            ("--batch-size", Box::new(|o| o.batch_size = 0)),
            ("--batch-size", Box::new(|o| o.batch_size = 1_000_000_000)),
            ("--expression-scale", Box::new(|o| o.expression_scale = -1e9)),
            ("--expression-scale", Box::new(|o| o.expression_scale = f32::NAN)),
            ("--max-seconds", Box::new(|o| o.max_seconds = f64::NAN)),
            ("--max-seconds", Box::new(|o| o.max_seconds = -1.0)),
            ("--input-yaw", Box::new(|o| o.input_yaw = Some(vec![f64::INFINITY]))),
            (
                "--input-pitch",
                Box::new(|o| o.input_pitch = Some(vec![0.0; MAX_WAYPOINTS + 1])),
            ),
            ("--face-threshold", Box::new(|o| o.face_threshold = f32::NAN)),
        ];
        for (name, f) in refused {
            let e = with(|o| f(o)).expect_err(name).to_string();
            assert!(e.contains(name), "{name}: {e}");
        }
        assert!(with(|o| o.expression_scale = 0.0).is_ok());
        assert!(with(|o| o.batch_size = MAX_BATCH_SIZE).is_ok());
        assert!(with(|o| o.input_roll = Some(vec![-180.0, 180.0])).is_ok());
    }
}
