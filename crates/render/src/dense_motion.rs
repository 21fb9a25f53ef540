//! `DenseMotionNetwork` (`facerender/modules/dense_motion.py`): from source and driving
//! keypoints to a dense 3-D deformation field and an occlusion map.

use candle_core::Tensor;
use sadtalker_gpu::GpuTensor;
use sadtalker_nn::{Activations, BatchNorm, Conv2d, Conv3d, ConvParams, Weights};
use sadtalker_ops::KeypointPair;

use crate::blocks::Hourglass;
use crate::config::FaceRenderConfig;
use crate::keypoints::Keypoints;
use crate::{RenderError, Result};

/// What the dense motion network predicts for a batch, where it ran (a host `Tensor` or a
/// `GpuTensor`).
pub struct DenseMotion<T = Tensor> {
    /// `deformation`: `(B, D, H, W, 3)` sampling grid into the source feature volume.
    pub deformation: T,
    /// `occlusion_map`: `(B, 1, H, W)` in [0, 1].
    pub occlusion_map: T,
    /// `mask`: `(B, K + 1, D, H, W)` softmax weights of the background and each keypoint.
    pub mask: T,
}

impl DenseMotion<GpuTensor> {
    /// The three tensors read back from the GPU.
    pub fn to_host(&self) -> Result<DenseMotion> {
        Ok(DenseMotion {
            deformation: self.deformation.to_tensor()?,
            occlusion_map: self.occlusion_map.to_tensor()?,
            mask: self.mask.to_tensor()?,
        })
    }
}

/// The dense motion's keypoint geometry where the activations are: `sadtalker_ops::motion` on
/// the host, `sadtalker_gpu::ops::motion` on a GPU (the same values), so `forward` is one code
/// path for both.
pub trait MotionGeometry: Activations {
    /// The sparse motions `(B·(K+1), D, H, W, 3)` and heatmaps `(B·(K+1), 1, D, H, W)`, made
    /// where `like` is.
    fn keypoint_motions(
        like: &Self,
        pairs: &[KeypointPair],
        bs: usize,
        dhw: (usize, usize, usize),
    ) -> Result<(Self, Self)>;
    /// The mask (softmax of the logits over the keypoints) and the deformation.
    fn motion_mask(logits: &Self, sparse: &Self) -> Result<(Self, Self)>;
}

impl MotionGeometry for Tensor {
    fn keypoint_motions(
        _: &Self,
        pairs: &[KeypointPair],
        bs: usize,
        dhw: (usize, usize, usize),
    ) -> Result<(Self, Self)> {
        Ok(sadtalker_ops::keypoint_motions(pairs, bs, dhw)?)
    }
    fn motion_mask(logits: &Self, sparse: &Self) -> Result<(Self, Self)> {
        Ok(sadtalker_ops::motion_mask(logits, sparse)?)
    }
}

impl MotionGeometry for GpuTensor {
    fn keypoint_motions(
        like: &Self,
        pairs: &[KeypointPair],
        bs: usize,
        dhw: (usize, usize, usize),
    ) -> Result<(Self, Self)> {
        Ok(sadtalker_gpu::keypoint_motions(like.device(), pairs, bs, dhw)?)
    }
    fn motion_mask(logits: &Self, sparse: &Self) -> Result<(Self, Self)> {
        Ok(sadtalker_gpu::motion_mask(logits, sparse)?)
    }
}

/// Each frame's keypoints paired with the source's, row-major `(B, K)`. A source of one row
/// serves every frame, as the reference's broadcast.
fn keypoint_pairs(kp_driving: &Keypoints, kp_source: &Keypoints, num_kp: usize) -> Result<Vec<KeypointPair>> {
    let rows = kp_driving.value.len();
    let sources = kp_source.value.len();
    let fits = |v: &Vec<Vec<[f32; 3]>>| v.iter().all(|r| r.len() == num_kp);
    if rows == 0 || !(sources == 1 || sources == rows) || !fits(&kp_driving.value) || !fits(&kp_source.value) {
        return Err(RenderError::Input(format!(
            "dense motion: expected {num_kp} keypoints for each of the frames and for the source (one row or one per frame); got {rows} frames and {sources} source rows"
        )));
    }
    Ok((0..rows)
        .flat_map(|b| {
            let source = &kp_source.value[b.min(sources - 1)];
            kp_driving.value[b]
                .iter()
                .zip(source)
                .map(|(&driving, &source)| KeypointPair { driving, source })
        })
        .collect())
}

