//! `audio2pose_models/audio2pose.py`: `Audio2Pose.test`, the CVAE run over a whole sequence in
//! windows of `SEQ_LEN` frames, each with its own latent draw.

use std::ops::Range;

use candle_core::{D, Device, Tensor};
use sadtalker_nn::Weights;

use super::audio_encoder::AudioEncoder;
use super::cvae::{Cvae, POSE_DIM};
use crate::Result;
use crate::error::Audio2CoeffError;
use crate::noise::NoiseSource;

/// The `MODEL.CVAE` / `DATASET` values of the reference's `auido2pose.yaml` that shape the
/// inference network (the defaults are that file's values; the checkpoints are trained for them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Audio2PoseConfig {
    /// `MODEL.CVAE.SEQ_LEN`: frames per CVAE window.
    pub seq_len: usize,
    /// `MODEL.CVAE.LATENT_SIZE`: size of the latent `z`.
    pub latent_size: usize,
    /// `DATASET.NUM_CLASSES`: number of pose styles.
    pub num_classes: usize,
    /// `MODEL.CVAE.AUDIO_EMB_IN_SIZE`: audio embedding size.
    pub audio_emb_in_size: usize,
    /// `MODEL.CVAE.AUDIO_EMB_OUT_SIZE`: audio embedding size after `linear_audio`.
    pub audio_emb_out_size: usize,
    /// `MODEL.CVAE.DECODER_LAYER_SIZES`.
    pub decoder_layer_sizes: Vec<usize>,
}

impl Default for Audio2PoseConfig {
    fn default() -> Self {
        Self {
            seq_len: 32,
            latent_size: 64,
            num_classes: 46,
            audio_emb_in_size: 512,
            audio_emb_out_size: 6,
            decoder_layer_sizes: vec![128, 192],
        }
    }
}

/// One CVAE window of `Audio2Pose.test`, in frame indices of the whole sequence
/// (frame 0 is the reference frame, whose motion is zero by definition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoseWindow {
    /// The frames whose mel windows are encoded (at most `seq_len`).
    pub frames: Range<usize>,
    /// How many copies of the first embedding are put in front to make `seq_len`
    /// (only when the whole sequence is shorter than one window).
    pub pad: usize,
    /// How many predictions, counted from the end of the window, are kept.
    pub keep: usize,
}

impl PoseWindow {
    /// The output frames this window's kept predictions fill.
    pub fn output_frames(&self) -> Range<usize> {
        self.frames.end - self.keep..self.frames.end
    }
}

/// The windows `Audio2Pose.test` runs for a sequence of `num_frames` frames, in order (the order
/// the latent draws are made in): `div` full windows over frames `1..`, then, when
/// `(num_frames - 1) % seq_len != 0`, one window over the last `seq_len` frames of which only the
/// new ones are kept.
pub fn pose_windows(num_frames: usize, seq_len: usize) -> Vec<PoseWindow> {
    let n = num_frames.saturating_sub(1);
    let (div, re) = (n / seq_len, n % seq_len);
    let mut windows: Vec<PoseWindow> = (0..div)
        .map(|i| PoseWindow {
            frames: 1 + i * seq_len..1 + (i + 1) * seq_len,
            pad: 0,
            keep: seq_len,
        })
        .collect();
    if re != 0 {
        // indiv_mels_use[:, -seq_len:]
        let len = seq_len.min(n);
        windows.push(PoseWindow {
            frames: num_frames - len..num_frames,
            pad: seq_len - len,
            keep: re,
        });
    }
    windows
}

/// `Audio2Pose` at inference: `audio_encoder` and `netG` (a [`Cvae`]); `netD_motion` is not loaded.
#[derive(Clone, Debug)]
pub struct Audio2Pose {
    audio_encoder: AudioEncoder,
    net_g: Cvae,
    cfg: Audio2PoseConfig,
    device: Device,
}

