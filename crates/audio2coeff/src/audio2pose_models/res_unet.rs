//! `audio2pose_models/res_unet.py`: the residual U-Net over a `(bs, 1, 32, 6)` pose sequence
//! (frames along the height, which is the only axis it down- and upsamples).

use candle_core::Tensor;
use sadtalker_nn::{BatchNorm, Conv2d, ConvParams, Weights};

use super::networks::{ResidualConv, Upsample};
use crate::Result;

/// `ResUnet(channel=1, filters=[32, 64, 128, 256])`.
#[derive(Clone, Debug)]
pub struct ResUnet {
    input_layer_conv0: Conv2d,
    input_layer_norm1: BatchNorm,
    input_layer_conv3: Conv2d,
    input_skip: Conv2d,
    residual_conv_1: ResidualConv,
    residual_conv_2: ResidualConv,
    bridge: ResidualConv,
    upsample_1: Upsample,
    up_residual_conv1: ResidualConv,
    upsample_2: Upsample,
    up_residual_conv2: ResidualConv,
    upsample_3: Upsample,
    up_residual_conv3: ResidualConv,
    output_layer: Conv2d,
}

impl ResUnet {
    /// Loads the network under `w` (its parameter names as in the reference).
    pub fn load(w: &Weights) -> Result<Self> {
        const CHANNEL: usize = 1;
        const F: [usize; 4] = [32, 64, 128, 256];
        let p1 = ConvParams::padding(1);
        let input = w.pp("input_layer");
        let down = [2, 1];
        Ok(Self {
            input_layer_conv0: Conv2d::load(&input.pp(0), CHANNEL, F[0], [3, 3], p1, true)?,
            input_layer_norm1: BatchNorm::load(&input.pp(1), F[0], BatchNorm::EPS)?,
            input_layer_conv3: Conv2d::load(&input.pp(3), F[0], F[0], [3, 3], p1, true)?,
            input_skip: Conv2d::load(&w.pp("input_skip").pp(0), CHANNEL, F[0], [3, 3], p1, true)?,
            residual_conv_1: ResidualConv::load(&w.pp("residual_conv_1"), F[0], F[1], down, 1)?,
            residual_conv_2: ResidualConv::load(&w.pp("residual_conv_2"), F[1], F[2], down, 1)?,
            bridge: ResidualConv::load(&w.pp("bridge"), F[2], F[3], down, 1)?,
            upsample_1: Upsample::load(&w.pp("upsample_1"), F[3], F[3], [2, 1], [2, 1])?,
            up_residual_conv1: ResidualConv::load(&w.pp("up_residual_conv1"), F[3] + F[2], F[2], [1, 1], 1)?,
            upsample_2: Upsample::load(&w.pp("upsample_2"), F[2], F[2], [2, 1], [2, 1])?,
            up_residual_conv2: ResidualConv::load(&w.pp("up_residual_conv2"), F[2] + F[1], F[1], [1, 1], 1)?,
            upsample_3: Upsample::load(&w.pp("upsample_3"), F[1], F[1], [2, 1], [2, 1])?,
            up_residual_conv3: ResidualConv::load(&w.pp("up_residual_conv3"), F[1] + F[0], F[0], [1, 1], 1)?,
            output_layer: Conv2d::load(
                &w.pp("output_layer").pp(0),
                F[0],
                1,
                [1, 1],
                ConvParams::default(),
                true,
            )?,
        })
    }

    /// `(bs, 1, H, W)` → `(bs, 1, H, W)` in `(0, 1)`; `H` must be a multiple of 8.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Encode
        let h = self
            .input_layer_norm1
            .forward(&self.input_layer_conv0.forward(x)?)?
            .relu()?;
        let x1 = (self.input_layer_conv3.forward(&h)? + self.input_skip.forward(x)?)?;
        let x2 = self.residual_conv_1.forward(&x1)?;
        let x3 = self.residual_conv_2.forward(&x2)?;
        // Bridge
        let x4 = self.bridge.forward(&x3)?;
        // Decode
        let x4 = self.upsample_1.forward(&x4)?;
        let x5 = Tensor::cat(&[&x4, &x3], 1)?;
        let x6 = self.up_residual_conv1.forward(&x5)?;
        let x6 = self.upsample_2.forward(&x6)?;
        let x7 = Tensor::cat(&[&x6, &x2], 1)?;
        let x8 = self.up_residual_conv2.forward(&x7)?;
        let x8 = self.upsample_3.forward(&x8)?;
        let x9 = Tensor::cat(&[&x8, &x1], 1)?;
        let x10 = self.up_residual_conv3.forward(&x9)?;
        Ok(sadtalker_ops::sigmoid(&self.output_layer.forward(&x10)?)?)
    }
}