/// `DenseMotionNetwork` with `estimate_occlusion_map=True`.
pub struct DenseMotionNetwork {
    hourglass: Hourglass,
    mask: Conv3d,
    compress: Conv3d,
    norm: BatchNorm,
    occlusion: Conv2d,
    num_kp: usize,
}

impl DenseMotionNetwork {
    pub fn load(w: &Weights, cfg: &FaceRenderConfig) -> Result<Self> {
        let dm = &cfg.generator.dense_motion;
        let k1 = cfg.num_kp + 1;
        let hourglass = Hourglass::load(
            &w.pp("hourglass"),
            dm.block_expansion,
            k1 * (dm.compress + 1),
            dm.num_blocks,
            dm.max_features,
        )?;
        let of = hourglass.out_filters;
        Ok(Self {
            mask: Conv3d::load(&w.pp("mask"), of, k1, [7, 7, 7], ConvParams::padding(3), true)?,
            compress: Conv3d::load(
                &w.pp("compress"),
                cfg.feature_channel,
                dm.compress,
                [1, 1, 1],
                ConvParams::default(),
                true,
            )?,
            norm: BatchNorm::load(&w.pp("norm"), dm.compress, BatchNorm::EPS)?,
            occlusion: Conv2d::load(
                &w.pp("occlusion"),
                of * dm.reshape_depth,
                1,
                [7, 7],
                ConvParams::padding(3),
                true,
            )?,
            hourglass,
            num_kp: cfg.num_kp,
        })
    }

    /// The first lines of `forward`: `relu(norm(compress(feature)))`. It depends on the
    /// source image only, so the renderer computes it once per portrait.
    pub fn compress_feature<T: Activations>(&self, feature: &T) -> Result<T> {
        Ok(self.norm.forward(&self.compress.forward(feature)?)?.relu()?)
    }

    /// The rest of `forward`, for a batch of driving keypoints, given the compressed
    /// source feature `(1, c, D, H, W)`, where that feature is (on a GPU only the keypoints go
    /// up: the geometry, the networks and the mask's weighted sum all run there).
    pub fn forward<T: MotionGeometry>(
        &self,
        compressed: &T,
        kp_driving: &Keypoints,
        kp_source: &Keypoints,
    ) -> Result<DenseMotion<T>> {
        let &[_, _, d, h, w] = compressed.dims() else {
            return Err(RenderError::Input(format!(
                "dense motion: the compressed feature {:?} is not 5-D",
                compressed.dims()
            )));
        };
        let bs = kp_driving.value.len();
        let pairs = keypoint_pairs(kp_driving, kp_source, self.num_kp)?;
        let (sparse, heatmap) = T::keypoint_motions(compressed, &pairs, bs, (d, h, w))?;
        let (mask_logits, occlusion_map) = self.predict(compressed, &sparse, &heatmap, bs)?;
        let (mask, deformation) = T::motion_mask(&mask_logits, &sparse)?;
        Ok(DenseMotion {
            deformation,
            occlusion_map,
            mask,
        })
    }

