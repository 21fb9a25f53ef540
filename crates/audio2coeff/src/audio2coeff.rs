//! `test_audio2coeff.py`: `Audio2Coeff`, the whole step from per-frame mel windows to the
//! `(frames, 70)` motion coefficients: expression (Audio2Exp), head pose (Audio2Pose), the
//! Savitzky–Golay smoothing of the pose, and the `--ref-pose` splice.
//!
//! Unlike the reference, which holds every mel window of the audio in one tensor, the networks
//! here pull the windows they need from a [`MelWindows`] source a step at a time, so memory does
//! not grow with the audio beyond the per-frame results (70 floats per frame).

use std::ops::Range;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use sadtalker_checkpoint::Weights;
use sadtalker_coeffs::savgol::smooth_pose;
use sadtalker_coeffs::splice::{apply_ref_pose, check_pose_style};
use sadtalker_coeffs::{CoeffTable, EXP, MOTION_DIM, MotionCoeff, POSE};

use crate::audio2exp_models::networks::EXP_DIM;
use crate::audio2exp_models::{Audio2Exp, SimpleWrapperV2};
use crate::audio2pose_models::audio2pose::pose_windows;
use crate::audio2pose_models::cvae::POSE_DIM;
use crate::audio2pose_models::{Audio2Pose, Audio2PoseConfig};
use crate::error::{Audio2CoeffError, Result};
use crate::noise::NoiseSource;
use crate::wav2lip::{MEL_BINS, MEL_STEPS};

/// The per-frame mel windows of the driving audio (`indiv_mels` of `generate_batch.py`):
/// for video frame `i`, the 16 mel frames starting at `int(80 · (i − 2) / 25)` (clamped), as an
/// `80 × 16` (bins × time) window.
pub trait MelWindows {
    /// Number of video frames (windows).
    fn num_frames(&self) -> usize;
    /// The windows of `frames` as a `(frames.len(), 1, 80, 16)` `f32` tensor.
    fn windows(&self, frames: Range<usize>) -> Result<Tensor>;
}

/// All windows in one `(T, 1, 80, 16)` tensor (tests, short audio).
impl MelWindows for Tensor {
    fn num_frames(&self) -> usize {
        self.dims().first().copied().unwrap_or(0)
    }

    fn windows(&self, frames: Range<usize>) -> Result<Tensor> {
        let t = self.reshape(((), 1, MEL_BINS, MEL_STEPS))?;
        Ok(t.narrow(0, frames.start, frames.len())?)
    }
}

/// What one run of Audio2Coeff takes (the `batch` of `get_data` for one audio file).
pub struct Audio2CoeffInput<'a> {
    /// The per-frame mel windows; their count is the number of video frames.
    pub mels: &'a dyn MelWindows,
    /// The source image's coefficients (`coeff_3dmm[0, :70]` of the first-frame file): its
    /// expression is the reference expression, its pose the starting pose.
    pub first_frame: MotionCoeff,
    /// The blink ratio per frame (`ratio_gt`); zeros mean no blink. Ignored (all zeros, as the
    /// reference sets them) when `ref_eyeblink` is given.
    pub blink_ratio: &'a [f32],
    /// `--ref-eyeblink`: coefficients of a reference video whose expression (columns 0..64),
    /// repeated or truncated to the audio's length, replaces the reference expression per frame.
    pub ref_eyeblink: Option<&'a CoeffTable>,
}

impl Audio2CoeffInput<'_> {
    /// `batch['ref'][0, i, :64]` and `batch['ratio_gt'][0, i]` of `get_data`: frame `i`'s reference
    /// expression (the source's, or the eye-blink reference's repeated over the audio) and its blink
    /// ratio (zero with an eye-blink reference, as the reference sets it).
    pub fn reference_at(&self, i: usize) -> (&[f32], f32) {
        match self.ref_eyeblink {
            Some(r) => (&r.row(i % r.rows)[EXP], 0.0),
            None => (self.first_frame.exp(), self.blink_ratio[i]),
        }
    }
}

