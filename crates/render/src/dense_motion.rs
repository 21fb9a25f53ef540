//! `DenseMotionNetwork` (`facerender/modules/dense_motion.py`): from source and driving
//! keypoints to a dense 3-D deformation field and an occlusion map.

use candle_core::{Device, Tensor};
use sadtalker_gpu::{GpuTensor, context};
use sadtalker_nn::{Activations, BatchNorm, Conv2d, Conv3d, ConvParams, Weights};

use crate::blocks::{Hourglass, make_coordinate_grid, softmax_dim1};
use crate::config::FaceRenderConfig;
use crate::keypoints::Keypoints;
use crate::{RenderError, Result};

/// What the dense motion network predicts for a batch.
pub struct DenseMotion {
    /// `deformation`: `(B, D, H, W, 3)` sampling grid into the source feature volume.
    pub deformation: Tensor,
    /// `occlusion_map`: `(B, 1, H, W)` in [0, 1].
    pub occlusion_map: Tensor,
    /// `mask`: `(B, K + 1, D, H, W)` softmax weights of the background and each keypoint.
    pub mask: Tensor,
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
    /// source feature `(1, c, D, H, W)`.
    pub fn forward(&self, compressed: &Tensor, kp_driving: &Keypoints, kp_source: &Keypoints) -> Result<DenseMotion> {
        let (_, _, d, h, w) = compressed.dims5()?;
        let bs = kp_driving.value.len();
        let k1 = self.num_kp + 1;
        let dev = compressed.device();
        let grid = make_coordinate_grid(d, h, w);
        let sparse = create_sparse_motions(&grid, kp_driving, kp_source);
        let sparse_t = Tensor::from_vec(sparse.clone(), (bs * k1, d, h, w, 3), dev)?;
        let heatmap = create_heatmap_representations(&grid, kp_driving, kp_source, (d, h, w), dev)?.reshape((
            bs * k1,
            1,
            d,
            h,
            w,
        ))?;
        let (mask_logits, occlusion_map) = match context::current() {
            Some(gpu) => {
                let up = |t: &Tensor| GpuTensor::from_tensor(&gpu, t);
                let (m, o) = self.predict(&up(compressed)?, &up(&sparse_t)?, &up(&heatmap)?, bs)?;
                (m.to_tensor()?, o.to_tensor()?)
            }
            None => self.predict(compressed, &sparse_t, &heatmap, bs)?,
        };
        let mask = softmax_dim1(&mask_logits)?;
        let deformation = weighted_motion(&sparse, &mask.to_vec1_flat()?, bs, k1, d * h * w, dev, (d, h, w))?;
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

/// Flattening helper.
trait FlatVec {
    fn to_vec1_flat(&self) -> Result<Vec<f32>>;
}

impl FlatVec for Tensor {
    fn to_vec1_flat(&self) -> Result<Vec<f32>> {
        Ok(self.flatten_all()?.to_vec1::<f32>()?)
    }
}

/// `create_sparse_motions`: for the background the identity grid, for keypoint k
/// `(grid - kp_driving[k]) + kp_source[k]`; laid out `(B, K + 1, D, H, W, 3)`.
fn create_sparse_motions(grid: &[[f32; 3]], kp_driving: &Keypoints, kp_source: &Keypoints) -> Vec<f32> {
    let bs = kp_driving.value.len();
    let mut out = Vec::with_capacity(bs * (kp_driving.value[0].len() + 1) * grid.len() * 3);
    for b in 0..bs {
        let kd = &kp_driving.value[b];
        let ks = &kp_source.value[b.min(kp_source.value.len() - 1)];
        out.extend(grid.iter().flatten());
        for (d, s) in kd.iter().zip(ks) {
            for g in grid {
                for a in 0..3 {
                    out.push((g[a] - d[a]) + s[a]);
                }
            }
        }
    }
    out
}

/// `kp2gaussian` for one keypoint: `exp(-0.5 * |grid - mean|² / 0.01)`.
fn kp2gaussian<'a>(grid: &'a [[f32; 3]], mean: &[f32; 3]) -> impl Iterator<Item = f32> + 'a {
    let mean = *mean;
    grid.iter().map(move |g| {
        let s = (g[0] - mean[0]).powi(2) + (g[1] - mean[1]).powi(2) + (g[2] - mean[2]).powi(2);
        (-0.5 * s / 0.01).exp()
    })
}

