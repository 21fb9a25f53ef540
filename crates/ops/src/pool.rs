//! `F.avg_pool2d`, `F.avg_pool3d`, `F.max_pool2d` (`ceil_mode=False`) and
//! `F.adaptive_avg_pool{1,2,3}d`.
//!
//! Why hand-written: candle has no 3-D pooling and no padded pooling.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::access::{Input, output};
use crate::{Result, shape_err};

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// Average; divide by the full window (`count_include_pad=True`) or by the taps
    /// inside the input.
    Avg {
        count_include_pad: bool,
    },
    Max,
}

/// `F.avg_pool2d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=...)`.
/// PyTorch's default stride is the kernel size and `count_include_pad=True`.
pub fn avg_pool2d(
    x: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
) -> Result<Tensor> {
    let k = Kind::Avg { count_include_pad };
    pool(
        "avg_pool2d",
        x,
        k,
        [1, kernel[0], kernel[1]],
        [1, stride[0], stride[1]],
        [0, padding[0], padding[1]],
    )
}

/// `F.avg_pool3d(x, kernel, stride, padding, ceil_mode=False, count_include_pad=...)`.
pub fn avg_pool3d(
    x: &Tensor,
    kernel: [usize; 3],
    stride: [usize; 3],
    padding: [usize; 3],
    count_include_pad: bool,
) -> Result<Tensor> {
    pool(
        "avg_pool3d",
        x,
        Kind::Avg { count_include_pad },
        kernel,
        stride,
        padding,
    )
}

/// `F.max_pool2d(x, kernel, stride, padding)` (dilation 1, `ceil_mode=False`); padding
/// reads as minus infinity.
pub fn max_pool2d(x: &Tensor, kernel: [usize; 2], stride: [usize; 2], padding: [usize; 2]) -> Result<Tensor> {
    pool(
        "max_pool2d",
        x,
        Kind::Max,
        [1, kernel[0], kernel[1]],
        [1, stride[0], stride[1]],
        [0, padding[0], padding[1]],
    )
}

fn pool(op: &'static str, x: &Tensor, kind: Kind, k: [usize; 3], s: [usize; 3], p: [usize; 3]) -> Result<Tensor> {
    let _t = crate::profile::scope(op);
    let x = Input::new(op, x)?;
    let xd = x.dims().to_vec();
    let sp_rank = if op.ends_with("3d") { 3 } else { 2 };
    if xd.len() != sp_rank + 2 {
        return shape_err(op, format!("expected a {}-D input, got {xd:?}", sp_rank + 2));
    }
    let mut isz = [1usize; 3];
    isz[3 - sp_rank..].copy_from_slice(&xd[2..]);
    let mut osz = [0usize; 3];
    for a in 0..3 {
        // PyTorch: padding at most half the kernel.
        if k[a] == 0 || s[a] == 0 || 2 * p[a] > k[a] || isz[a] + 2 * p[a] < k[a] {
            return shape_err(
                op,
                format!("kernel {k:?}, stride {s:?}, padding {p:?} do not fit input {xd:?}"),
            );
        }
        osz[a] = (isz[a] + 2 * p[a] - k[a]) / s[a] + 1;
    }
    let (in_plane, out_plane) = (isz.iter().product::<usize>(), osz.iter().product::<usize>());
    let data = x.with(|xs| {
        let mut out = vec![0f32; xd[0] * xd[1] * out_plane];
        out.par_chunks_mut(out_plane)
            .zip(xs.par_chunks(in_plane))
            .for_each(|(o, i)| {
                let mut idx = 0;
                for oz in 0..osz[0] {
                    for oy in 0..osz[1] {
                        for ox in 0..osz[2] {
                            o[idx] = window(i, isz, [oz, oy, ox], k, s, p, kind);
                            idx += 1;
                        }
                    }
                }
            });
        out
    });
    let mut shape = xd[..2].to_vec();
    shape.extend_from_slice(&osz[3 - sp_rank..]);
    output(data, shape)
}

