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
    let groups = x.dims().get(1).copied().unwrap_or(0);
    norm("instance_norm", x, groups, weight, bias, None, eps)
}

/// `F.group_norm(x, num_groups, weight, bias, eps)`, as `sadtalker_ops::group_norm`: each
/// sample's channels split into `num_groups` runs, each normalised by its own mean and biased
/// variance (f32 here, f64 there), then the per-channel affine parameters.
pub fn group_norm(
    x: &GpuTensor,
    num_groups: usize,
    weight: Option<&GpuTensor>,
    bias: Option<&GpuTensor>,
    eps: f64,
) -> Result<GpuTensor> {
    // `norm` checks that the channels split into the groups.
    norm("group_norm", x, num_groups, weight, bias, None, eps)
}

/// `instance_norm(x, weight, bias) * (1 + γ) + β`, γ and β the two halves of `gamma_beta`
/// `(N, 2C, ...)`, in one pass: SPADE's modulation (`sadtalker_ops::instance_norm_modulate`
/// without affine parameters; with them, the instance norm then the modulation, as
/// `sadtalker_nn::InstanceNorm::forward_modulated` does on the host).
pub fn instance_norm_modulate(
    x: &GpuTensor,
    weight: Option<&GpuTensor>,
    bias: Option<&GpuTensor>,
    gamma_beta: &GpuTensor,
    eps: f64,
) -> Result<GpuTensor> {
    const OP: &str = "instance_norm_modulate";
    let xd = x.dims();
    let mut expected = xd.to_vec();
    if let Some(c) = expected.get_mut(1) {
        *c *= 2;
    }
    if xd.len() >= 3 && gamma_beta.dims() != expected {
        return shape_err(
            OP,
            format!("γ|β {:?} must be {expected:?} for x {xd:?}", gamma_beta.dims()),
        );
    }
    let groups = xd.get(1).copied().unwrap_or(0);
    norm(OP, x, groups, weight, bias, Some(gamma_beta), eps)
}

/// The normalisation kernel over `groups` units per sample (`groups` = channels: instance norm),
/// with the affine parameters and the SPADE modulation it is given.
fn norm(
    op: &'static str,
    x: &GpuTensor,
    groups: usize,
    weight: Option<&GpuTensor>,
    bias: Option<&GpuTensor>,
    gamma_beta: Option<&GpuTensor>,
    eps: f64,
) -> Result<GpuTensor> {
    const OP: &str = "instance_norm";
    let mut all = vec![x];
    all.extend(weight);
    all.extend(bias);
    all.extend(gamma_beta);
    let dev = same_device(op, &all)?;
    let xd = x.dims();
    if xd.len() < 3 {
        return shape_err(op, format!("expected (N, C, ...spatial), got {xd:?}"));
    }
    let c = xd[1];
    for t in [weight, bias].into_iter().flatten() {
        if t.dims() != [c] {
            return shape_err(
                op,
                format!(
                    "affine parameter {:?} does not match {c} channels of input {xd:?}",
                    t.dims()
                ),
            );
        }
    }
    if groups == 0 || !c.is_multiple_of(groups) || (gamma_beta.is_some() && groups != c) {
        return shape_err(op, format!("{c} channels cannot be split into {groups} groups"));
    }
    let y = GpuTensor::uninit(dev, op, xd)?;
    let hw = u32_arg(op, xd[2..].iter().product())?;
    let plane = u32_arg(op, xd[2..].iter().product::<usize>() * (c / groups))?;
    let planes = u32_arg(op, xd[0] * groups)?;
    u32_arg(op, x.elem_count())?;
    u32_arg(op, 2 * x.elem_count())?;
    if plane == 0 || planes == 0 {
        return Ok(y);
    }
    let row = planes.min(65535);
    let params: [u32; 12] = [
        plane,
        u32_arg(op, c)?,
        planes,
        row,
        (eps as f32).to_bits(),
        u32::from(weight.is_some()),
        u32::from(bias.is_some()),
        u32::from(gamma_beta.is_some()),
        u32_arg(op, groups)?,
        hw,
        0,
        0,
    ];
    // One pipeline for both ops: the shader is the same.
    let pipeline = dev.pipeline(OP, include_str!("../shaders/instance_norm.wgsl"))?;
    let w = weight.map_or(&dev.inner.dummy, |t| &t.buffer);
    let b = bias.map_or(&dev.inner.dummy, |t| &t.buffer);
    let gb = gamma_beta.map_or(&dev.inner.dummy, |t| &t.buffer);
    dispatch(
        dev,
        op,
        &pipeline,
        bytemuck::cast_slice(&params),
        &[&x.buffer, w, b, gb, &y.buffer],
        [row, planes.div_ceil(row), 1],
    )?;
    Ok(y)
}
