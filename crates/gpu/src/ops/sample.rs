//! `F.grid_sample`.

use crate::error::{Result, shape_err};
use crate::ops::elementwise::grid;
use crate::ops::{dispatch, same_device, u32_arg};
use crate::tensor::GpuTensor;

/// `F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners)` of a 5-D
/// input `(N, C, D, H, W)` with `grid` `(N, D', H', W', 3)`: the values
/// `sadtalker_ops::grid_sample` gives (within float rounding: the device may fuse the
/// multiply-adds). An input batch of 1 is shared by every grid, as `x.repeat(N, …)` would be,
/// without the copy. Unlike the host, a NaN coordinate samples zero.
pub fn grid_sample(x: &GpuTensor, grid_: &GpuTensor, align_corners: bool) -> Result<GpuTensor> {
    const OP: &str = "grid_sample";
    let dev = same_device(OP, &[x, grid_])?;
    let (xd, gd) = (x.dims(), grid_.dims());
    if xd.len() != 5 || gd.len() != 5 || gd[4] != 3 || !(xd[0] == gd[0] || xd[0] == 1) {
        return shape_err(
            OP,
            format!("expected input (N or 1, C, D, H, W) with grid (N, D', H', W', 3); got input {xd:?}, grid {gd:?}"),
        );
    }
    let (n, c) = (gd[0], xd[1]);
    let shape = [n, c, gd[1], gd[2], gd[3]];
    let y = GpuTensor::uninit(dev, OP, &shape)?;
    u32_arg(OP, x.elem_count())?;
    u32_arg(OP, y.elem_count())?;
    let points = u32_arg(OP, gd[1] * gd[2] * gd[3])?;
    let threads = u32_arg(OP, n * gd[1] * gd[2] * gd[3])?;
    if threads == 0 || c == 0 {
        return Ok(y);
    }
    let (groups, row) = grid(threads);
    let params: [u32; 12] = [
        threads,
        row,
        points,
        u32_arg(OP, c)?,
        u32_arg(OP, xd[2])?,
        u32_arg(OP, xd[3])?,
        u32_arg(OP, xd[4])?,
        u32::from(align_corners),
        u32_arg(OP, xd[0])?,
        0,
        0,
        0,
    ];
    let pipeline = dev.pipeline(OP, include_str!("../shaders/grid_sample.wgsl"))?;
    dispatch(
        dev,
        OP,
        &pipeline,
        bytemuck::cast_slice(&params),
        &[&x.buffer, &grid_.buffer, &y.buffer],
        groups,
    )?;
    Ok(y)
}