/// Reduces one pooling window, as ATen's `cpu_avg_pool` / `cpu_max_pool` do.
fn window(i: &[f32], isz: [usize; 3], o: [usize; 3], k: [usize; 3], s: [usize; 3], p: [usize; 3], kind: Kind) -> f32 {
    // Window bounds in padded coordinates, then clipped to the input.
    let start: [isize; 3] = std::array::from_fn(|a| (o[a] * s[a]) as isize - p[a] as isize);
    let end: [isize; 3] = std::array::from_fn(|a| (start[a] + k[a] as isize).min((isz[a] + p[a]) as isize));
    let full: usize = (0..3).map(|a| (end[a] - start[a]) as usize).product();
    let lo: [usize; 3] = std::array::from_fn(|a| start[a].max(0) as usize);
    let hi: [usize; 3] = std::array::from_fn(|a| (end[a].min(isz[a] as isize)).max(0) as usize);
    match kind {
        Kind::Avg { count_include_pad } => {
            let mut sum = 0f32;
            for z in lo[0]..hi[0] {
                for y in lo[1]..hi[1] {
                    let row = &i[(z * isz[1] + y) * isz[2]..];
                    for v in &row[lo[2]..hi[2]] {
                        sum += v;
                    }
                }
            }
            let div = if count_include_pad {
                full
            } else {
                (0..3).map(|a| hi[a] - lo[a]).product()
            };
            sum / div as f32
        }
        Kind::Max => {
            let mut m = f32::NEG_INFINITY;
            for z in lo[0]..hi[0] {
                for y in lo[1]..hi[1] {
                    let row = &i[(z * isz[1] + y) * isz[2]..];
                    for &v in &row[lo[2]..hi[2]] {
                        // NaN wins, as in ATen.
                        if v > m || v.is_nan() {
                            m = v;
                        }
                    }
                }
            }
            m
        }
    }
}

/// `F.adaptive_avg_pool{N}d(x, output_size)` for `(N, C, *spatial)` inputs with 1 to 3
/// spatial axes: output cell `i` averages input `floor(i·in/out) .. ceil((i+1)·in/out)`.
pub fn adaptive_avg_pool(x: &Tensor, output_size: &[usize]) -> Result<Tensor> {
    const OP: &str = "adaptive_avg_pool";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let xd = x.dims().to_vec();
    let nsp = xd.len().saturating_sub(2);
    if !(1..=3).contains(&nsp) || output_size.len() != nsp || output_size.contains(&0) {
        return shape_err(OP, format!("output size {output_size:?} does not fit input {xd:?}"));
    }
    let mut isz = [1usize; 3];
    let mut osz = [1usize; 3];
    isz[3 - nsp..].copy_from_slice(&xd[2..]);
    osz[3 - nsp..].copy_from_slice(output_size);
    let bounds: Vec<Vec<(usize, usize)>> = (0..3)
        .map(|a| {
            (0..osz[a])
                .map(|i| (i * isz[a] / osz[a], ((i + 1) * isz[a]).div_ceil(osz[a])))
                .collect()
        })
        .collect();
    let (in_plane, out_plane) = (isz.iter().product::<usize>(), osz.iter().product::<usize>());
    let data = x.with(|xs| {
        let mut out = vec![0f32; xd[0] * xd[1] * out_plane];
        out.par_chunks_mut(out_plane)
            .zip(xs.par_chunks(in_plane))
            .for_each(|(o, i)| {
                let mut idx = 0;
                for &(z0, z1) in &bounds[0] {
                    for &(y0, y1) in &bounds[1] {
                        for &(x0, x1) in &bounds[2] {
                            let mut sum = 0f32;
                            for z in z0..z1 {
                                for y in y0..y1 {
                                    sum += i[(z * isz[1] + y) * isz[2]..][x0..x1].iter().sum::<f32>();
                                }
                            }
                            o[idx] = sum / ((z1 - z0) * (y1 - y0) * (x1 - x0)) as f32;
                            idx += 1;
                        }
                    }
                }
            });
        out
    });
    let mut shape = xd[..2].to_vec();
    shape.extend_from_slice(output_size);
    output(data, shape)
}
