//! `F.interpolate` in `nearest` (1-D/2-D/3-D) and `bilinear` (2-D) modes.
//!
//! Why hand-written: candle's `upsample_nearest2d` has no 3-D form and no `(1, 2, 2)`
//! scale, and it has no align-corners bilinear. Source indices and weights are computed
//! exactly as ATen's `UpSample.h` does, in `f32`, including its use of the given scale
//! factor (not in/out) when one is passed.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::access::{Input, output};
use crate::{Result, shape_err};

/// The target of an interpolation: `size=` or `scale_factor=`.
#[derive(Clone, Debug, PartialEq)]
pub enum Resize {
    /// Explicit output size per spatial axis.
    Size(Vec<usize>),
    /// A scale factor per spatial axis; the output size is `floor(in * scale)`, and the
    /// source index uses `1 / scale` (PyTorch with `recompute_scale_factor=None`).
    Scale(Vec<f64>),
}

impl Resize {
    /// Output sizes and the per-axis scales ATen passes to its kernels.
    fn resolve(&self, op: &'static str, in_sp: &[usize]) -> Result<(Vec<usize>, Vec<Option<f64>>)> {
        let n = in_sp.len();
        match self {
            Resize::Size(s) if s.len() == n && s.iter().all(|&v| v > 0) => Ok((s.clone(), vec![None; n])),
            Resize::Scale(f) if f.len() == n && f.iter().all(|&v| v > 0.0 && v.is_finite()) => {
                let size: Vec<usize> = in_sp
                    .iter()
                    .zip(f)
                    .map(|(&i, &s)| (i as f64 * s).floor() as usize)
                    .collect();
                if size.contains(&0) {
                    return shape_err(
                        op,
                        format!("scale {f:?} turns input size {in_sp:?} into an empty output"),
                    );
                }
                Ok((size, f.iter().map(|&s| Some(s)).collect()))
            }
            _ => shape_err(
                op,
                format!("{self:?} does not fit {n} spatial axes (positive values, one per axis)"),
            ),
        }
    }
}

/// ATen's `compute_scales_value`: `1/scale` when a scale was given, else in/out.
fn scale_value(scale: Option<f64>, input: usize, output: usize) -> f32 {
    match scale {
        Some(s) => (1.0 / s) as f32,
        None => input as f32 / output as f32,
    }
}

/// ATen's `nearest_idx`.
fn nearest_index(out_idx: usize, input: usize, output: usize, scale: Option<f64>) -> usize {
    if output == input {
        out_idx
    } else if output == 2 * input {
        out_idx >> 1
    } else {
        let s = scale_value(scale, input, output);
        ((out_idx as f32 * s).floor() as usize).min(input - 1)
    }
}

/// Where a nearest interpolation reads: the spatial axes padded to three (depth, height,
/// width; a missing axis has size 1), and per axis the source index of every output index.
/// Public so that another backend (the GPU's) gathers exactly the pixels this one does.
#[derive(Clone, Debug, PartialEq)]
pub struct NearestMaps {
    /// The output's spatial size, as many axes as the input has.
    pub out_sp: Vec<usize>,
    /// Input size per padded axis.
    pub input: [usize; 3],
    /// Output size per padded axis.
    pub output: [usize; 3],
    /// `maps[a][o]`: the input index output index `o` of padded axis `a` takes.
    pub maps: [Vec<usize>; 3],
}

impl NearestMaps {
    /// The maps of `F.interpolate(mode='nearest')` from spatial size `in_sp` (one to three
    /// axes) to `resize`.
    pub fn new(in_sp: &[usize], resize: &Resize) -> Result<NearestMaps> {
        const OP: &str = "interpolate(nearest)";
        if !(1..=3).contains(&in_sp.len()) {
            return shape_err(OP, format!("expected 1 to 3 spatial axes, got {in_sp:?}"));
        }
        let (out_sp, scales) = resize.resolve(OP, in_sp)?;
        let pad = 3 - in_sp.len();
        let (mut input, mut output) = ([1usize; 3], [1usize; 3]);
        input[pad..].copy_from_slice(in_sp);
        output[pad..].copy_from_slice(&out_sp);
        let mut sc = [None; 3];
        sc[pad..].copy_from_slice(&scales);
        let maps = std::array::from_fn(|a| {
            (0..output[a])
                .map(|o| nearest_index(o, input[a], output[a], sc[a]))
                .collect()
        });
        Ok(NearestMaps {
            out_sp,
            input,
            output,
            maps,
        })
    }
}

