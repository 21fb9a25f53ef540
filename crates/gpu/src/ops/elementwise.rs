//! Element-wise maps.

use crate::error::Result;
use crate::ops::{dispatch, u32_arg};
use crate::tensor::GpuTensor;

/// Threads per workgroup of the element-wise kernels (the WGSL `workgroup_size`).
const WG: u32 = 256;

/// Workgroups for `n` elements on a 2-D grid (one dimension holds at most 65535), and the
/// elements per grid row.
fn grid(n: u32) -> ([u32; 3], u32) {
    let groups = n.div_ceil(WG).max(1);
    let x = groups.min(65535);
    let row = x * WG;
    ([x, n.div_ceil(row), 1], row)
}

/// `F.leaky_relu(x, negative_slope)`: exactly `sadtalker_ops::leaky_relu` (`relu` is slope 0).
pub fn leaky_relu(x: &GpuTensor, negative_slope: f32) -> Result<GpuTensor> {
    const OP: &str = "leaky_relu";
    let dev = x.device();
    let n = u32_arg(OP, x.elem_count())?;
    let y = GpuTensor::uninit(dev, OP, x.dims())?;
    let pipeline = dev.pipeline(OP, include_str!("../shaders/leaky_relu.wgsl"))?;
    let (groups, row) = grid(n);
    let params: [u32; 4] = [n, row, negative_slope.to_bits(), 0];
    dispatch(
        dev,
        OP,
        &pipeline,
        bytemuck::cast_slice(&params),
        &[&x.buffer, &y.buffer],
        groups,
    )?;
    Ok(y)
}

/// `F.relu(x)`.
pub fn relu(x: &GpuTensor) -> Result<GpuTensor> {
    leaky_relu(x, 0.0)
}