impl Audio2Pose {
    /// Loads `audio_encoder.*` and `netG.decoder.*` under `w` (`audio2pose` in the safetensors).
    pub fn load(w: &Weights, cfg: Audio2PoseConfig) -> Result<Self> {
        Ok(Self {
            audio_encoder: AudioEncoder::load(&w.pp("audio_encoder"))?,
            net_g: Cvae::load(&w.pp("netG"), &cfg)?,
            cfg,
            device: w.device().clone(),
        })
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &Audio2PoseConfig {
        &self.cfg
    }

    /// `test(x)['pose_pred']`: `indiv_mels` `(bs, T, 1, 80, 16)`, `reference` `(bs, ·, ≥6)` whose
    /// first row's last 6 columns are the reference pose, one pose style per batch row →
    /// `(bs, T, 6)`. One latent `(bs, latent_size)` is drawn from `noise` per window.
    pub fn test(
        &self,
        indiv_mels: &Tensor,
        reference: &Tensor,
        class_id: &[u32],
        noise: &mut dyn NoiseSource,
    ) -> Result<Tensor> {
        let (bs, num_frames) = (indiv_mels.dim(0)?, indiv_mels.dim(1)?);
        if num_frames == 0 {
            return Err(Audio2CoeffError::Input(
                "no frames: the audio is shorter than one video frame (40 ms)".into(),
            ));
        }
        let ref_pose = reference
            .narrow(1, 0, 1)?
            .narrow(D::Minus1, reference.dim(D::Minus1)? - POSE_DIM, POSE_DIM)?; // (bs, 1, 6)
        let mut motion = vec![ref_pose.zeros_like()?];
        for window in pose_windows(num_frames, self.cfg.seq_len) {
            let z = self.draw_z(bs, noise)?;
            let mels = indiv_mels.narrow(1, window.frames.start, window.frames.len())?;
            let pred = self.window(&mels, window.pad, &z, class_id, &ref_pose.squeeze(1)?)?;
            motion.push(pred.narrow(1, self.cfg.seq_len - window.keep, window.keep)?);
        }
        let motion = Tensor::cat(&motion, 1)?;
        Ok(motion.broadcast_add(&ref_pose)?)
    }

    /// Draws one latent `(bs, latent_size)`, as `torch.randn(bs, latent_dim)`.
    pub fn draw_z(&self, bs: usize, noise: &mut dyn NoiseSource) -> Result<Tensor> {
        let values = noise.standard_normal(bs * self.cfg.latent_size)?;
        Ok(Tensor::from_vec(values, (bs, self.cfg.latent_size), &self.device)?)
    }

    /// One window: encodes `mels` `(bs, len, 1, 80, 16)`, pads the embeddings in front with `pad`
    /// copies of the first one, and decodes → `pose_motion_pred` `(bs, seq_len, 6)`.
    pub fn window(&self, mels: &Tensor, pad: usize, z: &Tensor, class_id: &[u32], ref_pose: &Tensor) -> Result<Tensor> {
        let mut audio_emb = self.audio_encoder.forward(mels)?;
        if pad > 0 {
            let first = audio_emb.narrow(1, 0, 1)?;
            let (bs, _, dim) = first.dims3()?;
            let padding = first.broadcast_as((bs, pad, dim))?;
            audio_emb = Tensor::cat(&[&padding, &audio_emb], 1)?;
        }
        self.net_g.test(z, class_id, ref_pose, &audio_emb)
    }

    /// Decodes several windows of one sequence in one batch: `audio_emb` `(k, seq_len, 512)`
    /// (already encoded and padded), `z` `(k, latent)`, the same style and reference pose `(1, 6)`
    /// for all → `(k, seq_len, 6)`. Equal to `k` separate [`Audio2Pose::window`] calls.
    pub fn decode_windows(&self, audio_emb: &Tensor, z: &Tensor, class_id: u32, ref_pose: &Tensor) -> Result<Tensor> {
        let k = audio_emb.dim(0)?;
        let ref_pose = ref_pose.broadcast_as((k, POSE_DIM))?.contiguous()?;
        self.net_g.test(z, &vec![class_id; k], &ref_pose, audio_emb)
    }

    /// The audio encoder alone: `(B, T, 1, 80, 16)` → `(B, T, 512)`.
    pub fn encode(&self, mels: &Tensor) -> Result<Tensor> {
        self.audio_encoder.forward(mels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_reference_split() {
        // 1 frame: only the reference frame.
        assert!(pose_windows(1, 32).is_empty());
        // 20 frames: one short window over frames 1..20, padded by 13, all 19 kept.
        assert_eq!(
            pose_windows(20, 32),
            vec![PoseWindow {
                frames: 1..20,
                pad: 13,
                keep: 19
            }]
        );
        // 33 frames: exactly one full window.
        assert_eq!(pose_windows(33, 32).len(), 1);
        // 100 frames: 3 full windows (1..97) and the last 32 frames with 3 kept (97..100).
        let w = pose_windows(100, 32);
        assert_eq!(w.len(), 4);
        assert_eq!(w[2].frames, 65..97);
        assert_eq!(w[3].frames, 68..100);
        assert_eq!(w[3].output_frames(), 97..100);
        // Every frame after the first is produced exactly once.
        let mut covered: Vec<usize> = w.iter().flat_map(|w| w.output_frames()).collect();
        covered.sort_unstable();
        assert_eq!(covered, (1..100).collect::<Vec<_>>());
    }
}