/// How Audio2Coeff runs.
#[derive(Clone, Debug)]
pub struct Audio2CoeffOptions {
    /// `--pose-style`: the pose style (CVAE class), 0 to 45.
    pub pose_style: u32,
    /// `--ref-pose`: coefficients of a reference video whose head motion (relative to its first
    /// frame) is added to the predicted pose.
    pub ref_pose: Option<CoeffTable>,
    /// Frames per Audio2Exp step (the reference uses 10; more is faster, same values).
    pub exp_frames_per_step: usize,
    /// CVAE windows per Audio2Pose step (the reference runs one; more is faster, same values).
    pub pose_windows_per_step: usize,
}

impl Default for Audio2CoeffOptions {
    fn default() -> Self {
        Self {
            pose_style: 0,
            ref_pose: None,
            exp_frames_per_step: 100,
            pose_windows_per_step: 4,
        }
    }
}

/// Which part of the run a progress report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Audio2Exp (counted in frames).
    Expression,
    /// Audio2Pose (counted in frames).
    Pose,
}

/// What [`Audio2Coeff::generate`] produces.
#[derive(Clone, Debug)]
pub struct Audio2CoeffOutput {
    /// `exp_coeff_pred`: `frames × 64`, row-major.
    pub exp: Vec<f32>,
    /// `pose_pred` before smoothing: `frames × 6`, row-major.
    pub pose: Vec<f32>,
    /// The final sequence (expression, smoothed pose, `--ref-pose` applied): what goes into the `.mat`.
    pub coeffs: Vec<MotionCoeff>,
}

/// Where the Audio2Coeff weights are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audio2CoeffFiles {
    /// `SadTalker_V0.0.2_{256,512}.safetensors`: tensors under `audio2exp.` and `audio2pose.`.
    Safetensors(PathBuf),
    /// The pre-v0.0.2-rc checkpoints, each `{'model': state_dict, ...}`.
    Legacy {
        /// `auido2exp_00300-model.pth`.
        audio2exp: PathBuf,
        /// `auido2pose_00140-model.pth`.
        audio2pose: PathBuf,
    },
}

/// The combined checkpoint of the given face-render size.
pub fn safetensors_name(size: u32) -> String {
    format!("SadTalker_V0.0.2_{size}.safetensors")
}

/// The legacy Audio2Exp checkpoint (the reference spells it `auido`).
pub const LEGACY_AUDIO2EXP: &str = "auido2exp_00300-model.pth";
/// The legacy Audio2Pose checkpoint.
pub const LEGACY_AUDIO2POSE: &str = "auido2pose_00140-model.pth";

impl Audio2CoeffFiles {
    /// The files in a reference-layout checkpoint folder, as `init_path` picks them: the
    /// safetensors of `size` (256 or 512) when present, else the legacy pair.
    pub fn in_dir(dir: &Path, size: u32) -> Result<Self> {
        let st = dir.join(safetensors_name(size));
        if st.is_file() {
            return Ok(Self::Safetensors(st));
        }
        let (exp, pose) = (dir.join(LEGACY_AUDIO2EXP), dir.join(LEGACY_AUDIO2POSE));
        if exp.is_file() && pose.is_file() {
            return Ok(Self::Legacy {
                audio2exp: exp,
                audio2pose: pose,
            });
        }
        Err(Audio2CoeffError::NoCheckpoint {
            dir: dir.to_path_buf(),
            wanted: safetensors_name(size),
        })
    }
}

/// `Audio2Coeff`: the two networks, ready to run.
#[derive(Clone, Debug)]
pub struct Audio2Coeff {
    audio2exp: Audio2Exp,
    audio2pose: Audio2Pose,
}

/// Tensors of a checkpoint's Audio2Pose that inference does not use (training-only parts).
fn training_only(name: &str) -> bool {
    name.contains("netG.encoder.") || name.contains("netD_motion.")
}

fn check_all_used(w: &Weights, file: &Path, ignore: fn(&str) -> bool) -> Result<()> {
    let unused: Vec<String> = w.unused().into_iter().filter(|n| !ignore(n)).collect();
    match unused.first() {
        None => Ok(()),
        Some(first) => Err(Audio2CoeffError::UnexpectedTensors {
            file: file.display().to_string(),
            prefix: w.prefix().to_owned(),
            count: unused.len(),
            first: first.clone(),
        }),
    }
}

