//! `F.conv_transpose1d/2d/3d` as GEMM + col2im, the way ATen's CPU `slow_conv_transpose`
//! does it (and in the same summation order, so results match to rounding).
//!
//! Why hand-written: candle's conv_transpose has no groups/dilation on every rank, and the
//! Audio2Pose decoder (ResUnet `Upsample`) needs `nn.ConvTranspose2d`.

use candle_core::Tensor;
use gemm::Parallelism;
use rayon::prelude::*;

use crate::access::{Input, output, with_opt};
use crate::conv::ConvParams;
use crate::{Result, shape_err};

/// `F.conv_transpose{N}d(x, weight, bias, stride, padding, output_padding, groups, dilation)`.
///
/// `x` is `(N, Cin, *spatial)`, `weight` `(Cin, Cout/groups, *kernel)` as PyTorch stores it.
/// The output size per axis is `(in - 1)·stride - 2·padding + dilation·(k - 1) + output_padding + 1`.
pub fn conv_transpose<const N: usize>(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: ConvParams<N>,
    output_padding: [usize; N],
) -> Result<Tensor> {
    const OP: &str = "conv_transpose";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let w = Input::new(OP, weight)?;
    let b = bias.map(|b| Input::new(OP, b)).transpose()?;
    let (xd, wd) = (x.dims().to_vec(), w.dims().to_vec());
    if !(1..=3).contains(&N) || xd.len() != N + 2 || wd.len() != N + 2 {
        return shape_err(
            OP,
            format!("expected input and weight of rank {}, got {xd:?} and {wd:?}", N + 2),
        );
    }
    let groups = p.groups;
    let (n, cin) = (xd[0], xd[1]);
    if groups == 0 || wd[0] != cin || cin % groups != 0 {
        return shape_err(
            OP,
            format!("weight {wd:?} must be (in={cin}, out/groups, ...) with groups={groups}"),
        );
    }
    let og = wd[1];
    let cout = og * groups;
    if let Some(b) = &b
        && b.dims() != [cout]
    {
        return shape_err(OP, format!("bias {:?} does not match {cout} output channels", b.dims()));
    }
    let mut in_sp = [1usize; 3];
    let mut k = [1usize; 3];
    let mut s = [1usize; 3];
    let mut pad = [0usize; 3];
    let mut dil = [1usize; 3];
    let mut opad = [0usize; 3];
    let mut out_sp = [1usize; 3];
    for i in 0..N {
        let a = 3 - N + i;
        (in_sp[a], k[a], s[a], pad[a], dil[a], opad[a]) = (
            xd[2 + i],
            wd[2 + i],
            p.stride[i],
            p.padding[i],
            p.dilation[i],
            output_padding[i],
        );
        let full = (in_sp[a] - 1) * s[a] + dil[a] * (k[a] - 1) + opad[a] + 1;
        if s[a] == 0 || dil[a] == 0 || k[a] == 0 || full <= 2 * pad[a] || opad[a] >= s[a].max(dil[a]) {
            return shape_err(
                OP,
                format!(
                    "kernel {wd:?}, stride {:?}, padding {:?}, output_padding {output_padding:?} do not fit input {xd:?}",
                    p.stride, p.padding
                ),
            );
        }
        out_sp[a] = full - 2 * pad[a];
    }
    let cg = cin / groups;
    let kvol: usize = k.iter().product();
    let plane_in: usize = in_sp.iter().product();
    let plane_out: usize = out_sp.iter().product();
    let data = x.with(|xs| {
        w.with(|ws| {
            with_opt(b.as_ref(), |bs| {
                let mut out = vec![0f32; n * cout * plane_out];
                out.par_chunks_mut(og * plane_out).enumerate().for_each(|(task, o)| {
                    let (ni, gi) = (task / groups, task % groups);
                    let x_g = &xs[(ni * cin + gi * cg) * plane_in..][..cg * plane_in];
                    let w_g = &ws[gi * cg * og * kvol..][..cg * og * kvol];
                    // col[(co, kz, ky, kx), p] = sum_ci w[ci, co, kz, ky, kx] * x[ci, p]
                    let rows = og * kvol;
                    let mut col = vec![0f32; rows * plane_in];
                    // SAFETY: col is rows × plane_in; w_g read transposed (rows × cg) via its
                    // strides; x_g is cg × plane_in.
                    unsafe {
                        gemm::gemm(
                            rows,
                            plane_in,
                            cg,
                            col.as_mut_ptr(),
                            1,
                            plane_in as isize,
                            false,
                            w_g.as_ptr(),
                            rows as isize,
                            1,
                            x_g.as_ptr(),
                            1,
                            plane_in as isize,
                            1.0,
                            1.0,
                            false,
                            false,
                            false,
                            Parallelism::None,
                        );
                    }
                    col2im(&col, o, og, in_sp, out_sp, k, s, pad, dil);
                    if let Some(bs) = bs {
                        for (c, plane) in o.chunks_mut(plane_out).enumerate() {
                            let v = bs[gi * og + c];
                            plane.iter_mut().for_each(|x| *x += v);
                        }
                    }
                });
                out
            })
        })
    });
    let mut shape = vec![n, cout];
    shape.extend_from_slice(&out_sp[3 - N..]);
    output(data, shape)
}

/// Scatter-adds the GEMM columns into the output volume (ATen's `col2vol`).
#[allow(clippy::too_many_arguments)]
fn col2im(
    col: &[f32],
    out: &mut [f32],
    og: usize,
    in_sp: [usize; 3],
    out_sp: [usize; 3],
    k: [usize; 3],
    s: [usize; 3],
    pad: [usize; 3],
    dil: [usize; 3],
) {
    let plane_in: usize = in_sp.iter().product();
    let plane_out: usize = out_sp.iter().product();
    let kvol: usize = k.iter().product();
    for c in 0..og {
        let o = &mut out[c * plane_out..][..plane_out];
        for kidx in 0..kvol {
            let (kz, ky, kx) = (kidx / (k[1] * k[2]), (kidx / k[2]) % k[1], kidx % k[2]);
            let row = &col[(c * kvol + kidx) * plane_in..][..plane_in];
            for (i, &v) in row.iter().enumerate() {
                let (z, y, x) = (i / (in_sp[1] * in_sp[2]), (i / in_sp[2]) % in_sp[1], i % in_sp[2]);
                let oz = (z * s[0] + kz * dil[0]) as isize - pad[0] as isize;
                let oy = (y * s[1] + ky * dil[1]) as isize - pad[1] as isize;
                let ox = (x * s[2] + kx * dil[2]) as isize - pad[2] as isize;
                if oz >= 0
                    && oy >= 0
                    && ox >= 0
                    && (oz as usize) < out_sp[0]
                    && (oy as usize) < out_sp[1]
                    && (ox as usize) < out_sp[2]
                {
                    o[(oz as usize * out_sp[1] + oy as usize) * out_sp[2] + ox as usize] += v;
                }
            }
        }
    }
}