    /// `create_deformed_feature`, the hourglass and its two heads, where the tensors are (on a
    /// GPU nothing crosses to the host in between): the mask's logits `(B, K + 1, D, H, W)` and
    /// the occlusion map. `sparse` `(B·(K+1), D, H, W, 3)` and `heatmap` `(B·(K+1), 1, D, H, W)`.
    fn predict<T: Activations>(&self, compressed: &T, sparse: &T, heatmap: &T, bs: usize) -> Result<(T, T)> {
        let shape = |t: &T| RenderError::Input(format!("dense motion: unexpected shape {:?}", t.dims()));
        // create_deformed_feature: the source feature warped by each keypoint's motion (the
        // batch-1 feature shared by every grid, as the reference's repeat).
        let deformed = compressed.grid_sample(sparse, false)?;
        let &[bk, c, d, h, w] = deformed.dims() else {
            return Err(shape(&deformed));
        };
        // cat([heatmap, deformed], dim=2) of (B, K+1, ·, D, H, W), as (B·(K+1), ·, D, H, W).
        let input = T::cat_channels(&[heatmap, &deformed])?.reshape(&[bs, bk / bs.max(1) * (c + 1), d, h, w])?;
        let prediction = self.hourglass.forward(&input)?;
        let mask = self.mask.forward(&prediction)?;
        let &[_, pc, pd, ph, pw] = prediction.dims() else {
            return Err(shape(&prediction));
        };
        let occlusion = self.occlusion.forward(&prediction.reshape(&[bs, pc * pd, ph, pw])?)?;
        Ok((mask, occlusion.sigmoid()?))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use candle_core::Device;
    use sadtalker_checkpoint::Recipe;
    use sadtalker_gpu::{GpuTensor, Transfers};
    use sadtalker_nn::Weights;

    use super::DenseMotionNetwork;
    use crate::config::FaceRenderConfig;
    use crate::keypoints::Keypoints;
    use crate::test_support::{counting_gpu, max_diff, second_run, wave};

    /// Keypoints for `rows` frames: 15 points spread over the volume, moved a little per row.
    fn keypoints(rows: usize, shift: f32) -> Keypoints {
        let point = |r: usize, k: usize| {
            let t = k as f32 * 0.7 + r as f32 * 0.3 + shift;
            [0.6 * t.sin(), 0.5 * (1.3 * t).cos(), 0.4 * (0.9 * t).sin()]
        };
        Keypoints {
            value: (0..rows).map(|r| (0..15).map(|k| point(r, k)).collect()).collect(),
        }
    }

    /// On a GPU the dense motion takes up only the compressed source and the keypoints: the
    /// sparse motions and heatmaps are made there, and the deformed features, their
    /// concatenation with the heatmaps, the hourglass (pools, upsampling, skips), both heads,
    /// the mask's softmax and the weighted motion stay on the device. All three results
    /// match the CPU's.
    #[test]
    fn the_dense_motion_keeps_its_activations_on_the_gpu() {
        let Some((dev, _counting)) = counting_gpu() else {
            return;
        };
        let w = Weights::from_recipe(Recipe::new(5), &Device::Cpu);
        let net = DenseMotionNetwork::load(&w, &FaceRenderConfig::reduced(70)).unwrap();
        // The reduced network: 15 keypoints + background, 2 compressed channels, depth 8, 16×16;
        // two frames against one source row.
        let compressed = wave(&[1, 2, 8, 16, 16], 1.0, 0.0);
        let (driving, source) = (keypoints(2, 0.0), keypoints(1, 0.2));
        let cpu = net.forward(&compressed, &driving, &source).unwrap();
        let (gpu, moved) = second_run(&dev, || {
            let c = GpuTensor::from_tensor(&dev, &compressed).unwrap();
            net.forward(&c, &driving, &source).unwrap()
        });
        assert_eq!(
            moved,
            Transfers {
                uploads: 2,
                downloads: 0
            }
        );
        let gpu = gpu.to_host().unwrap();
        assert_eq!(gpu.mask.dims(), [2, 16, 8, 16, 16]);
        assert_eq!(gpu.deformation.dims(), [2, 8, 16, 16, 3]);
        assert_eq!(gpu.occlusion_map.dims(), [2, 1, 16, 16]);
        for (name, g, c) in [
            ("mask", &gpu.mask, &cpu.mask),
            ("deformation", &gpu.deformation, &cpu.deformation),
            ("occlusion", &gpu.occlusion_map, &cpu.occlusion_map),
        ] {
            let diff = max_diff(g, c);
            eprintln!("{name}: max difference {diff:e} from the CPU");
            assert!(diff <= 1e-4, "{name}: max difference {diff:e}");
        }
    }

    /// Keypoint rows that do not fit the network are an error, not a panic.
    #[test]
    fn mismatched_keypoints_are_refused() {
        let w = Weights::from_recipe(Recipe::new(5), &Device::Cpu);
        let net = DenseMotionNetwork::load(&w, &FaceRenderConfig::reduced(70)).unwrap();
        let compressed = wave(&[1, 2, 8, 16, 16], 1.0, 0.0);
        let empty = Keypoints { value: vec![] };
        let mut short = keypoints(1, 0.0);
        short.value[0].pop();
        for (d, s) in [
            (&keypoints(2, 0.0), &empty),
            (&short, &keypoints(1, 0.0)),
            (&keypoints(3, 0.0), &keypoints(2, 0.0)),
        ] {
            assert!(net.forward(&compressed, d, s).is_err());
        }
    }
}
