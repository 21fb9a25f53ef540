//! `DenseMotionNetwork` (`facerender/modules/dense_motion.py`): from source and driving
//! keypoints to a dense 3-D deformation field and an occlusion map.

use candle_core::{Device, Tensor};
use sadtalker_nn::{BatchNorm, Conv2d, Conv3d, ConvParams, Weights};
use sadtalker_ops::{grid_sample, sigmoid};

use crate::Result;
use crate::blocks::{Hourglass, make_coordinate_grid, softmax_dim1};
use crate::config::FaceRenderConfig;
use crate::keypoints::Keypoints;

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
    pub fn compress_feature(&self, feature: &Tensor) -> Result<Tensor> {
        Ok(self.norm.forward(&self.compress.forward(feature)?)?.relu()?)
    }

    /// The rest of `forward`, for a batch of driving keypoints, given the compressed
    /// source feature `(1, c, D, H, W)`.
    pub fn forward(&self, compressed: &Tensor, kp_driving: &Keypoints, kp_source: &Keypoints) -> Result<DenseMotion> {
        let (_, c, d, h, w) = compressed.dims5()?;
        let bs = kp_driving.value.len();
        let k1 = self.num_kp + 1;
        let dev = compressed.device();
        let grid = make_coordinate_grid(d, h, w);
        let sparse = create_sparse_motions(&grid, kp_driving, kp_source);
        let sparse_t = Tensor::from_vec(sparse.clone(), (bs * k1, d, h, w, 3), dev)?;
        // create_deformed_feature: the source feature warped by each keypoint's motion.
        let feature_repeat = compressed.repeat((bs * k1, 1, 1, 1, 1))?;
        let deformed = grid_sample(&feature_repeat, &sparse_t, false)?.reshape((bs, k1, c, d, h, w))?;
        let heatmap = create_heatmap_representations(&grid, kp_driving, kp_source, (d, h, w), dev)?;
        let input = Tensor::cat(&[&heatmap, &deformed], 2)?.reshape((bs, k1 * (c + 1), d, h, w))?;
        let prediction = self.hourglass.forward(&input)?;
        let mask = softmax_dim1(&self.mask.forward(&prediction)?)?;
        let deformation = weighted_motion(&sparse, &mask.to_vec1_flat()?, bs, k1, d * h * w, dev, (d, h, w))?;
        let (_, pc, pd, ph, pw) = prediction.dims5()?;
        let occlusion_map = sigmoid(&self.occlusion.forward(&prediction.reshape((bs, pc * pd, ph, pw))?)?)?;
        Ok(DenseMotion {
            deformation,
            occlusion_map,
            mask,
        })
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