/// `F.interpolate(x, size|scale_factor, mode='nearest')` for `(N, C, L)`, `(N, C, H, W)`
/// and `(N, C, D, H, W)` inputs.
pub fn interpolate_nearest(x: &Tensor, resize: &Resize) -> Result<Tensor> {
    const OP: &str = "interpolate(nearest)";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let xd = x.dims().to_vec();
    if !(3..=5).contains(&xd.len()) {
        return shape_err(OP, format!("expected a 3-D, 4-D or 5-D input, got {xd:?}"));
    }
    let NearestMaps {
        out_sp,
        input: isz,
        output: osz,
        maps,
    } = NearestMaps::new(&xd[2..], resize)?;
    let (in_plane, out_plane) = (isz.iter().product::<usize>(), osz.iter().product::<usize>());
    let data = x.with(|xs| {
        let mut out = vec![0f32; xd[0] * xd[1] * out_plane];
        out.par_chunks_mut(out_plane)
            .zip(xs.par_chunks(in_plane))
            .for_each(|(o, i)| {
                let mut k = 0;
                for &z in &maps[0] {
                    for &y in &maps[1] {
                        let row = &i[(z * isz[1] + y) * isz[2]..][..isz[2]];
                        for &xx in &maps[2] {
                            o[k] = row[xx];
                            k += 1;
                        }
                    }
                }
            });
        out
    });
    let mut shape = xd[..2].to_vec();
    shape.extend_from_slice(&out_sp);
    output(data, shape)
}

/// One output coordinate of a linear interpolation: two source indices and their weights.
#[derive(Clone, Copy, Debug)]
pub struct Linear {
    /// The lower source index.
    pub i0: usize,
    /// The upper source index (`i0` at the last row or column).
    pub i1: usize,
    /// The weight of `i0`.
    pub l0: f32,
    /// The weight of `i1`.
    pub l1: f32,
}

/// The taps of `F.interpolate(mode='bilinear')` of a `(.., H, W)` input: what the host kernel
/// uses, for a device kernel to gather the same pixels with the same weights.
#[derive(Clone, Debug)]
pub struct BilinearMaps {
    /// The output's `[H, W]`.
    pub out_sp: [usize; 2],
    /// One tap per output row.
    pub h: Vec<Linear>,
    /// One tap per output column.
    pub w: Vec<Linear>,
}

impl BilinearMaps {
    /// The taps from spatial size `[h, w]` to `resize`.
    pub fn new(in_sp: [usize; 2], resize: &Resize, align_corners: bool) -> Result<BilinearMaps> {
        let (out_sp, scales) = resize.resolve("interpolate(bilinear)", &in_sp)?;
        Ok(BilinearMaps {
            out_sp: [out_sp[0], out_sp[1]],
            h: linear_map(in_sp[0], out_sp[0], scales[0], align_corners),
            w: linear_map(in_sp[1], out_sp[1], scales[1], align_corners),
        })
    }
}

/// ATen's `compute_indices_weights_linear` for one axis.
fn linear_map(input: usize, output: usize, scale: Option<f64>, align_corners: bool) -> Vec<Linear> {
    let s = if align_corners {
        if output > 1 {
            (input - 1) as f32 / (output - 1) as f32
        } else {
            0.0
        }
    } else {
        scale_value(scale, input, output)
    };
    (0..output)
        .map(|o| {
            let real = if align_corners {
                s * o as f32
            } else {
                (s * (o as f32 + 0.5) - 0.5).max(0.0)
            };
            let i0 = (real.floor() as usize).min(input - 1);
            let l1 = (real - i0 as f32).clamp(0.0, 1.0);
            let i1 = i0 + usize::from(i0 < input - 1);
            Linear {
                i0,
                i1,
                l0: 1.0 - l1,
                l1,
            }
        })
        .collect()
}

/// `F.interpolate(x, size|scale_factor, mode='bilinear', align_corners=...)` for
/// `(N, C, H, W)` inputs.
pub fn interpolate_bilinear(x: &Tensor, resize: &Resize, align_corners: bool) -> Result<Tensor> {
    const OP: &str = "interpolate(bilinear)";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let xd = x.dims().to_vec();
    if xd.len() != 4 {
        return shape_err(OP, format!("expected a 4-D input, got {xd:?}"));
    }
    let BilinearMaps {
        out_sp,
        h: hmap,
        w: wmap,
    } = BilinearMaps::new([xd[2], xd[3]], resize, align_corners)?;
    let (ih, iw, oh, ow) = (xd[2], xd[3], out_sp[0], out_sp[1]);
    let data = x.with(|xs| {
        let mut out = vec![0f32; xd[0] * xd[1] * oh * ow];
        out.par_chunks_mut(oh * ow)
            .zip(xs.par_chunks(ih * iw))
            .for_each(|(o, i)| {
                for (orow, h) in o.chunks_exact_mut(ow).zip(&hmap) {
                    let (r0, r1) = (&i[h.i0 * iw..][..iw], &i[h.i1 * iw..][..iw]);
                    for (v, w) in orow.iter_mut().zip(&wmap) {
                        // ATen nests the width interpolation inside the height one.
                        let t0 = r0[w.i0] * w.l0 + r0[w.i1] * w.l1;
                        let t1 = r1[w.i0] * w.l0 + r1[w.i1] * w.l1;
                        *v = t0 * h.l0 + t1 * h.l1;
                    }
                }
            });
        out
    });
    output(data, vec![xd[0], xd[1], oh, ow])
}