impl Audio2Coeff {
    /// Builds the networks from weights scoped at `SimpleWrapperV2` (Audio2Exp's `netG`) and at
    /// `Audio2Pose`.
    pub fn from_weights(audio2exp: &Weights, audio2pose: &Weights, cfg: Audio2PoseConfig) -> Result<Self> {
        Ok(Self {
            audio2exp: Audio2Exp::new(SimpleWrapperV2::load(audio2exp)?),
            audio2pose: Audio2Pose::load(audio2pose, cfg)?,
        })
    }

    /// Loads from the official checkpoints, checking that every tensor of the networks' scopes is
    /// used (as PyTorch's strict `load_state_dict`), except the training-only CVAE encoder and
    /// pose discriminator.
    pub fn load(files: &Audio2CoeffFiles, device: &Device) -> Result<Self> {
        let (exp_w, exp_file, pose_w, pose_file) = match files {
            Audio2CoeffFiles::Safetensors(path) => {
                let w = Weights::from_file(path, device)?;
                (
                    Self::audio2exp_scope(&w.pp("audio2exp")),
                    path,
                    w.pp("audio2pose"),
                    path,
                )
            }
            Audio2CoeffFiles::Legacy { audio2exp, audio2pose } => (
                Weights::from_file(audio2exp, device)?.pp("model"),
                audio2exp,
                Weights::from_file(audio2pose, device)?.pp("model"),
                audio2pose,
            ),
        };
        let net = Self::from_weights(&exp_w, &pose_w, Audio2PoseConfig::default())?;
        check_all_used(&exp_w, exp_file, |_| false)?;
        check_all_used(&pose_w, pose_file, training_only)?;
        Ok(net)
    }

    /// Where `SimpleWrapperV2`'s tensors sit under a checkpoint's `audio2exp` prefix.
    ///
    /// The official file stores them directly (`audio2exp.audio_encoder.…`, which the reference
    /// loader strips to `SimpleWrapperV2`'s own names); a file written from an `Audio2Exp` module
    /// has them one level deeper (`audio2exp.netG.audio_encoder.…`). Both are accepted.
    pub fn audio2exp_scope(w: &Weights) -> Weights {
        if !w.contains("mapping1.weight") && w.contains("netG.mapping1.weight") {
            w.pp("netG")
        } else {
            w.clone()
        }
    }

    /// The expression network.
    pub fn audio2exp(&self) -> &Audio2Exp {
        &self.audio2exp
    }

    /// The pose network.
    pub fn audio2pose(&self) -> &Audio2Pose {
        &self.audio2pose
    }

