//! `audio2pose_models/cvae.py`: the conditional VAE. Inference (`CVAE.test`) runs only the
//! decoder, on a latent `z` drawn by the caller.

use candle_core::{D, Tensor};
use sadtalker_nn::{Linear, Weights};

use super::audio2pose::Audio2PoseConfig;
use super::res_unet::ResUnet;
use crate::Result;
use crate::error::Audio2CoeffError;

/// Head-pose coefficients per frame: 3 angles and 3 translations (columns 64..70).
pub const POSE_DIM: usize = 6;

/// `CVAE`: holds the `decoder` (the `encoder` is training-only and not loaded).
#[derive(Clone, Debug)]
pub struct Cvae {
    decoder: Decoder,
}

impl Cvae {
    /// Loads `decoder.*` under `w` (`netG` inside `Audio2Pose`).
    pub fn load(w: &Weights, cfg: &Audio2PoseConfig) -> Result<Self> {
        Ok(Self {
            decoder: Decoder::load(&w.pp("decoder"), cfg)?,
        })
    }

    /// `CVAE.test(batch)`: the decoder's `pose_motion_pred`.
    pub fn test(&self, z: &Tensor, class_id: &[u32], reference: &Tensor, audio_emb: &Tensor) -> Result<Tensor> {
        self.decoder.forward(z, class_id, reference, audio_emb)
    }
}

/// `DECODER`: `MLP` (`L0`, ReLU, …, `L{n-1}`, sigmoid) from `[ref, z + classbias[class], linear_audio(audio)]`
/// to a `seq_len × 6` sequence, refined by a `ResUnet` and mapped by `pose_linear`.
#[derive(Clone, Debug)]
pub struct Decoder {
    mlp: Vec<Linear>,
    pose_linear: Linear,
    linear_audio: Linear,
    classbias: Tensor,
    resunet: ResUnet,
    seq_len: usize,
    num_classes: usize,
}

impl Decoder {
    /// Loads `MLP.L{i}`, `pose_linear`, `linear_audio`, `classbias` and `resunet` under `w`.
    pub fn load(w: &Weights, cfg: &Audio2PoseConfig) -> Result<Self> {
        let input_size = cfg.latent_size + cfg.seq_len * cfg.audio_emb_out_size + POSE_DIM;
        let sizes: Vec<usize> = std::iter::once(input_size)
            .chain(cfg.decoder_layer_sizes.iter().copied())
            .collect();
        let mlp = sizes
            .windows(2)
            .enumerate()
            .map(|(i, io)| Linear::load(&w.pp("MLP").pp(format!("L{i}")), io[0], io[1], true))
            .collect::<sadtalker_nn::Result<Vec<_>>>()?;
        if sizes.last() != Some(&(cfg.seq_len * POSE_DIM)) {
            return Err(Audio2CoeffError::Config(format!(
                "the decoder's last layer must produce seq_len × 6 = {} values, the configuration gives {:?}",
                cfg.seq_len * POSE_DIM,
                cfg.decoder_layer_sizes
            )));
        }
        Ok(Self {
            mlp,
            pose_linear: Linear::load(&w.pp("pose_linear"), POSE_DIM, POSE_DIM, true)?,
            linear_audio: Linear::load(
                &w.pp("linear_audio"),
                cfg.audio_emb_in_size,
                cfg.audio_emb_out_size,
                true,
            )?,
            classbias: w.get(&[cfg.num_classes, cfg.latent_size], "classbias")?,
            resunet: ResUnet::load(&w.pp("resunet"))?,
            seq_len: cfg.seq_len,
            num_classes: cfg.num_classes,
        })
    }

    /// `z` `(bs, latent)`, one pose style per batch row, `reference` `(bs, 6)` first-frame pose,
    /// `audio_emb` `(bs, seq_len, 512)` → `pose_motion_pred` `(bs, seq_len, 6)`.
    pub fn forward(&self, z: &Tensor, class_id: &[u32], reference: &Tensor, audio_emb: &Tensor) -> Result<Tensor> {
        let bs = z.dim(0)?;
        if class_id.len() != bs {
            return Err(Audio2CoeffError::Input(format!(
                "{} pose styles for a batch of {bs}",
                class_id.len()
            )));
        }
        if let Some(&c) = class_id.iter().find(|&&c| c as usize >= self.num_classes) {
            return Err(Audio2CoeffError::Input(format!(
                "pose style {c} is out of range: Audio2Pose knows styles 0 to {}",
                self.num_classes - 1
            )));
        }
        let audio_out = self.linear_audio.forward(audio_emb)?.reshape((bs, ()))?;
        let idx = Tensor::new(class_id, z.device())?;
        let class_bias = self.classbias.index_select(&idx, 0)?;
        let z = (z + class_bias)?;
        let mut x = Tensor::cat(&[reference, &z, &audio_out], D::Minus1)?;
        let last = self.mlp.len() - 1;
        for (i, layer) in self.mlp.iter().enumerate() {
            x = layer.forward(&x)?;
            x = if i < last {
                x.relu()?
            } else {
                sadtalker_ops::sigmoid(&x)?
            };
        }
        let x_out = x.reshape((bs, 1, self.seq_len, ()))?;
        let pose_emb = self.resunet.forward(&x_out)?;
        self.pose_linear.forward(&pose_emb.squeeze(1)?).map_err(Into::into)
    }
}
