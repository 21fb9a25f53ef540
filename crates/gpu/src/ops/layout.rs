//! Copies that rearrange memory: `torch.cat`, `Tensor.narrow`, `transpose`, `F.pad`.

use crate::device::Device;
use crate::error::{Result, shape_err};
use crate::ops::elementwise::per_output_element;
use crate::ops::{same_device, u32_arg};
use crate::tensor::GpuTensor;

/// `torch.cat(parts, dim=1)`: the parts' channels one after another, every other dimension
/// equal. Buffer-to-buffer copies on the device (one per part and batch item), no kernel.
pub fn cat_channels(parts: &[&GpuTensor]) -> Result<GpuTensor> {
    const OP: &str = "cat";
    let dev = same_device(OP, parts)?;
    let first = parts[0].dims();
    let fits = |d: &[usize]| d.len() == first.len() && d.len() >= 2 && d[0] == first[0] && d[2..] == first[2..];
    if !parts.iter().all(|p| fits(p.dims())) {
        let dims: Vec<&[usize]> = parts.iter().map(|p| p.dims()).collect();
        return shape_err(OP, format!("parts {dims:?} differ outside dimension 1"));
    }
    let (n, plane): (usize, usize) = (first[0], first[2..].iter().product());
    let channels: usize = parts.iter().map(|p| p.dims()[1]).sum();
    let mut shape = first.to_vec();
    shape[1] = channels;
    let y = GpuTensor::uninit(dev, OP, &shape)?;
    if y.elem_count() == 0 {
        return Ok(y);
    }
    let mut copies = Vec::with_capacity(parts.len() * n);
    let mut at = 0usize;
    for p in parts {
        let block = p.dims()[1] * plane;
        copies.extend((0..n).map(|b| (&p.buffer, b * block, b * channels * plane + at, block)));
        at += block;
    }
    copy(dev, OP, &y, &copies)?;
    Ok(y)
}

/// Slices of at least this many elements are moved by buffer copies (one per slice), shorter
/// ones by one gather kernel: a copy command per 20-element row of the mapping network's
/// `(B, 1024, T)` activations would be thousands of commands.
const COPY_MIN_BLOCK: usize = 4096;

/// `x.narrow(dim, start, len)`: indices `start..start + len` of axis `dim`, copied into a
/// tensor of their own — by buffer copies when the slices are long, else by a gather kernel.
pub fn narrow(x: &GpuTensor, dim: usize, start: usize, len: usize) -> Result<GpuTensor> {
    const OP: &str = "narrow";
    let xd = x.dims();
    if dim >= xd.len() || start.checked_add(len).is_none_or(|end| end > xd[dim]) {
        return shape_err(OP, format!("indices {start}..{start}+{len} of axis {dim} of {xd:?}"));
    }
    let outer: usize = xd[..dim].iter().product();
    let inner: usize = xd[dim + 1..].iter().product();
    let mut shape = xd.to_vec();
    shape[dim] = len;
    let dev = x.device();
    let y = GpuTensor::uninit(dev, OP, &shape)?;
    if y.elem_count() == 0 {
        return Ok(y);
    }
    let block = len * inner;
    if block >= COPY_MIN_BLOCK {
        let copies: Vec<_> = (0..outer)
            .map(|o| (&x.buffer, (o * xd[dim] + start) * inner, o * block, block))
            .collect();
        copy(dev, OP, &y, &copies)?;
        return Ok(y);
    }
    u32_arg(OP, x.elem_count())?;
    let args = [inner, len, xd[dim], start].map(|v| u32_arg(OP, v));
    let args = args.into_iter().collect::<Result<Vec<_>>>()?;
    let shader = include_str!("../shaders/narrow.wgsl");
    per_output_element(OP, OP, shader, y, &[&x.buffer], &args)
}

/// `x.transpose(-2, -1)` made contiguous: `(…, a, b)` → `(…, b, a)`.
pub fn transpose_last2(x: &GpuTensor) -> Result<GpuTensor> {
    const OP: &str = "transpose";
    let xd = x.dims();
    let [.., a, b] = *xd else {
        return shape_err(OP, format!("expected at least two axes, got {xd:?}"));
    };
    let mut shape = xd.to_vec();
    let r = shape.len();
    shape.swap(r - 2, r - 1);
    let y = GpuTensor::uninit(x.device(), OP, &shape)?;
    let args = [u32_arg(OP, a)?, u32_arg(OP, b)?];
    per_output_element(
        OP,
        OP,
        include_str!("../shaders/transpose.wgsl"),
        y,
        &[&x.buffer],
        &args,
    )
}

/// `F.pad(x, (left, right, top, bottom))` with zeros, on the last two axes of `x`.
pub fn pad2d(x: &GpuTensor, [left, right, top, bottom]: [usize; 4]) -> Result<GpuTensor> {
    const OP: &str = "pad";
    let xd = x.dims();
    let [.., h, w] = *xd else {
        return shape_err(OP, format!("expected at least two axes, got {xd:?}"));
    };
    let (oh, ow) = (h + top + bottom, w + left + right);
    let mut shape = xd.to_vec();
    let r = shape.len();
    (shape[r - 2], shape[r - 1]) = (oh, ow);
    let y = GpuTensor::uninit(x.device(), OP, &shape)?;
    u32_arg(OP, x.elem_count())?;
    let args = [h, w, top, left, oh, ow].map(|v| u32_arg(OP, v));
    let args = args.into_iter().collect::<Result<Vec<_>>>()?;
    per_output_element(OP, OP, include_str!("../shaders/pad.wgsl"), y, &[&x.buffer], &args)
}

/// One op of buffer copies into `y`: `(source, source offset, offset in y, length)`,
/// in elements; empty ones are skipped (a zero-sized copy is invalid).
fn copy(dev: &Device, op: &'static str, y: &GpuTensor, copies: &[(&wgpu::Buffer, usize, usize, usize)]) -> Result<()> {
    dev.record(op, |enc| {
        for &(src, from, to, len) in copies.iter().filter(|c| c.3 > 0) {
            enc.copy_buffer_to_buffer(src, from as u64 * 4, &y.buffer, to as u64 * 4, len as u64 * 4);
        }
    })
}
