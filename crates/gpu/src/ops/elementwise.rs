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

/// The operations of `unary.wgsl`, by the code its `p.op` holds.
#[derive(Clone, Copy)]
enum Unary {
    LeakyRelu = 0,
    Sigmoid = 1,
}

/// `F.leaky_relu(x, negative_slope)`: exactly `sadtalker_ops::leaky_relu` (`relu` is slope 0).
pub fn leaky_relu(x: &GpuTensor, negative_slope: f32) -> Result<GpuTensor> {
    unary("leaky_relu", Unary::LeakyRelu, x, negative_slope)
}

/// `F.relu(x)`.
pub fn relu(x: &GpuTensor) -> Result<GpuTensor> {
    leaky_relu(x, 0.0)
}

/// `torch.sigmoid(x)`, formed as `sadtalker_ops::sigmoid` forms it (the device's `exp` may
/// differ from the host's in the last bit).
pub fn sigmoid(x: &GpuTensor) -> Result<GpuTensor> {
    unary("sigmoid", Unary::Sigmoid, x, 0.0)
}

/// One dispatch of `unary.wgsl`; `op` names the caller in errors, `arg` is the map's scalar.
fn unary(op: &'static str, code: Unary, x: &GpuTensor, arg: f32) -> Result<GpuTensor> {
    map(
        op,
        "unary",
        include_str!("../shaders/unary.wgsl"),
        &[x],
        [arg.to_bits(), code as u32],
    )
}

/// `a + b` for tensors of one shape (the renderer's residual sums; no broadcasting).
pub fn add(a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    const OP: &str = "add";
    same_device(OP, &[a, b])?;
    if a.dims() != b.dims() {
        return shape_err(OP, format!("shapes {:?} and {:?} differ", a.dims(), b.dims()));
    }
    map(OP, OP, include_str!("../shaders/add.wgsl"), &[a, b], [0, 0])
}

/// One dispatch of an element-wise `shader` (cached as `pipeline`) over `inputs` (same shape,
/// bindings 1, 2, …; the output follows them) with uniform `[n, row, args[0], args[1]]`.
fn map(
    op: &'static str,
    pipeline: &'static str,
    shader: &'static str,
    inputs: &[&GpuTensor],
    args: [u32; 2],
) -> Result<GpuTensor> {
    let x = inputs[0];
    let dev = x.device();
    let n = u32_arg(op, x.elem_count())?;
    let y = GpuTensor::uninit(dev, op, x.dims())?;
    let pipeline = dev.pipeline(pipeline, shader)?;
    let (groups, row) = grid(n);
    let params: [u32; 4] = [n, row, args[0], args[1]];
    let mut buffers: Vec<&wgpu::Buffer> = inputs.iter().map(|t| &t.buffer).collect();
    buffers.push(&y.buffer);
    dispatch(dev, op, &pipeline, bytemuck::cast_slice(&params), &buffers, groups)?;
    Ok(y)
}
