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
    Scale = 2,
    Greater = 3,
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

/// `x * s` for a scalar `s` (StyleGAN2's `* sqrt(2)`): exact, as the host's product.
pub fn scale(x: &GpuTensor, s: f32) -> Result<GpuTensor> {
    unary("mul(scalar)", Unary::Scale, x, s)
}

/// `(x > t)` as 1.0 or 0.0 (a NaN gives 0): a mask for `torch.where(x > t, a, 0)`.
pub fn greater(x: &GpuTensor, t: f32) -> Result<GpuTensor> {
    unary("gt", Unary::Greater, x, t)
}

/// One dispatch of `unary.wgsl`; `op` names the caller in errors, `arg` is the map's scalar.
fn unary(op: &'static str, code: Unary, x: &GpuTensor, arg: f32) -> Result<GpuTensor> {
    let args = [arg.to_bits(), code as u32];
    map(
        op,
        "unary",
        include_str!("../shaders/unary.wgsl"),
        x,
        &[&x.buffer],
        &args,
    )
}

/// The operations of `binary.wgsl`, by the code its `p.op` holds.
#[derive(Clone, Copy)]
enum Binary {
    Add = 0,
    Mul = 1,
}

/// `a + b` for tensors of one shape (residual sums; no broadcasting). Exact.
pub fn add(a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    binary("add", Binary::Add, a, b)
}

/// `a * b` for tensors of one shape (StyleGAN2's SFT scale; no broadcasting). Exact.
pub fn mul(a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    binary("mul", Binary::Mul, a, b)
}

/// One dispatch of `binary.wgsl` after checking that `a` and `b` match.
fn binary(op: &'static str, code: Binary, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    same_device(op, &[a, b])?;
    if a.dims() != b.dims() {
        return shape_err(op, format!("shapes {:?} and {:?} differ", a.dims(), b.dims()));
    }
    let shader = include_str!("../shaders/binary.wgsl");
    map(op, "binary", shader, a, &[&a.buffer, &b.buffer], &[code as u32, 0])
}

/// The operations of `broadcast.wgsl`, by the code its `p.op` holds.
#[derive(Clone, Copy)]
enum Broadcast {
    ChannelAffine = 0,
    MulOneChannel = 1,
    ScaleChannels = 2,
    ShiftChannels = 3,
    AddOneChannel = 4,
}

/// `y = fma(x, alpha[c], beta[c])` over the channels (axis 1) of `x`: a batch norm in eval mode
/// with the coefficients `sadtalker_ops::BatchNormStats::coefficients` forms, so the values are
/// `sadtalker_ops::batch_norm`'s to an ulp (a device need not fuse WGSL's `fma`).
pub fn channel_affine(x: &GpuTensor, alpha: &GpuTensor, beta: &GpuTensor) -> Result<GpuTensor> {
    const OP: &str = "batch_norm";
    same_device(OP, &[x, alpha, beta])?;
    let xd = x.dims();
    if xd.len() < 2 {
        return shape_err(OP, format!("expected (N, C, ...), got {xd:?}"));
    }
    let c = xd[1];
    if alpha.dims() != [c] || beta.dims() != [c] {
        return shape_err(
            OP,
            format!(
                "coefficients {:?} and {:?} do not match {c} channels of input {xd:?}",
                alpha.dims(),
                beta.dims()
            ),
        );
    }
    broadcast(OP, Broadcast::ChannelAffine, x, alpha, Some(beta))
}

/// `x * mask` with `mask` `(N, 1, ...)` broadcast over the channels of `x` `(N, C, ...)`: the
/// generator's occlusion (exact, like the host's product).
pub fn mul_one_channel(x: &GpuTensor, mask: &GpuTensor) -> Result<GpuTensor> {
    one_channel("mul(broadcast)", Broadcast::MulOneChannel, x, mask)
}

/// A broadcast of the one-channel `m` `(N, 1, ...)` over the channels of `x` `(N, C, ...)`.
fn one_channel(op: &'static str, code: Broadcast, x: &GpuTensor, m: &GpuTensor) -> Result<GpuTensor> {
    same_device(op, &[x, m])?;
    let (xd, md) = (x.dims(), m.dims());
    if xd.len() < 2 || md.len() != xd.len() || md[0] != xd[0] || md[1] != 1 || md[2..] != xd[2..] {
        return shape_err(
            op,
            format!("expected x (N, C, ...) and a one-channel map (N, 1, ...); got {xd:?} and {md:?}"),
        );
    }
    broadcast(op, code, x, m, None)
}

