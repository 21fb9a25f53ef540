//! `F.grid_sample` for 4-D and 5-D inputs: bilinear, `padding_mode='zeros'`.
//!
//! Why hand-written: candle has no grid_sample at all; face-vid2vid warps its 3-D feature
//! volume with it once per frame. The formulas (unnormalisation, corner weights and their
//! summation order) follow ATen's CPU kernels so that results match to float rounding.
//!
//! Work is split into chunks of output points: each chunk first computes its corner
//! offsets and weights once, then walks the channels, so a channel's input plane stays in
//! cache while it is gathered from.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::access::{Input, SharedMut, output};
use crate::{Result, shape_err};

/// Output points per task.
const CHUNK: usize = 2048;

/// `F.grid_sample(input, grid, mode='bilinear', padding_mode='zeros', align_corners=...)`.
///
/// `input` is `(N, C, H, W)` with `grid` `(N, H', W', 2)`, or `(N, C, D, H, W)` with `grid`
/// `(N, D', H', W', 3)`; the grid's last axis holds (x, y[, z]) in `[-1, 1]`, and samples
/// outside the input read zeros. PyTorch's default is `align_corners=False`.
pub fn grid_sample(input: &Tensor, grid: &Tensor, align_corners: bool) -> Result<Tensor> {
    const OP: &str = "grid_sample";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, input)?;
    let gr = Input::new(OP, grid)?;
    let (xd, gd) = (x.dims().to_vec(), gr.dims().to_vec());
    let sp = xd.len().saturating_sub(2);
    if !(sp == 2 || sp == 3) || gd.len() != xd.len() || gd[0] != xd[0] || gd[gd.len() - 1] != sp {
        return shape_err(
            OP,
            format!(
                "expected input (N,C,H,W) with grid (N,H',W',2) or input (N,C,D,H,W) with grid (N,D',H',W',3); got input {xd:?}, grid {gd:?}"
            ),
        );
    }
    let (n, c) = (xd[0], xd[1]);
    let in_sp = &xd[2..];
    let out_sp = &gd[1..gd.len() - 1];
    let p: usize = out_sp.iter().product();
    let plane: usize = in_sp.iter().product();
    let data = x.with(|xs| {
        gr.with(|gs| {
            let mut out = vec![0f32; n * c * p];
            let chunks = p.div_ceil(CHUNK);
            let out_ptr = SharedMut::new(&mut out);
            (0..n * chunks).into_par_iter().for_each(|task| {
                let (ni, ch) = (task / chunks, task % chunks);
                let p0 = ch * CHUNK;
                let len = CHUNK.min(p - p0);
                let g = &gs[(ni * p + p0) * sp..][..len * sp];
                let xs_n = &xs[ni * c * plane..][..c * plane];
                // SAFETY: the task owns points [p0, p0+len) of image ni, in every channel.
                let dst = |ci: usize| unsafe {
                    std::slice::from_raw_parts_mut(out_ptr.ptr().add((ni * c + ci) * p + p0), len)
                };
                if sp == 2 {
                    sample_chunk::<4>(g, in_sp, align_corners, corners_2d, xs_n, plane, c, dst);
                } else {
                    sample_chunk::<8>(g, in_sp, align_corners, corners_3d, xs_n, plane, c, dst);
                }
            });
            out
        })
    });
    let mut shape = vec![n, c];
    shape.extend_from_slice(out_sp);
    output(data, shape)
}

/// Fills, for one grid point, the corner offsets into a channel plane and their weights.
type CornerFn<const K: usize> = fn(&[f32], &[usize], bool, &mut [usize; K], &mut [f32; K]);

