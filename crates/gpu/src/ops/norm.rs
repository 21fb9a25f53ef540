//! Normalisations.

use crate::error::{Result, shape_err};
use crate::ops::{dispatch, same_device, u32_arg};
use crate::tensor::GpuTensor;

/// `F.instance_norm(x, weight=..., bias=..., eps=eps)` without running statistics, as
/// `sadtalker_ops::instance_norm`: each `(sample, channel)` plane normalised by its own mean
/// and biased variance (accumulated in f32 here, f64 there: they agree to ~1e-6).
pub fn instance_norm(
    x: &GpuTensor,
    weight: Option<&GpuTensor>,
    bias: Option<&GpuTensor>,
    eps: f64,
) -> Result<GpuTensor> {
    const OP: &str = "instance_norm";
    let mut all = vec![x];
    all.extend(weight);
    all.extend(bias);
    let dev = same_device(OP, &all)?;
    let xd = x.dims();
    if xd.len() < 3 {
        return shape_err(OP, format!("expected (N, C, ...spatial), got {xd:?}"));
    }
    let c = xd[1];
    for t in [weight, bias].into_iter().flatten() {
        if t.dims() != [c] {
            return shape_err(
                OP,
                format!(
                    "affine parameter {:?} does not match {c} channels of input {xd:?}",
                    t.dims()
                ),
            );
        }
    }
    let y = GpuTensor::uninit(dev, OP, xd)?;
    let plane = u32_arg(OP, xd[2..].iter().product())?;
    let planes = u32_arg(OP, xd[0] * c)?;
    u32_arg(OP, x.elem_count())?;
    if plane == 0 || planes == 0 {
        return Ok(y);
    }
    let row = planes.min(65535);
    let params: [u32; 8] = [
        plane,
        u32_arg(OP, c)?,
        planes,
        row,
        (eps as f32).to_bits(),
        u32::from(weight.is_some()),
        u32::from(bias.is_some()),
        0,
    ];
    let pipeline = dev.pipeline(OP, include_str!("../shaders/instance_norm.wgsl"))?;
    let w = weight.map_or(&dev.inner.dummy, |t| &t.buffer);
    let b = bias.map_or(&dev.inner.dummy, |t| &t.buffer);
    dispatch(
        dev,
        OP,
        &pipeline,
        bytemuck::cast_slice(&params),
        &[&x.buffer, w, b, &y.buffer],
        [row, planes.div_ceil(row), 1],
    )?;
    Ok(y)
}
