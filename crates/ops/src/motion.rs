//! The dense motion network's keypoint geometry (`facerender/modules/dense_motion.py`,
//! `util.make_coordinate_grid`, `util.kp2gaussian`): the per-keypoint sampling grids and
//! heatmaps it feeds the hourglass, and the mask-weighted sum that turns its mask into the
//! deformation. `sadtalker_gpu::ops::motion` mirrors these on a GPU, value for value.

use candle_core::{Device, Tensor};

use crate::{Result, shape_err};

/// One keypoint in the driving frame and in the source, in [-1, 1] volume coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeypointPair {
    /// Where the keypoint is in the driving frame.
    pub driving: [f32; 3],
    /// Where it is in the source.
    pub source: [f32; 3],
}

/// `make_coordinate_grid`'s axis of `n` points: `2 * (i / (n - 1)) - 1` in f32, as the reference.
pub fn grid_axis(n: usize) -> Vec<f32> {
    (0..n).map(|i| 2.0 * (i as f32 / (n as f32 - 1.0)) - 1.0).collect()
}

/// `make_coordinate_grid((d, h, w))`: the `(d, h, w)` points' (x, y, z) in [-1, 1], x fastest.
pub fn coordinate_grid(d: usize, h: usize, w: usize) -> Vec<[f32; 3]> {
    let (xs, ys, zs) = (grid_axis(w), grid_axis(h), grid_axis(d));
    let mut grid = Vec::with_capacity(d * h * w);
    for &z in &zs {
        for &y in &ys {
            for &x in &xs {
                grid.push([x, y, z]);
            }
        }
    }
    grid
}

/// `kp2gaussian` for one keypoint: `exp(-0.5 * |grid - mean|² / 0.01)`.
fn kp2gaussian(g: &[f32; 3], mean: &[f32; 3]) -> f32 {
    let s = (g[0] - mean[0]).powi(2) + (g[1] - mean[1]).powi(2) + (g[2] - mean[2]).powi(2);
    (-0.5 * s / 0.01).exp()
}

/// Checks `pairs` holds `bs` rows of keypoints and returns the keypoints per row.
pub fn keypoints_per_row(op: &'static str, pairs: &[KeypointPair], bs: usize) -> Result<usize> {
    if bs == 0 || pairs.is_empty() || !pairs.len().is_multiple_of(bs) {
        return shape_err(
            op,
            format!("{} keypoint pairs do not make {bs} equal rows", pairs.len()),
        );
    }
    Ok(pairs.len() / bs)
}

/// `create_sparse_motions` and `create_heatmap_representations` for `bs` frames of `K`
/// keypoint pairs (`pairs` row-major `(B, K)`) over a `(d, h, w)` volume:
/// - the sparse motions `(B·(K+1), D, H, W, 3)`: the identity grid for the background, then
///   `(grid - driving) + source` per keypoint;
/// - the heatmaps `(B·(K+1), 1, D, H, W)`: zeros for the background, then the driving
///   Gaussian minus the source one.
pub fn keypoint_motions(
    pairs: &[KeypointPair],
    bs: usize,
    (d, h, w): (usize, usize, usize),
) -> Result<(Tensor, Tensor)> {
    let k = keypoints_per_row("keypoint_motions", pairs, bs)?;
    let grid = coordinate_grid(d, h, w);
    let rows = bs * (k + 1);
    let mut sparse = Vec::with_capacity(rows * grid.len() * 3);
    let mut heatmap = Vec::with_capacity(rows * grid.len());
    for row in pairs.chunks_exact(k) {
        sparse.extend(grid.iter().flatten());
        heatmap.extend(std::iter::repeat_n(0f32, grid.len()));
        for p in row {
            for g in &grid {
                sparse.extend((0..3).map(|a| (g[a] - p.driving[a]) + p.source[a]));
                heatmap.push(kp2gaussian(g, &p.driving) - kp2gaussian(g, &p.source));
            }
        }
    }
    Ok((
        Tensor::from_vec(sparse, (rows, d, h, w, 3), &Device::Cpu)?,
        Tensor::from_vec(heatmap, (rows, 1, d, h, w), &Device::Cpu)?,
    ))
}

