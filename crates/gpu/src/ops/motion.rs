//! The dense motion network's keypoint geometry, as `sadtalker_ops::motion`.

use sadtalker_ops::motion::{KeypointPair, grid_axis, keypoints_per_row, motion_mask_dims};

use crate::device::Device;
use crate::error::Result;
use crate::ops::elementwise::grid;
use crate::ops::{dispatch, u32_arg};
use crate::tensor::GpuTensor;

/// `sadtalker_ops::keypoint_motions` on `dev`: the sparse motions `(B·(K+1), D, H, W, 3)` and
/// heatmaps `(B·(K+1), 1, D, H, W)` of `bs` frames of keypoint pairs, made on the device from
/// one small upload (the grid's axes and the pairs). The same values within the device's
/// `exp` rounding.
pub fn keypoint_motions(
    dev: &Device,
    pairs: &[KeypointPair],
    bs: usize,
    (d, h, w): (usize, usize, usize),
) -> Result<(GpuTensor, GpuTensor)> {
    const OP: &str = "keypoint_motions";
    let k1 = keypoints_per_row(OP, pairs, bs)? + 1;
    let voxels = d * h * w;
    let sparse = GpuTensor::uninit(dev, OP, &[bs * k1, d, h, w, 3])?;
    let heatmap = GpuTensor::uninit(dev, OP, &[bs * k1, 1, d, h, w])?;
    let threads = u32_arg(OP, bs * k1 * voxels)?;
    u32_arg(OP, sparse.elem_count())?;
    if threads == 0 {
        return Ok((sparse, heatmap));
    }
    let mut table = grid_axis(w);
    table.extend(grid_axis(h));
    table.extend(grid_axis(d));
    table.extend(pairs.iter().flat_map(|p| p.driving.into_iter().chain(p.source)));
    let table = GpuTensor::from_slice(dev, &table, &[table.len()])?;
    let (groups, row) = grid(threads);
    let params: [u32; 8] = [
        threads,
        row,
        u32_arg(OP, voxels)?,
        u32_arg(OP, k1)?,
        u32_arg(OP, w)?,
        u32_arg(OP, h)?,
        u32_arg(OP, d)?,
        0,
    ];
    let pipeline = dev.pipeline(OP, include_str!("../shaders/keypoint_motions.wgsl"))?;
    dispatch(
        dev,
        OP,
        &pipeline,
        bytemuck::cast_slice(&params),
        &[&table.buffer, &sparse.buffer, &heatmap.buffer],
        groups,
    )?;
    Ok((sparse, heatmap))
}

/// `sadtalker_ops::motion_mask` on the device: the mask `softmax(logits, dim=1)` and the
/// deformation, from `logits` `(B, K+1, D, H, W)` and `sparse` `(B·(K+1), D, H, W, 3)`. The
/// same values within the device's `exp` and division rounding.
pub fn motion_mask(logits: &GpuTensor, sparse: &GpuTensor) -> Result<(GpuTensor, GpuTensor)> {
    const OP: &str = "motion_mask";
    let dev = crate::ops::same_device(OP, &[logits, sparse])?;
    let (bs, k1, voxels) = motion_mask_dims(OP, logits.dims(), sparse.dims())?;
    let sd = sparse.dims();
    let mask = GpuTensor::uninit(dev, OP, logits.dims())?;
    let deformation = GpuTensor::uninit(dev, OP, &[bs, sd[1], sd[2], sd[3], 3])?;
    u32_arg(OP, sparse.elem_count())?;
    let threads = u32_arg(OP, bs * voxels)?;
    if threads == 0 || k1 == 0 {
        return Ok((mask, deformation));
    }
    let (groups, row) = grid(threads);
    let params: [u32; 4] = [threads, row, u32_arg(OP, voxels)?, u32_arg(OP, k1)?];
    let pipeline = dev.pipeline(OP, include_str!("../shaders/motion_mask.wgsl"))?;
    dispatch(
        dev,
        OP,
        &pipeline,
        bytemuck::cast_slice(&params),
        &[&logits.buffer, &sparse.buffer, &mask.buffer, &deformation.buffer],
        groups,
    )?;
    Ok((mask, deformation))
}
