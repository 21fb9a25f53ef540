//! Element-wise maps.

use crate::error::{Result, shape_err};
use crate::ops::{dispatch, same_device, u32_arg};
use crate::tensor::GpuTensor;

/// Threads per workgroup of the element-wise kernels (the WGSL `workgroup_size`).
const WG: u32 = 256;

/// Workgroups for `n` elements on a 2-D grid (one dimension holds at most 65535), and the
/// elements per grid row.
pub(crate) fn grid(n: u32) -> ([u32; 3], u32) {
    let groups = n.div_ceil(WG).max(1);
    let x = groups.min(65535);
    let row = x * WG;
    ([x, n.div_ceil(row), 1], row)
}

/// `F.leaky_relu(x, negative_slope)`: exactly `sadtalker_ops::leaky_relu` (`relu` is slope 0).
pub fn leaky_relu(x: &GpuTensor, negative_slope: f32) -> Result<GpuTensor> {
    map(
        "leaky_relu",
        include_str!("../shaders/leaky_relu.wgsl"),
        &[x],
        negative_slope.to_bits(),
    )
}

/// `F.relu(x)`.
pub fn relu(x: &GpuTensor) -> Result<GpuTensor> {
    leaky_relu(x, 0.0)
}

/// `torch.sigmoid(x)`, formed as `sadtalker_ops::sigmoid` forms it (the device's `exp` may
/// differ from the host's in the last bit).
pub fn sigmoid(x: &GpuTensor) -> Result<GpuTensor> {
    map("sigmoid", include_str!("../shaders/sigmoid.wgsl"), &[x], 0)
}

/// `a + b` for tensors of one shape (the renderer's residual sums; no broadcasting).
pub fn add(a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    const OP: &str = "add";
    same_device(OP, &[a, b])?;
    if a.dims() != b.dims() {
        return shape_err(OP, format!("shapes {:?} and {:?} differ", a.dims(), b.dims()));
    }
    map(OP, include_str!("../shaders/add.wgsl"), &[a, b], 0)
}

/// One dispatch of an element-wise `shader` over `inputs` (same shape, bindings 1, 2, …; the
/// output follows them) with uniform `[n, row, arg, 0]`.
fn map(op: &'static str, shader: &'static str, inputs: &[&GpuTensor], arg: u32) -> Result<GpuTensor> {
    let x = inputs[0];
    let dev = x.device();
    let n = u32_arg(op, x.elem_count())?;
    let y = GpuTensor::uninit(dev, op, x.dims())?;
    let pipeline = dev.pipeline(op, shader)?;
    let (groups, row) = grid(n);
    let params: [u32; 4] = [n, row, arg, 0];
    let mut buffers: Vec<&wgpu::Buffer> = inputs.iter().map(|t| &t.buffer).collect();
    buffers.push(&y.buffer);
    dispatch(dev, op, &pipeline, bytemuck::cast_slice(&params), &buffers, groups)?;
    Ok(y)
}
