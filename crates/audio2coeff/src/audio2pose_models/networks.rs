//! `audio2pose_models/networks.py`: the two building blocks `ResUnet` uses.

use candle_core::Tensor;
use sadtalker_nn::{BatchNorm, Conv2d, ConvParams, ConvTranspose2d, Weights};

use crate::Result;

/// `ResidualConv(input_dim, output_dim, stride, padding)`: a pre-activation residual block,
/// `conv_block(x) + conv_skip(x)` with
/// `conv_block = [BN, ReLU, Conv3×3(stride), BN, ReLU, Conv3×3]` and `conv_skip = [Conv3×3(stride), BN]`.
#[derive(Clone, Debug)]
pub struct ResidualConv {
    block_norm0: BatchNorm,
    block_conv2: Conv2d,
    block_norm3: BatchNorm,
    block_conv5: Conv2d,
    skip_conv0: Conv2d,
    skip_norm1: BatchNorm,
}

impl ResidualConv {
    /// Loads `conv_block.{0,2,3,5}` and `conv_skip.{0,1}` under `w`.
    pub fn load(w: &Weights, input_dim: usize, output_dim: usize, stride: [usize; 2], padding: usize) -> Result<Self> {
        let block = w.pp("conv_block");
        let skip = w.pp("conv_skip");
        let strided = ConvParams {
            stride,
            ..ConvParams::padding(padding)
        };
        let skip_params = ConvParams {
            stride,
            ..ConvParams::padding(1)
        };
        Ok(Self {
            block_norm0: BatchNorm::load(&block.pp(0), input_dim, BatchNorm::EPS)?,
            block_conv2: Conv2d::load(&block.pp(2), input_dim, output_dim, [3, 3], strided, true)?,
            block_norm3: BatchNorm::load(&block.pp(3), output_dim, BatchNorm::EPS)?,
            block_conv5: Conv2d::load(
                &block.pp(5),
                output_dim,
                output_dim,
                [3, 3],
                ConvParams::padding(1),
                true,
            )?,
            skip_conv0: Conv2d::load(&skip.pp(0), input_dim, output_dim, [3, 3], skip_params, true)?,
            skip_norm1: BatchNorm::load(&skip.pp(1), output_dim, BatchNorm::EPS)?,
        })
    }

    /// The block's forward pass.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.block_norm0.forward(x)?.relu()?;
        let h = self.block_norm3.forward(&self.block_conv2.forward(&h)?)?.relu()?;
        let h = self.block_conv5.forward(&h)?;
        let skip = self.skip_norm1.forward(&self.skip_conv0.forward(x)?)?;
        Ok((h + skip)?)
    }
}

/// `Upsample(input_dim, output_dim, kernel, stride)`: one `nn.ConvTranspose2d` named `upsample`.
#[derive(Clone, Debug)]
pub struct Upsample {
    upsample: ConvTranspose2d,
}

impl Upsample {
    /// Loads `upsample.*` under `w`.
    pub fn load(
        w: &Weights,
        input_dim: usize,
        output_dim: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
    ) -> Result<Self> {
        let params = ConvParams {
            stride,
            ..ConvParams::default()
        };
        Ok(Self {
            upsample: ConvTranspose2d::load(&w.pp("upsample"), input_dim, output_dim, kernel, params, [0, 0], true)?,
        })
    }

    /// The layer's forward pass.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.upsample.forward(x).map_err(Into::into)
    }
}
