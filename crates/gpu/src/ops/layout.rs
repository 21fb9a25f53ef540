//! Copies that rearrange memory: `torch.cat`, `Tensor.narrow`.

use crate::error::{Result, shape_err};
use crate::ops::same_device;
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
    let d = &dev.inner.device;
    dev.checked(|| {
        let mut enc = d.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(OP) });
        let mut at = 0usize;
        for p in parts {
            let block = p.dims()[1] * plane;
            for b in 0..n {
                if block > 0 {
                    let src = (b * block * 4) as u64;
                    let dst = ((b * channels * plane + at) * 4) as u64;
                    enc.copy_buffer_to_buffer(&p.buffer, src, &y.buffer, dst, (block * 4) as u64);
                }
            }
            at += block;
        }
        dev.inner.queue.submit([enc.finish()]);
    })?;
    Ok(y)
}

/// `x.narrow(1, start, len)`: channels `start..start + len` of `x` `(N, C, ...)`, copied into
/// a tensor of their own (one buffer copy per batch item, no kernel).
pub fn narrow_channels(x: &GpuTensor, start: usize, len: usize) -> Result<GpuTensor> {
    const OP: &str = "narrow";
    let xd = x.dims();
    if xd.len() < 2 || start.checked_add(len).is_none_or(|end| end > xd[1]) {
        return shape_err(OP, format!("channels {start}..{start}+{len} of {xd:?}"));
    }
    let plane: usize = xd[2..].iter().product();
    let mut shape = xd.to_vec();
    shape[1] = len;
    let dev = x.device();
    let y = GpuTensor::uninit(dev, OP, &shape)?;
    if y.elem_count() == 0 {
        return Ok(y);
    }
    let d = &dev.inner.device;
    dev.checked(|| {
        let mut enc = d.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(OP) });
        let block = (len * plane * 4) as u64;
        for b in 0..xd[0] {
            let src = ((b * xd[1] + start) * plane * 4) as u64;
            enc.copy_buffer_to_buffer(&x.buffer, src, &y.buffer, b as u64 * block, block);
        }
        dev.inner.queue.submit([enc.finish()]);
    })?;
    Ok(y)
}
