//! `audio2exp_models/networks.py`: `SimpleWrapperV2`, the Wav2Lip audio encoder followed by one
//! linear map from (audio embedding, reference expression, blink ratio) to a 64-D expression.

use candle_core::{D, Tensor};
use sadtalker_nn::{Linear, Weights};

use crate::Result;
use crate::wav2lip::{AUDIO_EMB, Wav2LipAudioEncoder};

/// Expression coefficients per frame (the first 64 of the 70-D motion coefficients).
pub const EXP_DIM: usize = 64;

/// `SimpleWrapperV2`: parameters `audio_encoder.{0..12}.conv_block.{0,1}.*` and `mapping1.*`.
#[derive(Clone, Debug)]
pub struct SimpleWrapperV2 {
    audio_encoder: Wav2LipAudioEncoder,
    mapping1: Linear,
}

impl SimpleWrapperV2 {
    /// Loads the network from weights scoped at its root (e.g. `audio2exp` in the safetensors).
    pub fn load(w: &Weights) -> Result<Self> {
        Ok(Self {
            audio_encoder: Wav2LipAudioEncoder::load(&w.pp("audio_encoder"))?,
            // nn.Linear(512 + 64 + 1, 64)
            mapping1: Linear::load(&w.pp("mapping1"), AUDIO_EMB + EXP_DIM + 1, EXP_DIM, true)?,
        })
    }

    /// `forward(x, ref, ratio)`: `x` `(bs·T, 1, 80, 16)` mel windows, `ref` `(bs, T, 64)`
    /// reference expressions, `ratio` `(bs, T, 1)` blink ratios → `(bs, T, 64)`.
    pub fn forward(&self, x: &Tensor, reference: &Tensor, ratio: &Tensor) -> Result<Tensor> {
        let n = x.dim(0)?;
        let (bs, t) = (reference.dim(0)?, reference.dim(1)?);
        let emb = self.audio_encoder.forward(x)?.reshape((n, ()))?;
        let ref_reshape = reference.reshape((n, ()))?;
        let ratio = ratio.reshape((n, ()))?;
        let y = self
            .mapping1
            .forward(&Tensor::cat(&[&emb, &ref_reshape, &ratio], D::Minus1)?)?;
        Ok(y.reshape((bs, t, ()))?)
    }
}