/// Gathers one chunk of points for every channel. `corners` fills, for one grid point,
/// the `K` corner offsets into a channel plane and their weights (zero when outside).
#[allow(clippy::too_many_arguments)]
fn sample_chunk<'a, const K: usize>(
    grid: &[f32],
    in_sp: &[usize],
    align_corners: bool,
    corners: CornerFn<K>,
    xs: &[f32],
    plane: usize,
    c: usize,
    dst: impl Fn(usize) -> &'a mut [f32],
) {
    let dims = in_sp.len();
    let len = grid.len() / dims;
    let mut idx = vec![[0usize; K]; len];
    let mut wts = vec![[0f32; K]; len];
    for (i, g) in grid.chunks_exact(dims).enumerate() {
        corners(g, in_sp, align_corners, &mut idx[i], &mut wts[i]);
    }
    for ci in 0..c {
        let src = &xs[ci * plane..][..plane];
        for ((o, ix), w) in dst(ci).iter_mut().zip(&idx).zip(&wts) {
            // Sum in ATen's corner order, starting from zero as it does.
            let mut acc = 0f32;
            for k in 0..K {
                acc += src[ix[k]] * w[k];
            }
            *o = acc;
        }
    }
}

/// ATen's `grid_sampler_unnormalize`.
#[inline]
fn unnormalize(coord: f32, size: usize, align_corners: bool) -> f32 {
    if align_corners {
        (coord + 1.0) / 2.0 * (size as f32 - 1.0)
    } else {
        ((coord + 1.0) * size as f32 - 1.0) / 2.0
    }
}

/// Floor of a source coordinate as an index (saturating for far-out-of-range grids).
#[inline]
fn floor_i(v: f32) -> i64 {
    v.floor() as i64
}

/// 2-D corners in ATen's order nw, ne, sw, se, with its vectorised kernel's weights
/// (`e = 1 - (x - floor x)`, `nw = s * e`, ...).
fn corners_2d(g: &[f32], sp: &[usize], align: bool, idx: &mut [usize; 4], wts: &mut [f32; 4]) {
    let (h, w) = (sp[0], sp[1]);
    let x = unnormalize(g[0], w, align);
    let y = unnormalize(g[1], h, align);
    let (x0f, y0f) = (x.floor(), y.floor());
    let (wx1, wy1) = (x - x0f, y - y0f);
    let (wx0, wy0) = (1.0 - wx1, 1.0 - wy1);
    let (x0, y0) = (floor_i(x), floor_i(y));
    let cw = [wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1];
    for k in 0..4 {
        let (yy, xx) = (y0 + (k as i64 >> 1), x0 + (k as i64 & 1));
        if yy >= 0 && yy < h as i64 && xx >= 0 && xx < w as i64 {
            idx[k] = yy as usize * w + xx as usize;
            wts[k] = cw[k];
        } else {
            idx[k] = 0;
            wts[k] = 0.0;
        }
    }
}

/// 3-D corners in ATen's order tnw, tne, tsw, tse, bnw, bne, bsw, bse (t/b: z, n/s: y,
/// w/e: x), weights as its scalar 3-D kernel forms them.
fn corners_3d(g: &[f32], sp: &[usize], align: bool, idx: &mut [usize; 8], wts: &mut [f32; 8]) {
    let (d, h, w) = (sp[0], sp[1], sp[2]);
    let x = unnormalize(g[0], w, align);
    let y = unnormalize(g[1], h, align);
    let z = unnormalize(g[2], d, align);
    let (x0f, y0f, z0f) = (x.floor(), y.floor(), z.floor());
    // Distances to the far (wx0) and near (wx1) corner along each axis.
    let (wx0, wx1) = ((x0f + 1.0) - x, x - x0f);
    let (wy0, wy1) = ((y0f + 1.0) - y, y - y0f);
    let (wz0, wz1) = ((z0f + 1.0) - z, z - z0f);
    let (x0, y0, z0) = (floor_i(x), floor_i(y), floor_i(z));
    let wx = [wx0, wx1];
    let wy = [wy0, wy1];
    let wz = [wz0, wz1];
    for k in 0..8 {
        let (bz, by, bx) = (k >> 2, (k >> 1) & 1, k & 1);
        let (zz, yy, xx) = (z0 + bz as i64, y0 + by as i64, x0 + bx as i64);
        if zz >= 0 && zz < d as i64 && yy >= 0 && yy < h as i64 && xx >= 0 && xx < w as i64 {
            idx[k] = (zz as usize * h + yy as usize) * w + xx as usize;
            wts[k] = wx[bx] * wy[by] * wz[bz];
        } else {
            idx[k] = 0;
            wts[k] = 0.0;
        }
    }
}
