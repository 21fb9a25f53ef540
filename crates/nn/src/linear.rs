use candle_core::Tensor;
use sadtalker_checkpoint::Weights;

use crate::Result;

/// `torch.nn.Linear`: `weight` `(out, in)`, optional `bias` `(out)`; `y = x Wᵀ + b` over
/// the last axis of any-rank input.
#[derive(Clone, Debug)]
pub struct Linear {
    weight_t: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// `nn.Linear(in_features, out_features, bias)`.
    pub fn load(w: &Weights, in_features: usize, out_features: usize, bias: bool) -> Result<Self> {
        // Stored transposed once, so every forward is a plain (.., in) x (in, out) matmul.
        let weight_t = w.get(&[out_features, in_features], "weight")?.t()?.contiguous()?;
        let bias = if bias {
            Some(w.get(&[out_features], "bias")?)
        } else {
            None
        };
        Ok(Self { weight_t, bias })
    }

    /// The layer's forward pass.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.broadcast_matmul(&self.weight_t)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}
