//! `F.avg_pool2d` / `F.avg_pool3d`, `F.max_pool2d`.

use crate::error::{Result, shape_err};
use crate::ops::elementwise::per_output_element;
use crate::ops::u32_arg;
use crate::tensor::GpuTensor;

/// `F.avg_pool{N}d(x, kernel, stride)` without padding (`N` = 2 for `(B, C, H, W)`, 3 for
/// `(B, C, D, H, W)`; `ceil_mode=False`): the values `sadtalker_ops::avg_pool2d/3d` give, exactly
/// (the same sums in the same order, the same division). The renderer's pools have no padding,
/// so `count_include_pad` does not arise.
pub fn avg_pool<const N: usize>(x: &GpuTensor, kernel: [usize; N], stride: [usize; N]) -> Result<GpuTensor> {
    const OP: &str = "avg_pool";
    let xd = x.dims();
    if !(N == 2 || N == 3) || xd.len() != N + 2 {
        return shape_err(OP, format!("expected a {}-D input for a {N}-D pool, got {xd:?}", N + 2));
    }
    // As depth-1 volumes for a 2-D pool.
    let pad3 = |v: &[usize], fill: usize| -> [usize; 3] {
        let mut a = [fill; 3];
        a[3 - N..].copy_from_slice(v);
        a
    };
    let (isz, k, s) = (pad3(&xd[2..], 1), pad3(&kernel, 1), pad3(&stride, 1));
    if (0..3).any(|a| k[a] == 0 || s[a] == 0 || isz[a] < k[a]) {
        return shape_err(
            OP,
            format!("kernel {kernel:?}, stride {stride:?} do not fit input {xd:?}"),
        );
    }
    let osz: [usize; 3] = std::array::from_fn(|a| (isz[a] - k[a]) / s[a] + 1);
    let mut shape = xd[..2].to_vec();
    shape.extend_from_slice(&osz[3 - N..]);
    let dev = x.device();
    let y = GpuTensor::uninit(dev, OP, &shape)?;
    u32_arg(OP, x.elem_count())?;
    let mut args = Vec::with_capacity(12);
    for v in [isz, osz, k, s] {
        for a in v {
            args.push(u32_arg(OP, a)?);
        }
    }
    let shader = include_str!("../shaders/avg_pool.wgsl");
    per_output_element(OP, OP, shader, y, &[&x.buffer], &args)
}

/// `F.max_pool2d(x, kernel, stride, padding)` of `(B, C, H, W)` (dilation 1, `ceil_mode=False`;
/// padding reads as minus infinity): `sadtalker_ops::max_pool2d`'s values exactly (a maximum
/// does not round), with its shape checks.
pub fn max_pool2d(x: &GpuTensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<GpuTensor> {
    const OP: &str = "max_pool2d";
    let xd = x.dims();
    if xd.len() != 4 {
        return shape_err(OP, format!("expected a 4-D input, got {xd:?}"));
    }
    let isz = [xd[2], xd[3]];
    // PyTorch: padding at most half the kernel.
    if (0..2)
        .any(|a| kernel[a] == 0 || stride[a] == 0 || 2 * padding[a] > kernel[a] || isz[a] + 2 * padding[a] < kernel[a])
    {
        return shape_err(
            OP,
            format!("kernel {kernel:?}, stride {stride:?}, padding {padding:?} do not fit input {xd:?}"),
        );
    }
    let osz: [usize; 2] = std::array::from_fn(|a| (isz[a] + 2 * padding[a] - kernel[a]) / stride[a] + 1);
    let y = GpuTensor::uninit(x.device(), OP, &[xd[0], xd[1], osz[0], osz[1]])?;
    u32_arg(OP, x.elem_count())?;
    let args = [isz, osz, kernel, stride, padding]
        .concat()
        .into_iter()
        .map(|v| u32_arg(OP, v))
        .collect::<Result<Vec<_>>>()?;
    let shader = include_str!("../shaders/max_pool.wgsl");
    per_output_element(OP, OP, shader, y, &[&x.buffer], &args)
}