/// `x * s[n, c]` with `s` `(N, C)`: a scale per sample and channel of `x` `(N, C, ...)`
/// (StyleGAN2's modulation and demodulation; exact, like the host's broadcast product).
pub fn scale_channels(x: &GpuTensor, s: &GpuTensor) -> Result<GpuTensor> {
    const OP: &str = "mul(per channel)";
    same_device(OP, &[x, s])?;
    let xd = x.dims();
    if xd.len() < 2 || s.dims() != &xd[..2] {
        return shape_err(
            OP,
            format!(
                "expected x (N, C, ...) and scales (N, C); got {xd:?} and {:?}",
                s.dims()
            ),
        );
    }
    broadcast(OP, Broadcast::ScaleChannels, x, s, None)
}

/// `x + b[c]` with `b` `(C)`: a bias per channel of `x` `(N, C, ...)` (exact).
pub fn shift_channels(x: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor> {
    const OP: &str = "add(per channel)";
    same_device(OP, &[x, b])?;
    let xd = x.dims();
    if xd.len() < 2 || b.dims() != [xd[1]] {
        return shape_err(
            OP,
            format!("expected x (N, C, ...) and a bias (C); got {xd:?} and {:?}", b.dims()),
        );
    }
    broadcast(OP, Broadcast::ShiftChannels, x, b, None)
}

/// `x + m` with `m` `(N, 1, ...)` added to every channel of `x` `(N, C, ...)` (StyleGAN2's
/// noise injection; exact).
pub fn add_one_channel(x: &GpuTensor, m: &GpuTensor) -> Result<GpuTensor> {
    one_channel("add(broadcast)", Broadcast::AddOneChannel, x, m)
}

/// One dispatch of `broadcast.wgsl` over `x` with operands `a` and (for the affine map) `b`.
fn broadcast(
    op: &'static str,
    code: Broadcast,
    x: &GpuTensor,
    a: &GpuTensor,
    b: Option<&GpuTensor>,
) -> Result<GpuTensor> {
    let xd = x.dims();
    let plane = u32_arg(op, xd[2..].iter().product())?;
    let c = u32_arg(op, xd[1])?;
    if plane == 0 || c == 0 {
        return GpuTensor::uninit(x.device(), op, xd);
    }
    let b = b.map_or(&x.device().inner.dummy, |t| &t.buffer);
    let args = [plane, c, code as u32, 0, 0, 0];
    let shader = include_str!("../shaders/broadcast.wgsl");
    map(op, "broadcast", shader, x, &[&x.buffer, &a.buffer, b], &args)
}

/// One dispatch of an element-wise `shader` (cached as `pipeline`), a thread per element of the
/// output, which has `like`'s shape: see [`per_output_element`].
fn map(
    op: &'static str,
    pipeline: &'static str,
    shader: &'static str,
    like: &GpuTensor,
    buffers: &[&wgpu::Buffer],
    args: &[u32],
) -> Result<GpuTensor> {
    let y = GpuTensor::uninit(like.device(), op, like.dims())?;
    per_output_element(op, pipeline, shader, y, buffers, args)
}

/// One dispatch of `shader` (cached as `pipeline`) with a thread per element of `y`, which it
/// returns: `buffers` at bindings 1, 2, … (`y` follows them), uniform `[n, row, args…]` padded to
/// a multiple of 16 bytes. For maps and gathers whose every output element is computed alone.
pub(crate) fn per_output_element(
    op: &'static str,
    pipeline: &'static str,
    shader: &'static str,
    y: GpuTensor,
    buffers: &[&wgpu::Buffer],
    args: &[u32],
) -> Result<GpuTensor> {
    let n = y.elem_count();
    per_thread(op, pipeline, shader, n, y, buffers, args)
}

/// [`per_output_element`] with `threads` threads instead of one per element of `y` (a thread per
/// line of a reduction); the uniform starts `[threads, row, …]`.
pub(crate) fn per_thread(
    op: &'static str,
    pipeline: &'static str,
    shader: &'static str,
    threads: usize,
    y: GpuTensor,
    buffers: &[&wgpu::Buffer],
    args: &[u32],
) -> Result<GpuTensor> {
    let dev = y.device();
    let n = u32_arg(op, threads)?;
    let pipeline = dev.pipeline(pipeline, shader)?;
    let (groups, row) = grid(n);
    let mut params = vec![n, row];
    params.extend_from_slice(args);
    params.resize(params.len().next_multiple_of(4), 0);
    let mut buffers = buffers.to_vec();
    buffers.push(&y.buffer);
    dispatch(dev, op, &pipeline, bytemuck::cast_slice(&params), &buffers, groups)?;
    Ok(y)
}
