//! `OcclusionAwareSPADEGenerator` and `SPADEDecoder` (`facerender/modules/generator.py`).

use candle_core::Tensor;
use sadtalker_gpu::GpuTensor;
use sadtalker_nn::{Activations, Conv2d, ConvParams, Weights};
use sadtalker_ops::Resize;

use crate::blocks::{DownBlock2d, ResBlock3d, SameBlock2d, SpadeResnetBlock};
use crate::config::{DecoderConfig, FaceRenderConfig};
use crate::dense_motion::{DenseMotion, DenseMotionNetwork, MotionGeometry};
use crate::keypoints::Keypoints;
use crate::{RenderError, Result};

/// `SPADEDecoder`: six SPADE residual blocks at the feature resolution, then two
/// upsampling blocks, a 3×3 conv to RGB and a sigmoid.
pub struct SpadeDecoder {
    fc: Conv2d,
    g_middle: Vec<SpadeResnetBlock>,
    up_0: SpadeResnetBlock,
    up_1: SpadeResnetBlock,
    conv_img: Conv2d,
}

impl SpadeDecoder {
    pub fn load(w: &Weights, c: &DecoderConfig) -> Result<Self> {
        let (ic, oc, label_nc) = (c.ic, c.oc, c.label_nc);
        let p = ConvParams::padding(1);
        Ok(Self {
            fc: Conv2d::load(&w.pp("fc"), ic, 2 * ic, [3, 3], p, true)?,
            g_middle: (0..6)
                .map(|i| SpadeResnetBlock::load(&w.pp(format!("G_middle_{i}")), 2 * ic, 2 * ic, label_nc))
                .collect::<Result<_>>()?,
            up_0: SpadeResnetBlock::load(&w.pp("up_0"), 2 * ic, ic, label_nc)?,
            up_1: SpadeResnetBlock::load(&w.pp("up_1"), ic, oc, label_nc)?,
            conv_img: Conv2d::load(&w.pp("conv_img"), oc, 3, [3, 3], p, true)?,
        })
    }

    /// `SPADEDecoder.forward`, on whichever side `feature` lives.
    fn forward_on<T: Activations>(&self, feature: &T) -> Result<T> {
        let seg = feature;
        let up = |x: &T| x.interpolate_nearest(&Resize::Scale(vec![2.0, 2.0]));
        let mut x = self.fc.forward(feature)?;
        for block in &self.g_middle {
            x = block.forward(&x, seg)?;
        }
        x = self.up_0.forward(&up(&x)?, seg)?;
        x = self.up_1.forward(&up(&x)?, seg)?;
        x = self.conv_img.forward(&x.leaky_relu(0.2)?)?;
        Ok(x.sigmoid()?)
    }
}

/// `OcclusionAwareSPADEGenerator`, split at the point where the driving keypoints enter:
/// [`encode_source`](Self::encode_source) runs the source-only encoder once per portrait.
pub struct OcclusionAwareSpadeGenerator {
    pub(crate) dense_motion_network: DenseMotionNetwork,
    first: SameBlock2d,
    down_blocks: Vec<DownBlock2d>,
    second: Conv2d,
    resblocks_3d: Vec<ResBlock3d>,
    third: SameBlock2d,
    fourth: Conv2d,
    decoder: SpadeDecoder,
    reshape_channel: usize,
    reshape_depth: usize,
}

/// What the generator produces for a batch of driving keypoints, where it ran (a host
/// `Tensor` or a `GpuTensor`).
pub struct GeneratorOutput<T = Tensor> {
    /// `prediction`: `(B, 3, H, W)` in [0, 1].
    pub prediction: T,
    /// The dense motion that warped the source features.
    pub dense_motion: DenseMotion<T>,
}

impl GeneratorOutput<GpuTensor> {
    /// The frames and the dense motion read back from the GPU.
    pub fn to_host(&self) -> Result<GeneratorOutput> {
        Ok(GeneratorOutput {
            prediction: self.prediction.to_tensor()?,
            dense_motion: self.dense_motion.to_host()?,
        })
    }
}

