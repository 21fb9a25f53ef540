//! `audio2exp_models/audio2exp.py`: `Audio2Exp.test`, the expression network run over a whole
//! sequence of per-frame mel windows.

use candle_core::{D, Tensor};

use super::networks::{EXP_DIM, SimpleWrapperV2};
use crate::Result;
use crate::wav2lip::{MEL_BINS, MEL_STEPS};

/// `Audio2Exp`: holds `netG` (a [`SimpleWrapperV2`]) and runs it step by step over the frames.
#[derive(Clone, Debug)]
pub struct Audio2Exp {
    net_g: SimpleWrapperV2,
}

impl Audio2Exp {
    /// Frames per network call in the reference's `test` (`for i in range(0, T, 10)`). Frames are
    /// independent (batch norm runs on its stored statistics), so any step gives the same values;
    /// [`Audio2Exp::step`] lets callers choose a larger one for speed.
    pub const FRAMES_PER_STEP: usize = 10;

    /// Wraps a loaded `netG`.
    pub fn new(net_g: SimpleWrapperV2) -> Self {
        Self { net_g }
    }

    /// `test(batch)['exp_coeff_pred']`: `indiv_mels` `(bs, T, 1, 80, 16)`, `reference`
    /// `(bs, T, ≥64)` (the first 64 columns are used), `ratio_gt` `(bs, T, 1)` → `(bs, T, 64)`.
    pub fn test(&self, indiv_mels: &Tensor, reference: &Tensor, ratio_gt: &Tensor) -> Result<Tensor> {
        let t = indiv_mels.dim(1)?;
        let mut preds = Vec::with_capacity(t.div_ceil(Self::FRAMES_PER_STEP));
        for i in (0..t).step_by(Self::FRAMES_PER_STEP) {
            let n = Self::FRAMES_PER_STEP.min(t - i);
            preds.push(self.step(
                &indiv_mels.narrow(1, i, n)?,
                &reference.narrow(1, i, n)?,
                &ratio_gt.narrow(1, i, n)?,
            )?);
        }
        Ok(Tensor::cat(&preds, 1)?)
    }

    /// One step of `test`: the same shapes as [`Audio2Exp::test`] for a run of frames.
    pub fn step(&self, mels: &Tensor, reference: &Tensor, ratio: &Tensor) -> Result<Tensor> {
        let audiox = mels.reshape(((), 1, MEL_BINS, MEL_STEPS))?;
        let reference = reference.narrow(D::Minus1, 0, EXP_DIM)?;
        self.net_g.forward(&audiox, &reference, ratio)
    }
}
