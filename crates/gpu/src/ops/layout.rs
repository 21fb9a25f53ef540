//! Copies that rearrange memory: `torch.cat`.

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