impl OcclusionAwareSpadeGenerator {
    /// `deform_input`, `third`, `fourth`, the occlusion and the decoder, where the tensors are:
    /// on a GPU nothing crosses to the host until the image.
    fn warp_and_decode<T: Activations>(&self, feature_3d: &T, deformation: &T, occlusion: &T) -> Result<T> {
        // deform_input: the deformation is computed at the feature's size, so the reference's
        // trilinear resize never runs; the batch-1 volume is shared by every frame's grid.
        let out = feature_3d.grid_sample(deformation, false)?;
        let &[bs, c, d, h, w] = out.dims() else {
            return Err(RenderError::Input(format!(
                "deformed feature {:?} is not 5-D",
                out.dims()
            )));
        };
        let out = out.reshape(&[bs, c * d, h, w])?;
        let out = self.fourth.forward(&self.third.forward(&out)?)?;
        // The occlusion map has the feature's size too (no bilinear resize needed).
        let out = out.mul_one_channel(occlusion)?;
        self.decoder.forward_on(&out)
    }

    pub fn load(w: &Weights, cfg: &FaceRenderConfig) -> Result<Self> {
        let g = &cfg.generator;
        let be = g.block_expansion;
        let mut out_features = be;
        let down_blocks = (0..g.num_down_blocks)
            .map(|i| {
                let fin = g.max_features.min(be << i);
                out_features = g.max_features.min(be << (i + 1));
                DownBlock2d::load(&w.pp("down_blocks").pp(i), fin, out_features)
            })
            .collect::<Result<_>>()?;
        let second = Conv2d::load(
            &w.pp("second"),
            out_features,
            g.max_features,
            [1, 1],
            ConvParams::default(),
            true,
        )?;
        let resblocks_3d = (0..g.num_resblocks)
            .map(|i| ResBlock3d::load(&w.pp("resblocks_3d").pp(format!("3dr{i}")), g.reshape_channel))
            .collect::<Result<_>>()?;
        let out_features = be << g.num_down_blocks;
        Ok(Self {
            dense_motion_network: DenseMotionNetwork::load(&w.pp("dense_motion_network"), cfg)?,
            first: SameBlock2d::load(&w.pp("first"), cfg.image_channel, be, 3, 1, false)?,
            down_blocks,
            second,
            resblocks_3d,
            third: SameBlock2d::load(&w.pp("third"), g.max_features, out_features, 3, 1, true)?,
            fourth: Conv2d::load(
                &w.pp("fourth"),
                out_features,
                out_features,
                [1, 1],
                ConvParams::default(),
                true,
            )?,
            decoder: SpadeDecoder::load(&w.pp("decoder"), &cfg.decoder)?,
            reshape_channel: g.reshape_channel,
            reshape_depth: g.reshape_depth,
        })
    }

    /// The encoder: `first`, `down_blocks`, `second`, the reshape to a 3-D volume and
    /// `resblocks_3d` — everything that depends on the source image only.
    pub fn encode_source<T: Activations>(&self, source_image: &T) -> Result<T> {
        let mut out = self.first.forward(source_image)?;
        for b in &self.down_blocks {
            out = b.forward(&out)?;
        }
        out = self.second.forward(&out)?;
        let &[bs, _, h, w] = out.dims() else {
            return Err(RenderError::Input(format!(
                "encoded source {:?} is not 4-D",
                out.dims()
            )));
        };
        let mut feature_3d = out.reshape(&[bs, self.reshape_channel, self.reshape_depth, h, w])?;
        for b in &self.resblocks_3d {
            feature_3d = b.forward(&feature_3d)?;
        }
        Ok(feature_3d)
    }