    /// `Audio2Coeff.generate` without the file writing: expression and pose for every frame,
    /// the pose smoothed (`savgol_filter(pose, 13, 2)`, shorter windows for short audio), and the
    /// `--ref-pose` motion added. `progress(stage, frames_done, frames_total)` is called after each step.
    pub fn generate(
        &self,
        input: &Audio2CoeffInput<'_>,
        opts: &Audio2CoeffOptions,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Stage, usize, usize),
    ) -> Result<Audio2CoeffOutput> {
        let frames = input.mels.num_frames();
        if frames == 0 {
            return Err(Audio2CoeffError::Input(
                "the audio is shorter than one video frame (40 ms): nothing to animate".into(),
            ));
        }
        if input.blink_ratio.len() != frames {
            return Err(Audio2CoeffError::Input(format!(
                "{} blink ratios for {frames} frames",
                input.blink_ratio.len()
            )));
        }
        let pose_style = check_pose_style(opts.pose_style)?;
        if let Some(r) = input.ref_eyeblink
            && (r.rows == 0 || r.width < EXP.end)
        {
            return Err(Audio2CoeffError::Input(format!(
                "the eye-blink reference has {} frames of {} coefficients; it needs at least one frame of 64",
                r.rows, r.width
            )));
        }
        let exp = self.run_expression(input, opts.exp_frames_per_step.max(1), progress)?;
        let pose = self.run_pose(input, pose_style, opts.pose_windows_per_step.max(1), noise, progress)?;

        let smoothed = smooth_pose(&pose, frames, POSE_DIM);
        let mut coeffs: Vec<MotionCoeff> = (0..frames)
            .map(|i| {
                let mut c = [0f32; MOTION_DIM];
                c[EXP].copy_from_slice(&exp[i * EXP_DIM..(i + 1) * EXP_DIM]);
                c[POSE].copy_from_slice(&smoothed[i * POSE_DIM..(i + 1) * POSE_DIM]);
                MotionCoeff(c)
            })
            .collect();
        if let Some(reference) = &opts.ref_pose {
            apply_ref_pose(&mut coeffs, reference)?;
        }
        Ok(Audio2CoeffOutput { exp, pose, coeffs })
    }

    /// Audio2Exp over all frames, a step at a time.
    fn run_expression(
        &self,
        input: &Audio2CoeffInput<'_>,
        step: usize,
        progress: &mut dyn FnMut(Stage, usize, usize),
    ) -> Result<Vec<f32>> {
        let frames = input.mels.num_frames();
        let device = Device::Cpu;
        let mut exp = Vec::with_capacity(frames * EXP_DIM);
        for start in (0..frames).step_by(step) {
            let range = start..(start + step).min(frames);
            let n = range.len();
            let mels = input.mels.windows(range.clone())?.unsqueeze(0)?;
            // batch['ref'][:, :, :64]: the source expression, or the eye-blink reference's.
            let mut reference = Vec::with_capacity(n * EXP_DIM);
            let mut ratio = Vec::with_capacity(n);
            for i in range {
                let (exp, r) = input.reference_at(i);
                reference.extend_from_slice(exp);
                ratio.push(r);
            }
            let reference = Tensor::from_vec(reference, (1, n, EXP_DIM), &device)?;
            let ratio = Tensor::from_vec(ratio, (1, n, 1), &device)?;
            let pred = self.audio2exp.step(&mels, &reference, &ratio)?;
            exp.extend(pred.flatten_all()?.to_vec1::<f32>()?);
            progress(Stage::Expression, start + n, frames);
        }
        Ok(exp)
    }

    /// Audio2Pose over all frames: the reference's windows, several decoded per step.
    fn run_pose(
        &self,
        input: &Audio2CoeffInput<'_>,
        pose_style: u32,
        windows_per_step: usize,
        noise: &mut dyn NoiseSource,
        progress: &mut dyn FnMut(Stage, usize, usize),
    ) -> Result<Vec<f32>> {
        let frames = input.mels.num_frames();
        let device = Device::Cpu;
        let net = &self.audio2pose;
        let seq_len = net.config().seq_len;
        let ref_pose_values = input.first_frame.pose().to_vec();
        let ref_pose = Tensor::from_vec(ref_pose_values.clone(), (1, POSE_DIM), &device)?;
        // pose_pred = ref + motion, with zero motion for the first (reference) frame.
        let mut pose = ref_pose_values.repeat(frames);
        let windows = pose_windows(frames, seq_len);
        let mut done = 1;
        for group in windows.chunks(windows_per_step) {
            // One encoder call for every window of the step (frames are independent).
            let first = group[0].frames.start;
            let last = group[group.len() - 1].frames.end;
            let emb = net
                .encode(&input.mels.windows(first..last)?.unsqueeze(0)?)?
                .squeeze(0)?;
            let mut embs = Vec::with_capacity(group.len());
            let mut zs = Vec::with_capacity(group.len());
            for w in group {
                // torch.randn(bs, latent) per window, in window order.
                zs.push(net.draw_z(1, noise)?);
                let e = emb.narrow(0, w.frames.start - first, w.frames.len())?;
                let e = if w.pad > 0 {
                    let pad = e.narrow(0, 0, 1)?.broadcast_as((w.pad, e.dim(1)?))?;
                    Tensor::cat(&[&pad, &e], 0)?
                } else {
                    e
                };
                embs.push(e);
            }
            let pred = net.decode_windows(&Tensor::stack(&embs, 0)?, &Tensor::cat(&zs, 0)?, pose_style, &ref_pose)?;
            for (k, w) in group.iter().enumerate() {
                let kept = pred
                    .get(k)?
                    .narrow(0, seq_len - w.keep, w.keep)?
                    .broadcast_add(&ref_pose)?
                    .flatten_all()?
                    .to_vec1::<f32>()?;
                let out = w.output_frames();
                pose[out.start * POSE_DIM..out.end * POSE_DIM].copy_from_slice(&kept);
                done += w.keep;
            }
            progress(Stage::Pose, done, frames);
        }
        progress(Stage::Pose, frames, frames);
        Ok(pose)
    }
}