/// `create_heatmap_representations`: `(B, K + 1, 1, D, H, W)` of driving minus source
/// Gaussians, zeros for the background.
fn create_heatmap_representations(
    grid: &[[f32; 3]],
    kp_driving: &Keypoints,
    kp_source: &Keypoints,
    (d, h, w): (usize, usize, usize),
    dev: &Device,
) -> Result<Tensor> {
    let bs = kp_driving.value.len();
    let k1 = kp_driving.value[0].len() + 1;
    let mut out = Vec::with_capacity(bs * k1 * grid.len());
    for b in 0..bs {
        let ks = &kp_source.value[b.min(kp_source.value.len() - 1)];
        out.extend(std::iter::repeat_n(0f32, grid.len()));
        for (kd, ks) in kp_driving.value[b].iter().zip(ks) {
            out.extend(kp2gaussian(grid, kd).zip(kp2gaussian(grid, ks)).map(|(a, b)| a - b));
        }
    }
    Ok(Tensor::from_vec(out, (bs, k1, 1, d, h, w), dev)?)
}

/// The deformation: mask weights below 1e-3 zeroed, then `sum_k sparse_motion[k] * mask[k]`,
/// summed over k in order; `(B, D, H, W, 3)`.
fn weighted_motion(
    sparse: &[f32],
    mask: &[f32],
    bs: usize,
    k1: usize,
    voxels: usize,
    dev: &Device,
    (d, h, w): (usize, usize, usize),
) -> Result<Tensor> {
    let mut out = vec![0f32; bs * voxels * 3];
    for b in 0..bs {
        let o = &mut out[b * voxels * 3..][..voxels * 3];
        for k in 0..k1 {
            let m = &mask[(b * k1 + k) * voxels..][..voxels];
            let s = &sparse[(b * k1 + k) * voxels * 3..][..voxels * 3];
            for v in 0..voxels {
                let mv = if m[v] < 1e-3 { 0.0 } else { m[v] };
                for a in 0..3 {
                    o[v * 3 + a] += s[v * 3 + a] * mv;
                }
            }
        }
    }
    Ok(Tensor::from_vec(out, (bs, d, h, w, 3), dev)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use candle_core::{Device, Tensor};
    use sadtalker_checkpoint::Recipe;
    use sadtalker_gpu::{DeviceKind, GpuTensor, Transfers, context};
    use sadtalker_nn::Weights;

    use super::DenseMotionNetwork;
    use crate::config::FaceRenderConfig;
    use crate::test_support::{COUNTING, max_diff, wave};

    /// On a GPU the dense motion's networks take their three inputs up once (the compressed
    /// source, the sparse motions, the heatmaps) and give back the mask's logits and the
    /// occlusion: the deformed features, their concatenation with the heatmaps, the hourglass
    /// (pools, upsampling, skips) and both heads stay on the device, and match the CPU.
    #[test]
    fn the_hourglass_keeps_its_activations_on_the_gpu() {
        let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
            return;
        };
        let _one_at_a_time = COUNTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let w = Weights::from_recipe(Recipe::new(5), &Device::Cpu);
        let net = DenseMotionNetwork::load(&w, &FaceRenderConfig::reduced(70)).unwrap();
        // The reduced network: 15 keypoints + background, 2 compressed channels, depth 8, 16×16.
        let compressed = wave(&[1, 2, 8, 16, 16], 1.0, 0.0);
        let sparse = wave(&[16, 8, 16, 16, 3], 1.1, 0.0);
        let heatmap = wave(&[16, 1, 8, 16, 16], 0.5, 0.0);
        let (mask, occlusion) = net.predict(&compressed, &sparse, &heatmap, 1).unwrap();
        let on_gpu = || {
            let up = |t: &Tensor| GpuTensor::from_tensor(&dev, t).unwrap();
            let (m, o) = net.predict(&up(&compressed), &up(&sparse), &up(&heatmap), 1).unwrap();
            (m.to_tensor().unwrap(), o.to_tensor().unwrap())
        };
        // The first run uploads the weights; the second moves only the activations.
        on_gpu();
        let before = dev.transfers();
        let (gpu_mask, gpu_occlusion) = on_gpu();
        assert_eq!(
            dev.transfers() - before,
            Transfers {
                uploads: 3,
                downloads: 2
            }
        );
        assert_eq!(gpu_mask.dims(), [1, 16, 8, 16, 16]);
        assert_eq!(gpu_occlusion.dims(), [1, 1, 16, 16]);
        let scale = mask.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        let (dm, doc) = (max_diff(&gpu_mask, &mask) / scale, max_diff(&gpu_occlusion, &occlusion));
        assert!(dm <= 1e-4, "mask logits: {dm:e} relative");
        assert!(doc <= 1e-4, "occlusion: {doc:e}");
    }
}