    /// The rest of `forward` for a batch of driving keypoints, given the encoded source
    /// volume `(1, c, D, H, W)` and its compressed copy for the dense motion network, where
    /// they are: on a GPU only the keypoints go up, and nothing comes back by itself.
    pub fn decode<T: MotionGeometry>(
        &self,
        feature_3d: &T,
        compressed: &T,
        kp_driving: &Keypoints,
        kp_source: &Keypoints,
    ) -> Result<GeneratorOutput<T>> {
        let dense_motion = self.dense_motion_network.forward(compressed, kp_driving, kp_source)?;
        let prediction = self.warp_and_decode(feature_3d, &dense_motion.deformation, &dense_motion.occlusion_map)?;
        Ok(GeneratorOutput {
            prediction,
            dense_motion,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use candle_core::{Device, Tensor};
    use sadtalker_checkpoint::Recipe;
    use sadtalker_gpu::{GpuTensor, Transfers};
    use sadtalker_nn::Weights;

    use super::{OcclusionAwareSpadeGenerator, SpadeDecoder};
    use crate::config::{DecoderConfig, FaceRenderConfig};
    use crate::test_support::{assert_frames_close, counting_gpu, second_run, wave};

    /// After the dense motion, a batch of frames crosses to the GPU once (the source volume, the
    /// deformation, the occlusion) and comes back once, as the image: the warp, `third`,
    /// `fourth`, the occlusion product and the decoder all run there, matching the CPU.
    #[test]
    fn the_warp_and_decoder_keep_their_activations_on_the_gpu() {
        let Some((dev, _counting)) = counting_gpu() else {
            return;
        };
        let w = Weights::from_recipe(Recipe::new(11), &Device::Cpu);
        let generator = OcclusionAwareSpadeGenerator::load(&w, &FaceRenderConfig::reduced(70)).unwrap();
        // The reduced generator's volume: 8 channels × depth 8 at 16×16; one frame (lavapipe
        // takes seconds a frame here: the device test runs batches).
        let feature = wave(&[1, 8, 8, 16, 16], 1.0, 0.0);
        let deformation = wave(&[1, 8, 16, 16, 3], 1.1, 0.0);
        let occlusion = wave(&[1, 1, 16, 16], 0.5, 0.5);
        let cpu = generator.warp_and_decode(&feature, &deformation, &occlusion).unwrap();
        let (gpu, moved) = second_run(&dev, || {
            let up = |t: &Tensor| GpuTensor::from_tensor(&dev, t).unwrap();
            let out = generator.warp_and_decode(&up(&feature), &up(&deformation), &up(&occlusion));
            out.unwrap().to_tensor().unwrap()
        });
        assert_eq!(
            moved,
            Transfers {
                uploads: 3,
                downloads: 1
            }
        );
        assert_eq!(gpu.dims(), [1, 3, 64, 64]);
        assert_frames_close(&gpu, &cpu);
    }

    /// On a GPU the SPADE decoder uploads its input and reads back its image, once each: every
    /// activation between its layers (norms, modulation, activations, upsampling, residual sums,
    /// convolutions) stays on the device. Its frames match the CPU's.
    #[test]
    fn the_decoder_keeps_its_activations_on_the_gpu() {
        let Some((dev, _counting)) = counting_gpu() else {
            return;
        };
        let w = Weights::from_recipe(Recipe::new(7), &Device::Cpu);
        // Two SPADE blocks with a learned shortcut (16 → 8 channels) and two upsamplings.
        let c = DecoderConfig {
            ic: 16,
            oc: 8,
            label_nc: 16,
        };
        let dec = SpadeDecoder::load(&w.pp("decoder"), &c).unwrap();
        let feature = wave(&[2, 16, 12, 10], 1.0, 0.0);
        let cpu = dec.forward_on(&feature).unwrap();
        let (gpu, moved) = second_run(&dev, || {
            let x = GpuTensor::from_tensor(&dev, &feature).unwrap();
            dec.forward_on(&x).unwrap().to_tensor().unwrap()
        });
        assert_eq!(
            moved,
            Transfers {
                uploads: 1,
                downloads: 1
            }
        );
        assert_eq!(gpu.dims(), [2, 3, 48, 40]);
        assert_frames_close(&gpu, &cpu);
    }
}