/// The shapes [`motion_mask`] takes: `logits` `(B, K+1, D, H, W)`, `sparse` `(B·(K+1), D, H,
/// W, 3)`. Returns `(B, K + 1, voxels)`.
pub fn motion_mask_dims(op: &'static str, logits: &[usize], sparse: &[usize]) -> Result<(usize, usize, usize)> {
    match (logits, sparse) {
        (&[b, k1, d, h, w], &[bk, sd, sh, sw, 3]) if bk == b * k1 && [sd, sh, sw] == [d, h, w] => {
            Ok((b, k1, d * h * w))
        }
        _ => shape_err(
            op,
            format!(
                "expected logits (B, K+1, D, H, W) and sparse motions (B·(K+1), D, H, W, 3); got {logits:?} and {sparse:?}"
            ),
        ),
    }
}

/// The end of `DenseMotionNetwork.forward`: the mask `softmax(logits, dim=1)` `(B, K+1, D, H,
/// W)` and the deformation `(B, D, H, W, 3)`, `sum_k sparse[k] * mask[k]` with weights below
/// 1e-3 zeroed, summed over k in order. One pass per frame, no broadcast temporaries.
pub fn motion_mask(logits: &Tensor, sparse: &Tensor) -> Result<(Tensor, Tensor)> {
    let (bs, k1, voxels) = motion_mask_dims("motion_mask", logits.dims(), sparse.dims())?;
    let x = logits.flatten_all()?.to_vec1::<f32>()?;
    let s = sparse.flatten_all()?.to_vec1::<f32>()?;
    let mut mask = vec![0f32; x.len()];
    let mut deformation = vec![0f32; bs * voxels * 3];
    let mut max = vec![0f32; voxels];
    let mut sum = vec![0f32; voxels];
    for b in 0..bs {
        let x = &x[b * k1 * voxels..][..k1 * voxels];
        let m = &mut mask[b * k1 * voxels..][..k1 * voxels];
        max.copy_from_slice(&x[..voxels]);
        for xk in x.chunks_exact(voxels).skip(1) {
            for (mx, &v) in max.iter_mut().zip(xk) {
                *mx = mx.max(v);
            }
        }
        sum.fill(0.0);
        for (mk, xk) in m.chunks_exact_mut(voxels).zip(x.chunks_exact(voxels)) {
            for v in 0..voxels {
                mk[v] = (xk[v] - max[v]).exp();
                sum[v] += mk[v];
            }
        }
        let o = &mut deformation[b * voxels * 3..][..voxels * 3];
        for (mk, sk) in m
            .chunks_exact_mut(voxels)
            .zip(s[b * k1 * voxels * 3..].chunks_exact(voxels * 3))
        {
            for v in 0..voxels {
                mk[v] /= sum[v];
                let w = if mk[v] < 1e-3 { 0.0 } else { mk[v] };
                for a in 0..3 {
                    o[v * 3 + a] += sk[v * 3 + a] * w;
                }
            }
        }
    }
    Ok((
        Tensor::from_vec(mask, logits.dims(), &Device::Cpu)?,
        Tensor::from_vec(
            deformation,
            (bs, sparse.dim(1)?, sparse.dim(2)?, sparse.dim(3)?, 3),
            &Device::Cpu,
        )?,
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use candle_core::{Device, Tensor};

    use super::{KeypointPair, coordinate_grid, keypoint_motions, motion_mask};

    fn pair(i: usize) -> KeypointPair {
        let v = |o: f32| [0.1 * i as f32 - 0.3 + o, 0.2 - 0.05 * i as f32, o - 0.1];
        KeypointPair {
            driving: v(0.0),
            source: v(0.07),
        }
    }

    /// The grid, the background rows and one keypoint's values, written out by hand.
    #[test]
    fn motions_and_heatmaps_follow_the_formulas() {
        let grid = coordinate_grid(2, 3, 5);
        assert_eq!(grid[0], [-1.0, -1.0, -1.0]);
        assert_eq!(grid[1], [-0.5, -1.0, -1.0]);
        assert_eq!(grid[29], [1.0, 1.0, 1.0]);
        let pairs: Vec<_> = (0..4).map(pair).collect();
        let (sparse, heatmap) = keypoint_motions(&pairs, 2, (2, 3, 5)).unwrap();
        assert_eq!(sparse.dims(), [6, 2, 3, 5, 3]);
        assert_eq!(heatmap.dims(), [6, 1, 2, 3, 5]);
        let s = sparse.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let hm = heatmap.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        // Row 3 is frame 1's background: the identity grid and a zero heatmap.
        assert_eq!(&s[3 * 90..][..3], &grid[0]);
        assert!(hm[3 * 30..][..30].iter().all(|&v| v == 0.0));
        // Row 5 is frame 1's second keypoint (pair 3), at grid point 7.
        let (p, g) = (pairs[3], grid[7]);
        let want: Vec<f32> = (0..3).map(|a| (g[a] - p.driving[a]) + p.source[a]).collect();
        assert_eq!(&s[(5 * 30 + 7) * 3..][..3], &want[..]);
        let gauss = |m: [f32; 3]| (-0.5 * (0..3).map(|a| (g[a] - m[a]).powi(2)).sum::<f32>() / 0.01).exp();
        assert!((hm[5 * 30 + 7] - (gauss(p.driving) - gauss(p.source))).abs() < 1e-7);
        assert!(keypoint_motions(&pairs[..3], 2, (2, 3, 5)).is_err());
    }

    /// The mask is a softmax over dim 1 and the deformation its thresholded weighted sum.
    #[test]
    fn the_mask_is_a_softmax_and_weights_the_motions() {
        let (b, k1, vox) = (2, 3, 4);
        let logits: Vec<f32> = (0..b * k1 * vox).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.9).collect();
        let sparse: Vec<f32> = (0..b * k1 * vox * 3).map(|i| (i % 13) as f32 * 0.1 - 0.6).collect();
        let lt = Tensor::from_vec(logits.clone(), (b, k1, 1, 1, vox), &Device::Cpu).unwrap();
        let st = Tensor::from_vec(sparse.clone(), (b * k1, 1, 1, vox, 3), &Device::Cpu).unwrap();
        let (mask, deformation) = motion_mask(&lt, &st).unwrap();
        assert_eq!(mask.dims(), [b, k1, 1, 1, vox]);
        assert_eq!(deformation.dims(), [b, 1, 1, vox, 3]);
        let m = mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let d = deformation.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        for bi in 0..b {
            for v in 0..vox {
                let x: Vec<f32> = (0..k1).map(|k| logits[(bi * k1 + k) * vox + v]).collect();
                let e: Vec<f32> = x
                    .iter()
                    .map(|&xi| (xi - x.iter().copied().fold(f32::MIN, f32::max)).exp())
                    .collect();
                let total: f32 = e.iter().sum();
                let mut want = [0f32; 3];
                for k in 0..k1 {
                    let mk = e[k] / total;
                    assert!((m[(bi * k1 + k) * vox + v] - mk).abs() < 1e-7);
                    let w = if mk < 1e-3 { 0.0 } else { mk };
                    for a in 0..3 {
                        want[a] += sparse[((bi * k1 + k) * vox + v) * 3 + a] * w;
                    }
                }
                for a in 0..3 {
                    assert!((d[(bi * vox + v) * 3 + a] - want[a]).abs() < 1e-6);
                }
            }
        }
        assert!(motion_mask(&lt, &st.narrow(0, 0, 3).unwrap()).is_err());
    }
}
