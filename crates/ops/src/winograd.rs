//! Winograd convolution for 3×3 (2-D) and 3×3×3 (3-D), stride-1, undilated, ungrouped
//! convolutions: F(4×4, 3×3) in 2-D, F(2×2×2, 3×3×3) in 3-D.
//!
//! Why: the SPADE decoder spends ~80 % of a frame in 3×3 conv2d and the dense-motion network
//! in 3×3×3 conv3d, and a faster GEMM cannot beat PyTorch by much (both run near the FMA
//! peak). Winograd computes an output tile from an input tile with far fewer multiplies
//! (Lavin & Gray, 2015): 36 instead of 144 per 4×4 tile in 2-D (4×), 64 instead of 216 per
//! 2×2×2 tile in 3-D (3.4×). Results equal the direct convolution up to float rounding;
//! F(4×4) rounds a little more (its transforms have entries up to 8), which the op and
//! renderer parity tests measure (the renderer's frame stays within 5e-5 of PyTorch).
//!
//! The transforms are separable, one 1-D transform per axis ([`Axis`]); 2-D is 3-D with an
//! identity depth axis. Layout: the transformed weights U_ξ (out × in, one per point ξ of
//! the transformed tile) are built once per layer (cached in [`crate::ConvCache`]) and
//! packed for the direct convolution's microkernel, which runs each ξ's product as a 1×1
//! convolution over tiles. Tiles are processed in chunks per rayon task: input transform
//! (vectorised over tiles), the products, output transform (vectorised over output
//! channels), scatter into the output.
//!
//! `SADTALKER_WINOGRAD=0` turns it off; `=2` uses F(2×2) in 2-D.

use rayon::prelude::*;

use crate::access::SharedMut;
use crate::conv::Geometry;
use crate::conv_direct::{block_width, micro_dispatch, positions_per_call};
use crate::isa::{Isa, at_level};

/// One axis's 1-D transform F(m, r): m outputs from t = m + r - 1 inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Axis {
    /// Kernel size 1 along this axis: no transform (the depth axis of a 2-D conv).
    Identity,
    /// F(2, 3): 4 inputs.
    F2,
    /// F(4, 3): 6 inputs.
    F4,
}

impl Axis {
    fn m(self) -> usize {
        match self {
            Axis::Identity => 1,
            Axis::F2 => 2,
            Axis::F4 => 4,
        }
    }

    fn r(self) -> usize {
        match self {
            Axis::Identity => 1,
            _ => 3,
        }
    }

    fn t(self) -> usize {
        self.m() + self.r() - 1
    }

    /// Bᵀ (t × t).
    fn bt(self) -> &'static [f32] {
        match self {
            Axis::Identity => &[1.],
            Axis::F2 => &[1., 0., -1., 0., 0., 1., 1., 0., 0., -1., 1., 0., 0., 1., 0., -1.],
            Axis::F4 => &[
                4., 0., -5., 0., 1., 0., //
                0., -4., -4., 1., 1., 0., //
                0., 4., -4., -1., 1., 0., //
                0., -2., -1., 2., 1., 0., //
                0., 2., -1., -2., 1., 0., //
                0., 4., 0., -5., 0., 1.,
            ],
        }
    }

    /// G (t × r), in f64 (the weight transform is done once, as exactly as possible).
    fn g(self) -> &'static [f64] {
        const S: f64 = 1. / 6.;
        const T: f64 = 1. / 12.;
        const W: f64 = 1. / 24.;
        match self {
            Axis::Identity => &[1.],
            Axis::F2 => &[1., 0., 0., 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0., 0., 1.],
            Axis::F4 => &[0.25, 0., 0., -S, -S, -S, -S, S, -S, W, T, S, W, -T, S, 0., 0., 1.],
        }
    }

    /// Aᵀ (m × t).
    fn at(self) -> &'static [f32] {
        match self {
            Axis::Identity => &[1.],
            Axis::F2 => &[1., 1., 1., 0., 0., 1., -1., -1.],
            Axis::F4 => &[
                1., 1., 1., 1., 1., 0., //
                0., 1., -1., 2., -2., 0., //
                0., 1., 1., 4., 4., 0., //
                0., 1., -1., 8., -8., 1.,
            ],
        }
    }
}

/// The per-axis transforms of one convolution (depth, height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Plan {
    axes: [Axis; 3],
}

impl Plan {
    fn m(&self) -> [usize; 3] {
        self.axes.map(Axis::m)
    }

    fn t(&self) -> [usize; 3] {
        self.axes.map(Axis::t)
    }

    /// Points of a transformed tile.
    fn points(&self) -> usize {
        self.t().iter().product()
    }
}

/// Whether the Winograd path suits this convolution, and with which transforms: a 3×3
/// conv2d or 3×3×3 conv3d, stride 1, no dilation, one group, at least 32 channels in and
/// out (96 in 3-D; below that the transforms cost more than they save), and outputs at
/// least one tile wide. The caller has checked that the direct kernel (AVX2 or AVX-512) is
/// available: the products run on it. `pinned` (a [`crate::ConvPath::Winograd`] cache) skips the 3-D speed
/// heuristic on channel counts.
pub(crate) fn choose(g: &Geometry, pinned: bool) -> Option<Plan> {
    let setting = std::env::var("SADTALKER_WINOGRAD").unwrap_or_default();
    if setting == "0" || setting == "off" {
        return None;
    }
    let common = g.stride == [1, 1, 1] && g.dil == [1, 1, 1] && g.groups == 1 && g.cin >= 32 && g.cout >= 32;
    let axes = if g.k == [1, 3, 3] && g.pad[0] == 0 {
        let a = if setting == "2" { Axis::F2 } else { Axis::F4 };
        [Axis::Identity, a, a]
    } else if g.k == [3, 3, 3] && (pinned || g.cin.min(g.cout) >= 96) {
        // In 3-D the 64-point transforms only pay off with many channels (measured with the
        // row-vectorised transforms, AVX2, 2 threads: 112→112 and 1024→256 gain 1.45–1.55×;
        // 80→64 and 64→128 gain ≤ 1.1×, 32→32, 64→64, 128→32 and 256→64 lose).
        [Axis::F2; 3]
    } else {
        return None;
    };
    let plan = Plan { axes };
    let big_enough = (0..3).all(|i| g.out_sp[i] >= plan.m()[i]);
    (common && big_enough).then_some(plan)
}

/// Points of a transformed tile at most (6 × 6 × 6: F(4, 3) on every axis).
const MAX_POINTS: usize = 216;

/// U_ξ = (G_z ⊗ G_y ⊗ G_x) w for every filter (computed in f64, rounded once), each ξ's
/// `oc × ic` matrix packed for the direct microkernel: `[ξ][block][ic][ocb]`.
///
/// Written straight into the packed layout, one output-channel block per task and, within
/// it, all of an input channel's filters together, so the 64 (or 36) rows a filter writes
/// stay in cache: a layer of 512 × 1024 3×3×3 filters takes 0.14 s on 2 threads instead of the
/// 0.99 s a per-filter vector and a gather per point took.
pub(crate) fn transform_weights(w: &[f32], oc: usize, ic: usize, plan: Plan) -> Vec<f32> {
    let ksize: usize = plan.axes.map(Axis::r).iter().product();
    let points = plan.points();
    debug_assert!(points <= MAX_POINTS);
    let ocb = block_width(oc);
    let blocks = oc.div_ceil(ocb);
    // Floats per point ξ: blocks × ic × ocb (lanes past `oc` stay zero).
    let per_point = blocks * ic * ocb;
    let mut out = vec![0f32; points * per_point];
    let out_ptr = SharedMut::new(&mut out);
    let steps = transform_steps(plan);
    (0..blocks).into_par_iter().for_each(|b| {
        let (mut cur, mut next) = ([0f64; MAX_POINTS], [0f64; MAX_POINTS]);
        for i in 0..ic {
            for lane in 0..ocb.min(oc - b * ocb) {
                let o = b * ocb + lane;
                for (c, &v) in cur.iter_mut().zip(&w[(o * ic + i) * ksize..][..ksize]) {
                    *c = v as f64;
                }
                for step in &steps {
                    next[..step.len].fill(-0.0);
                    for &(dst, src, coef) in &step.terms {
                        next[dst as usize] += coef * cur[src as usize];
                    }
                    std::mem::swap(&mut cur, &mut next);
                }
                for (xi, &v) in cur[..points].iter().enumerate() {
                    // SAFETY: (ξ, b, i, lane) is in bounds and written by this task only
                    // (tasks own distinct blocks b).
                    unsafe { *out_ptr.ptr().add(xi * per_point + (b * ic + i) * ocb + lane) = v as f32 };
                }
            }
        }
    });
    out
}

/// The filters back from [`transform_weights`]'s layout, `(oc, ic, k…)`: per axis the least-squares
/// inverse of G, `(GᵀG)⁻¹Gᵀ`, in f64. U holds each filter's transform rounded once to f32, so this
/// recovers the filter to within a few float32 ulps of its largest tap (not bit for bit). Only
/// needed when a layer that dropped its original weights meets a shape Winograd does not take.
pub(crate) fn recover_weights(u: &[f32], oc: usize, ic: usize, plan: Plan) -> Vec<f32> {
    let ts = plan.t();
    let rs = plan.axes.map(Axis::r);
    let ksize: usize = rs.iter().product();
    let points = plan.points();
    let ocb = block_width(oc);
    let per_point = oc.div_ceil(ocb) * ic * ocb;
    let pinv = plan.axes.map(|a| pseudo_inverse(a.g(), a.t(), a.r()));
    let mut w = vec![0f32; oc * ic * ksize];
    w.par_chunks_mut(ic * ksize).enumerate().for_each(|(o, filters)| {
        let (b, lane) = (o / ocb, o % ocb);
        for (i, filter) in filters.chunks_mut(ksize).enumerate() {
            for (k, v) in filter.iter_mut().enumerate() {
                let kz = [k / (rs[1] * rs[2]), (k / rs[2]) % rs[1], k % rs[2]];
                let mut sum = 0f64;
                for xi in 0..points {
                    let p = [xi / (ts[1] * ts[2]), (xi / ts[2]) % ts[1], xi % ts[2]];
                    let coef: f64 = (0..3).map(|a| pinv[a][kz[a] * ts[a] + p[a]]).product();
                    if coef != 0.0 {
                        sum += coef * f64::from(u[xi * per_point + (b * ic + i) * ocb + lane]);
                    }
                }
                *v = sum as f32;
            }
        }
    });
    w
}

/// `(GᵀG)⁻¹Gᵀ` (r × t) for a t × r matrix G of full column rank (r ≤ 3), by Gauss–Jordan.
fn pseudo_inverse(g: &[f64], t: usize, r: usize) -> Vec<f64> {
    // a = GᵀG (r × r), augmented with Gᵀ (r × t).
    let mut a = vec![0f64; r * (r + t)];
    for i in 0..r {
        for j in 0..r {
            a[i * (r + t) + j] = (0..t).map(|k| g[k * r + i] * g[k * r + j]).sum();
        }
        for k in 0..t {
            a[i * (r + t) + r + k] = g[k * r + i];
        }
    }
    for c in 0..r {
        let piv = (c..r)
            .max_by(|&x, &y| a[x * (r + t) + c].abs().total_cmp(&a[y * (r + t) + c].abs()))
            .unwrap_or(c);
        for k in 0..r + t {
            a.swap(c * (r + t) + k, piv * (r + t) + k);
        }
        let d = a[c * (r + t) + c];
        for k in 0..r + t {
            a[c * (r + t) + k] /= d;
        }
        for row in 0..r {
            if row != c {
                let f = a[row * (r + t) + c];
                for k in 0..r + t {
                    a[row * (r + t) + k] -= f * a[c * (r + t) + k];
                }
            }
        }
    }
    (0..r * t).map(|idx| a[(idx / t) * (r + t) + r + idx % t]).collect()
}

/// One axis of the weight transform as a list of `next[dst] += coef · cur[src]` terms, in
/// the order of the plain matrix product (so the f64 sums round as it does), zero
/// coefficients left out; `len` values of `next` are written.
struct TransformStep {
    len: usize,
    terms: Vec<(u16, u16, f64)>,
}

/// The steps of `plan`'s weight transform, x axis first; index arithmetic done once per
/// layer instead of once per filter.
fn transform_steps(plan: Plan) -> Vec<TransformStep> {
    let ts = plan.t();
    let mut dims = plan.axes.map(Axis::r);
    let mut steps = Vec::new();
    for axis in (0..3).rev() {
        let g = plan.axes[axis].g();
        let (rows, cols) = (ts[axis], dims[axis]);
        let mut out_dims = dims;
        out_dims[axis] = rows;
        let len: usize = out_dims.iter().product();
        let mut terms = Vec::new();
        for idx in 0..len {
            let mut o = [
                idx / (out_dims[1] * out_dims[2]),
                (idx / out_dims[2]) % out_dims[1],
                idx % out_dims[2],
            ];
            let r = o[axis];
            for k in 0..cols {
                o[axis] = k;
                let coef = g[r * cols + k];
                if coef != 0.0 {
                    let src = (o[0] * dims[1] + o[1]) * dims[2] + o[2];
                    terms.push((idx as u16, src as u16, coef));
                }
            }
        }
        steps.push(TransformStep { len, terms });
        dims = out_dims;
    }
    steps
}

/// The convolution via Winograd into a fresh `(N, Cout, D', H', W')` buffer; `packed_u`
/// comes from [`transform_weights`] with the same plan; `isa` (AVX2 or AVX-512) must be
/// available.
pub(crate) fn conv_winograd(
    x: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    plan: Plan,
    packed_u: &[f32],
    isa: Isa,
) -> Vec<f32> {
    let tt = plan.points();
    let (ic, oc) = (g.cin, g.cout);
    let m = plan.m();
    let grid: [usize; 3] = std::array::from_fn(|i| g.out_sp[i].div_ceil(m[i]));
    let total = g.n * grid.iter().product::<usize>();
    let ocb = block_width(oc);
    let ocv = ocb / 16;
    let blocks = oc.div_ceil(ocb);
    let np = positions_per_call(isa, ocv);
    let kc = crate::conv_direct::taps_per_chunk(isa, ocb);
    // Tiles per task: the transformed input of a task (points × ic × tiles) near 8 MiB, its
    // products (points × oc × tiles) at most 16 MiB (a 128→1024 layer took 67 MiB per thread).
    let threads = rayon::current_num_threads().max(1);
    let mut nt = ((2 << 20) / (tt * ic)).min((4 << 20) / (tt * blocks * ocb)).max(np) / np * np;
    while nt > np && total.div_ceil(nt) < 2 * threads {
        nt = (nt / 2).max(np) / np * np;
    }
    // A multiple of the thread count of tasks, as even as whole segments allow: 512 tiles in 5
    // tasks of 108 left one of two threads a third of a layer idle.
    let even = total.div_ceil(nt).next_multiple_of(threads);
    nt = total.div_ceil(even).next_multiple_of(np).min(nt);
    let tasks = total.div_ceil(nt);
    let p_out: usize = g.out_sp.iter().product();
    let mut out = vec![0f32; g.n * oc * p_out];
    let out_ptr = SharedMut::new(&mut out);
    let offsets: Vec<usize> = (0..ic).map(|c| c * nt).collect();
    (0..tasks).into_par_iter().for_each(|task| {
        crate::scratch::with([tt * ic * nt, tt * blocks * nt * ocb], |vbuf, mbuf| {
            let t0 = task * nt;
            let tiles = Tiles {
                t0,
                count: nt.min(total - t0),
                grid,
                m,
            };
            // Every entry a task reads is written first but the tail past its last tile, whose
            // products are dropped: the thread's buffers need no memset.
            input_transform(isa, x, g, plan, &tiles, nt, vbuf);
            // The first chunk of input channels writes every product the output transform
            // reads (those of the task's tiles).
            let segs = tiles.count.div_ceil(np);
            for xi in 0..tt {
                let vx = &vbuf[xi * ic * nt..];
                let ux = &packed_u[xi * blocks * ic * ocb..][..blocks * ic * ocb];
                for k0 in (0..ic).step_by(kc) {
                    let k1 = (k0 + kc).min(ic);
                    for b in 0..blocks {
                        let panel = &ux[(b * ic + k0) * ocb..(b * ic + k1) * ocb];
                        for s in 0..segs {
                            let acc = &mut mbuf[((xi * blocks + b) * nt + s * np) * ocb..][..np * ocb];
                            // SAFETY: `vx` holds ic rows of nt tiles and s·np + np <= nt;
                            // panel and acc are sized to match.
                            unsafe { micro_dispatch(isa, ocv, k0 == 0, &vx[s * np..], &offsets[k0..k1], panel, acc) };
                        }
                    }
                }
            }
            // SAFETY: this task owns its tiles' output pixels.
            unsafe { output_transform(isa, mbuf, bias, g, plan, &tiles, nt, blocks, ocb, out_ptr) };
        })
    });
    out
}

/// The tiles of one task: `count` tiles from global tile `t0` (image-major, then z, y, x).
struct Tiles {
    t0: usize,
    count: usize,
    grid: [usize; 3],
    m: [usize; 3],
}

impl Tiles {
    /// (image, first output voxel) of the task's `j`-th tile.
    fn origin(&self, j: usize) -> (usize, [usize; 3]) {
        let tile = self.t0 + j;
        let per_image: usize = self.grid.iter().product();
        let r = tile % per_image;
        let (z, y, x) = (
            r / (self.grid[1] * self.grid[2]),
            (r / self.grid[2]) % self.grid[1],
            r % self.grid[2],
        );
        (tile / per_image, [z * self.m[0], y * self.m[1], x * self.m[2]])
    }
}

/// Applies `mat` (`rows × dims[axis]`) along `axis` of a `dims`-shaped array of vectors of
/// `len` floats (`src`), writing the `rows`-long result into `dst`.
#[inline(always)]
fn apply_axis(src: &[f32], dims: [usize; 3], axis: usize, mat: &[f32], rows: usize, len: usize, dst: &mut [f32]) {
    let cols = dims[axis];
    let mut od = dims;
    od[axis] = rows;
    dst[..od.iter().product::<usize>() * len].fill(0.0);
    for i0 in 0..od[0] {
        for i1 in 0..od[1] {
            for i2 in 0..od[2] {
                let o = [i0, i1, i2];
                let r = o[axis];
                let d0 = ((i0 * od[1] + i1) * od[2] + i2) * len;
                for k in 0..cols {
                    let coef = mat[r * cols + k];
                    if coef != 0.0 {
                        let mut si = o;
                        si[axis] = k;
                        let s0 = ((si[0] * dims[1] + si[1]) * dims[2] + si[2]) * len;
                        let (dv, sv) = (&mut dst[d0..d0 + len], &src[s0..s0 + len]);
                        for (d, s) in dv.iter_mut().zip(sv) {
                            *d += coef * s;
                        }
                    }
                }
            }
        }
    }
}

/// [`input_transform_body`] compiled for `isa`.
fn input_transform(isa: Isa, x: &[f32], g: &Geometry, plan: Plan, tiles: &Tiles, nt: usize, vbuf: &mut [f32]) {
    // SAFETY: the caller checked that `isa` is available on this CPU.
    unsafe {
        at_level!(
            isa,
            input_transform_body(x: &[f32], g: &Geometry, plan: Plan, tiles: &Tiles, nt: usize, vbuf: &mut [f32])
        )
    }
}

/// V[ξ][c][j] = (Bᵀ ⊗ Bᵀ ⊗ Bᵀ) d of every tile's input patch.
#[inline(always)]
fn input_transform_body(x: &[f32], g: &Geometry, plan: Plan, tiles: &Tiles, nt: usize, vbuf: &mut [f32]) {
    if plan == PLAN_2D_F4 {
        input_transform_2d_f4(x, g, tiles, nt, vbuf)
    } else if plan == PLAN_3D_F2 {
        input_transform_3d_f2(x, g, tiles, nt, vbuf)
    } else {
        input_transform_generic(x, g, plan, tiles, nt, vbuf)
    }
}

/// The 2-D F(4×4, 3×3) plan, the decoder's: the one that runs at 256² and 512² and so gets
/// transforms of its own.
const PLAN_2D_F4: Plan = Plan {
    axes: [Axis::Identity, Axis::F4, Axis::F4],
};

/// The 3-D F(2×2×2, 3×3×3) plan, the dense-motion network's.
const PLAN_3D_F2: Plan = Plan { axes: [Axis::F2; 3] };

/// Bᵀ of F(2, 3) on four inputs.
#[inline(always)]
fn bt_f2(d: [f32; 4]) -> [f32; 4] {
    [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]]
}

/// Aᵀ of F(2, 3) on four inputs.
#[inline(always)]
fn at_f2(m: [f32; 4]) -> [f32; 2] {
    [m[0] + m[1] + m[2], m[1] - m[2] - m[3]]
}

/// [`input_transform_generic`] for [`PLAN_3D_F2`], vectorised over the tiles of a tile row as
/// [`input_transform_2d_f4`]: each of the 16 input rows of a tile row (4 depths × 4 heights) is
/// split into its two phases (x mod 2) and transformed along x, then along y, then along z.
#[inline(always)]
fn input_transform_3d_f2(x: &[f32], g: &Geometry, tiles: &Tiles, nt: usize, vbuf: &mut [f32]) {
    let (ic, [id, ih, iw], pad) = (g.cin, g.in_sp, g.pad);
    let gx = tiles.grid[2];
    let mut span = vec![0f32; 2 * gx + 4];
    let (mut even, mut odd) = (vec![0f32; gx + 1], vec![0f32; gx + 1]);
    // [kz][ky][kx][tile] after x, then [kz][ky'][kx][tile] after y.
    let mut xt = vec![0f32; 64 * gx];
    let mut yt = vec![0f32; 64 * gx];
    for (j0, len) in row_runs(tiles) {
        let (ni, o) = tiles.origin(j0);
        let org = [0, 1, 2].map(|a| o[a] as isize - pad[a] as isize);
        let width = 2 * len + 2;
        let (lo, hi) = (org[2].max(0), (org[2] + width as isize).min(iw as isize));
        for c in 0..ic {
            let vol = &x[(ni * ic + c) * id * ih * iw..][..id * ih * iw];
            for kz in 0..4 {
                let z = org[0] + kz as isize;
                for ky in 0..4 {
                    let y = org[1] + ky as isize;
                    span[..width].fill(0.0);
                    if (0..id as isize).contains(&z) && (0..ih as isize).contains(&y) && lo < hi {
                        let row = &vol[(z as usize * ih + y as usize) * iw..][..iw];
                        span[(lo - org[2]) as usize..(hi - org[2]) as usize]
                            .copy_from_slice(&row[lo as usize..hi as usize]);
                    }
                    for (t, pair) in span[..width].chunks_exact(2).enumerate() {
                        even[t] = pair[0];
                        odd[t] = pair[1];
                    }
                    let dst = &mut xt[(kz * 4 + ky) * 4 * gx..][..4 * gx];
                    let (d0, rest) = dst.split_at_mut(gx);
                    let (d1, rest) = rest.split_at_mut(gx);
                    let (d2, d3) = rest.split_at_mut(gx);
                    for t in 0..len {
                        let r = bt_f2([even[t], odd[t], even[t + 1], odd[t + 1]]);
                        d0[t] = r[0];
                        d1[t] = r[1];
                        d2[t] = r[2];
                        d3[t] = r[3];
                    }
                }
            }
            // Along y, then z: the same four-row combination, rows `stride` floats apart.
            let combine = |src: &[f32], dst: &mut [f32], at: usize, stride: usize| {
                let row = |k: usize| &src[at + k * stride..][..len];
                let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
                for t in 0..len {
                    let v = bt_f2([r0[t], r1[t], r2[t], r3[t]]);
                    for (k, v) in v.into_iter().enumerate() {
                        dst[at + k * stride + t] = v;
                    }
                }
            };
            for kz in 0..4 {
                for kx in 0..4 {
                    combine(&xt, &mut yt, (kz * 16 + kx) * gx, 4 * gx);
                }
            }
            for ky in 0..4 {
                for kx in 0..4 {
                    combine(&yt, &mut xt, (ky * 4 + kx) * gx, 16 * gx);
                }
            }
            for xi in 0..64 {
                vbuf[(xi * ic + c) * nt + j0..][..len].copy_from_slice(&xt[xi * gx..][..len]);
            }
        }
    }
}

/// The task's tiles as runs along one tile row: `(first tile, tiles)` with the first tile's
/// index within the task.
fn row_runs(tiles: &Tiles) -> impl Iterator<Item = (usize, usize)> + '_ {
    let gx = tiles.grid[2];
    let mut j = 0;
    std::iter::from_fn(move || {
        (j < tiles.count).then(|| {
            let tx = (tiles.t0 + j) % gx;
            let len = (gx - tx).min(tiles.count - j);
            let run = (j, len);
            j += len;
            run
        })
    })
}

/// Bᵀ of F(4, 3) on six inputs (rows of [`Axis::F4`]'s `bt`, written out so that the loops over
/// tiles or lanes around it vectorise).
#[inline(always)]
fn bt_f4(d: [f32; 6]) -> [f32; 6] {
    [
        4. * d[0] - 5. * d[2] + d[4],
        -4. * d[1] - 4. * d[2] + d[3] + d[4],
        4. * d[1] - 4. * d[2] - d[3] + d[4],
        -2. * d[1] - d[2] + 2. * d[3] + d[4],
        2. * d[1] - d[2] - 2. * d[3] + d[4],
        4. * d[1] - 5. * d[3] + d[5],
    ]
}

/// Aᵀ of F(4, 3) on six inputs.
#[inline(always)]
fn at_f4(m: [f32; 6]) -> [f32; 4] {
    [
        m[0] + m[1] + m[2] + m[3] + m[4],
        m[1] - m[2] + 2. * (m[3] - m[4]),
        m[1] + m[2] + 4. * (m[3] + m[4]),
        m[1] - m[2] + 8. * (m[3] - m[4]) + m[5],
    ]
}

/// [`input_transform_generic`] for [`PLAN_2D_F4`], vectorised over the tiles of a tile row:
/// each of a row's six input rows is split into its four phases (x mod 4) once, so that every
/// tile's six taps along x are contiguous loads across tiles, then the y transform combines
/// the six rows. The generic path's per-tile gather was most of a 256² layer's time.
#[inline(always)]
fn input_transform_2d_f4(x: &[f32], g: &Geometry, tiles: &Tiles, nt: usize, vbuf: &mut [f32]) {
    let (ic, [id, ih, iw], pad) = (g.cin, g.in_sp, g.pad);
    let gx = tiles.grid[2];
    // Per row: the padded span of a run of tiles, its four phases, the x transform of the six
    // rows ([ky][kx][tile]).
    let mut span = vec![0f32; 4 * gx + 8];
    let mut phase = vec![0f32; 4 * (gx + 1)];
    let mut xt = vec![0f32; 36 * gx];
    for (j0, len) in row_runs(tiles) {
        let (ni, o) = tiles.origin(j0);
        let (z, y0, x0) = (o[0], o[1] as isize - pad[1] as isize, o[2] as isize - pad[2] as isize);
        // Input columns x0 .. x0 + 4·len + 2 cover the run's tiles.
        let width = 4 * len + 2;
        let (lo, hi) = (x0.max(0), (x0 + width as isize).min(iw as isize));
        for c in 0..ic {
            let plane = &x[((ni * ic + c) * id + z) * ih * iw..][..ih * iw];
            for ky in 0..6 {
                let y = y0 + ky as isize;
                span[..4 * (len + 1)].fill(0.0);
                if (0..ih as isize).contains(&y) && lo < hi {
                    let row = &plane[y as usize * iw..][..iw];
                    span[(lo - x0) as usize..(hi - x0) as usize].copy_from_slice(&row[lo as usize..hi as usize]);
                }
                // phase[p][t] = span[4t + p], t ≤ len (the last only for taps 4 and 5).
                let (p0, rest) = phase.split_at_mut(gx + 1);
                let (p1, rest) = rest.split_at_mut(gx + 1);
                let (p2, p3) = rest.split_at_mut(gx + 1);
                for (t, quad) in span[..4 * (len + 1)].chunks_exact(4).enumerate() {
                    p0[t] = quad[0];
                    p1[t] = quad[1];
                    p2[t] = quad[2];
                    p3[t] = quad[3];
                }
                let dst = &mut xt[ky * 6 * gx..][..6 * gx];
                let (d0, rest) = dst.split_at_mut(gx);
                let (d1, rest) = rest.split_at_mut(gx);
                let (d2, rest) = rest.split_at_mut(gx);
                let (d3, rest) = rest.split_at_mut(gx);
                let (d4, d5) = rest.split_at_mut(gx);
                for t in 0..len {
                    let r = bt_f4([p0[t], p1[t], p2[t], p3[t], p0[t + 1], p1[t + 1]]);
                    d0[t] = r[0];
                    d1[t] = r[1];
                    d2[t] = r[2];
                    d3[t] = r[3];
                    d4[t] = r[4];
                    d5[t] = r[5];
                }
            }
            // Bᵀ along y: point ξ = ky'·6 + kx of tile t from the six rows' kx-th values.
            for kx in 0..6 {
                let row = |ky: usize| &xt[(ky * 6 + kx) * gx..][..len];
                let (r0, r1, r2, r3, r4, r5) = (row(0), row(1), row(2), row(3), row(4), row(5));
                let mut dst: [&mut [f32]; 6] = [&mut [], &mut [], &mut [], &mut [], &mut [], &mut []];
                // The six points (ky', kx) live ic·nt floats apart in vbuf.
                let mut rest = &mut vbuf[(kx * ic + c) * nt + j0..];
                for (kyp, d) in dst.iter_mut().enumerate() {
                    let (head, tail) = rest.split_at_mut(if kyp < 5 { 6 * ic * nt } else { len });
                    *d = &mut head[..len];
                    rest = tail;
                }
                for t in 0..len {
                    let v = bt_f4([r0[t], r1[t], r2[t], r3[t], r4[t], r5[t]]);
                    for (d, v) in dst.iter_mut().zip(v) {
                        d[t] = v;
                    }
                }
            }
        }
    }
}

/// V[ξ][c][j] = (Bᵀ ⊗ Bᵀ ⊗ Bᵀ) d of every tile's input patch, vectorised over tiles, for any
/// plan.
#[inline(always)]
fn input_transform_generic(x: &[f32], g: &Geometry, plan: Plan, tiles: &Tiles, nt: usize, vbuf: &mut [f32]) {
    let t = plan.t();
    let tt = plan.points();
    let (ic, [id, ih, iw], pad) = (g.cin, g.in_sp, g.pad);
    let mut a = vec![0f32; tt * nt];
    let mut b = vec![0f32; tt * nt];
    for c in 0..ic {
        // Gather every tile's t-sized patch: a[kz][ky][kx][j].
        for j in 0..tiles.count {
            let (ni, o) = tiles.origin(j);
            let vol = &x[(ni * ic + c) * id * ih * iw..][..id * ih * iw];
            for kz in 0..t[0] {
                let z = (o[0] + kz) as isize - pad[0] as isize;
                for ky in 0..t[1] {
                    let y = (o[1] + ky) as isize - pad[1] as isize;
                    let inside = z >= 0 && z < id as isize && y >= 0 && y < ih as isize;
                    for kx in 0..t[2] {
                        let xx = (o[2] + kx) as isize - pad[2] as isize;
                        a[((kz * t[1] + ky) * t[2] + kx) * nt + j] = if inside && xx >= 0 && xx < iw as isize {
                            vol[(z as usize * ih + y as usize) * iw + xx as usize]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
        // Bᵀ along x, then y, then z (identity axes skipped).
        let mut from_a = true;
        for axis in (0..3).rev() {
            if plan.axes[axis] == Axis::Identity {
                continue;
            }
            let (src, dst) = if from_a { (&a, &mut b) } else { (&b, &mut a) };
            apply_axis(src, t, axis, plan.axes[axis].bt(), t[axis], nt, dst);
            from_a = !from_a;
        }
        let res = if from_a { &a } else { &b };
        for xi in 0..tt {
            vbuf[(xi * ic + c) * nt..][..nt].copy_from_slice(&res[xi * nt..][..nt]);
        }
    }
}

/// [`output_transform_body`] compiled for `isa`.
///
/// # Safety
/// `isa` must be available; the task must own its tiles' output pixels.
#[allow(clippy::too_many_arguments)]
unsafe fn output_transform(
    isa: Isa,
    mbuf: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    plan: Plan,
    tiles: &Tiles,
    nt: usize,
    blocks: usize,
    ocb: usize,
    out: SharedMut,
) {
    // SAFETY: the caller checked `isa` and owns the tiles' pixels.
    unsafe {
        at_level!(
            isa,
            output_transform_body(
                mbuf: &[f32],
                bias: Option<&[f32]>,
                g: &Geometry,
                plan: Plan,
                tiles: &Tiles,
                nt: usize,
                blocks: usize,
                ocb: usize,
                out: SharedMut,
            )
        )
    }
}

/// Y = (Aᵀ ⊗ Aᵀ ⊗ Aᵀ) M per tile and output channel, vectorised over the block's channels,
/// plus the bias, scattered into the output.
///
/// # Safety
/// The task must own its tiles' output pixels.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn output_transform_body(
    mbuf: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    plan: Plan,
    tiles: &Tiles,
    nt: usize,
    blocks: usize,
    ocb: usize,
    out: SharedMut,
) {
    // SAFETY (both): forwarded from the caller.
    unsafe {
        if plan == PLAN_2D_F4 {
            output_transform_lanes::<1, 4, 4>(mbuf, bias, g, tiles, nt, blocks, ocb, out, tile_out_2d_f4)
        } else if plan == PLAN_3D_F2 {
            output_transform_lanes::<2, 2, 2>(mbuf, bias, g, tiles, nt, blocks, ocb, out, tile_out_3d_f2)
        } else {
            output_transform_generic(mbuf, bias, g, plan, tiles, nt, blocks, ocb, out)
        }
    }
}

/// Output channels the written-out output transforms take together: a fixed width, so that
/// their loops over them unroll into vector code (`ocb` is 16 or 32).
const OUT_LANES: usize = 16;

/// One tile's transformed points for [`OUT_LANES`] channels of one block, as `mbuf` holds them.
struct TilePoints<'a> {
    mbuf: &'a [f32],
    base: usize,
    point_stride: usize,
}

impl TilePoints<'_> {
    /// Point `xi`'s lanes.
    #[inline(always)]
    fn at(&self, xi: usize) -> &[f32; OUT_LANES] {
        let v = &self.mbuf[xi * self.point_stride + self.base..][..OUT_LANES];
        v.try_into().unwrap_or(&[0.0; OUT_LANES])
    }
}

/// What the written-out output transforms share: for each tile, channel block and group of
/// [`OUT_LANES`] channels, `transform` turns the tile's points into its `MZ×MY×MX` outputs
/// (`y[dz][dy][dx][lane]`), which go into the output plus the bias, cut at the volume's edges.
///
/// # Safety
/// The task must own its tiles' output pixels.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn output_transform_lanes<const MZ: usize, const MY: usize, const MX: usize>(
    mbuf: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    tiles: &Tiles,
    nt: usize,
    blocks: usize,
    ocb: usize,
    out: SharedMut,
    transform: impl Fn(&TilePoints) -> [[[[f32; OUT_LANES]; MX]; MY]; MZ],
) {
    let oc = g.cout;
    let [od, oh, ow] = g.out_sp;
    let point_stride = blocks * nt * ocb;
    // Block by block, the tiles in order: each of the points' streams through `mbuf` then runs
    // forward, and the output rows a tile row writes (16 channels' worth) stay in cache until
    // the next tiles fill their lines. Tiles inside blocks read a cache line per point from
    // `blocks` places and kept every channel's rows of a tile row live: 1.6× slower at 512 out.
    for blk in 0..blocks {
        for j in 0..tiles.count {
            let (ni, o) = tiles.origin(j);
            let ext = [MZ, MY, MX];
            let ext = [0, 1, 2].map(|a| ext[a].min(g.out_sp[a] - o[a]));
            for l0 in (0..ocb.min(oc - blk * ocb)).step_by(OUT_LANES) {
                let y = transform(&TilePoints {
                    mbuf,
                    base: (blk * nt + j) * ocb + l0,
                    point_stride,
                });
                for l in 0..OUT_LANES.min(oc - blk * ocb - l0) {
                    let oc_i = blk * ocb + l0 + l;
                    let bv = bias.map_or(0.0, |bb| bb[oc_i]);
                    // SAFETY: the voxels of this task's tile in volume (ni, oc_i).
                    let vol = unsafe {
                        std::slice::from_raw_parts_mut(out.ptr().add((ni * oc + oc_i) * od * oh * ow), od * oh * ow)
                    };
                    for (dz, yz) in y.iter().enumerate().take(ext[0]) {
                        for (dy, yy) in yz.iter().enumerate().take(ext[1]) {
                            let dst = &mut vol[((o[0] + dz) * oh + o[1] + dy) * ow + o[2]..][..ext[2]];
                            for (d, yx) in dst.iter_mut().zip(yy) {
                                *d = yx[l] + bv;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One tile's outputs for [`PLAN_2D_F4`] (see [`output_transform_lanes`]), the transforms written out.
#[inline(always)]
fn tile_out_2d_f4(m: &TilePoints) -> [[[[f32; OUT_LANES]; 4]; 4]; 1] {
    // Aᵀ along x for each of the six rows, then along y: y[0][dy][dx][lane].
    let mut tx = [[[0f32; OUT_LANES]; 4]; 6];
    for (ky, row) in tx.iter_mut().enumerate() {
        let ms: [&[f32; OUT_LANES]; 6] = std::array::from_fn(|kx| m.at(ky * 6 + kx));
        for l in 0..OUT_LANES {
            let r = at_f4([ms[0][l], ms[1][l], ms[2][l], ms[3][l], ms[4][l], ms[5][l]]);
            for (dx, v) in r.into_iter().enumerate() {
                row[dx][l] = v;
            }
        }
    }
    let mut y = [[[[0f32; OUT_LANES]; 4]; 4]; 1];
    for dx in 0..4 {
        for l in 0..OUT_LANES {
            let r = at_f4([
                tx[0][dx][l],
                tx[1][dx][l],
                tx[2][dx][l],
                tx[3][dx][l],
                tx[4][dx][l],
                tx[5][dx][l],
            ]);
            for (dy, v) in r.into_iter().enumerate() {
                y[0][dy][dx][l] = v;
            }
        }
    }
    y
}

/// One tile's outputs for [`PLAN_3D_F2`] (see [`output_transform_lanes`]), the transforms written out.
#[inline(always)]
fn tile_out_3d_f2(m: &TilePoints) -> [[[[f32; OUT_LANES]; 2]; 2]; 2] {
    // Along x: a[kz][ky][dx][lane].
    let mut a = [[[[0f32; OUT_LANES]; 2]; 4]; 4];
    for (kz, plane) in a.iter_mut().enumerate() {
        for (ky, row) in plane.iter_mut().enumerate() {
            let xi = (kz * 4 + ky) * 4;
            let ms = [m.at(xi), m.at(xi + 1), m.at(xi + 2), m.at(xi + 3)];
            for l in 0..OUT_LANES {
                let r = at_f2([ms[0][l], ms[1][l], ms[2][l], ms[3][l]]);
                row[0][l] = r[0];
                row[1][l] = r[1];
            }
        }
    }
    // Along y, then z: y[dz][dy][dx][lane].
    let mut b = [[[[0f32; OUT_LANES]; 2]; 2]; 4];
    for kz in 0..4 {
        for dx in 0..2 {
            for l in 0..OUT_LANES {
                let r = at_f2([a[kz][0][dx][l], a[kz][1][dx][l], a[kz][2][dx][l], a[kz][3][dx][l]]);
                b[kz][0][dx][l] = r[0];
                b[kz][1][dx][l] = r[1];
            }
        }
    }
    let mut y = [[[[0f32; OUT_LANES]; 2]; 2]; 2];
    for dy in 0..2 {
        for dx in 0..2 {
            for l in 0..OUT_LANES {
                let r = at_f2([b[0][dy][dx][l], b[1][dy][dx][l], b[2][dy][dx][l], b[3][dy][dx][l]]);
                y[0][dy][dx][l] = r[0];
                y[1][dy][dx][l] = r[1];
            }
        }
    }
    y
}

/// Y = (Aᵀ ⊗ Aᵀ ⊗ Aᵀ) M per tile and output channel, vectorised over the block's channels,
/// plus the bias, scattered into the output, for any plan.
///
/// # Safety
/// The task must own its tiles' output pixels.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn output_transform_generic(
    mbuf: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    plan: Plan,
    tiles: &Tiles,
    nt: usize,
    blocks: usize,
    ocb: usize,
    out: SharedMut,
) {
    let (t, m) = (plan.t(), plan.m());
    let tt = plan.points();
    let oc = g.cout;
    let [od, oh, ow] = g.out_sp;
    let mut a = vec![0f32; tt * ocb];
    let mut b = vec![0f32; tt * ocb];
    // Block-major, as in `output_transform_lanes`.
    for blk in 0..blocks {
        for j in 0..tiles.count {
            let (ni, o) = tiles.origin(j);
            for xi in 0..tt {
                a[xi * ocb..][..ocb].copy_from_slice(&mbuf[((xi * blocks + blk) * nt + j) * ocb..][..ocb]);
            }
            let mut dims = t;
            let mut from_a = true;
            for axis in (0..3).rev() {
                if plan.axes[axis] == Axis::Identity {
                    continue;
                }
                let (src, dst) = if from_a { (&a, &mut b) } else { (&b, &mut a) };
                apply_axis(src, dims, axis, plan.axes[axis].at(), m[axis], ocb, dst);
                dims[axis] = m[axis];
                from_a = !from_a;
            }
            let y = if from_a { &a } else { &b };
            for lane in 0..ocb.min(oc - blk * ocb) {
                let oc_i = blk * ocb + lane;
                let bv = bias.map_or(0.0, |bb| bb[oc_i]);
                // SAFETY: voxels of this task's tile in volume (ni, oc_i).
                let vol = unsafe {
                    std::slice::from_raw_parts_mut(out.ptr().add((ni * oc + oc_i) * od * oh * ow), od * oh * ow)
                };
                for dz in 0..m[0].min(od - o[0]) {
                    for dy in 0..m[1].min(oh - o[1]) {
                        for dx in 0..m[2].min(ow - o[2]) {
                            let v = y[((dz * m[1] + dy) * m[2] + dx) * ocb + lane];
                            vol[((o[0] + dz) * oh + o[1] + dy) * ow + o[2] + dx] = v + bv;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use candle_core::Tensor;

    use crate::test_util::{max_abs, max_diff, rand};
    use crate::{ConvCache, ConvParams, ConvPath, conv::conv_cached};

    /// The 2-D F(4×4) and 3-D F(2×2×2) transforms against the GEMM path where a task's tiles
    /// start and end in the middle of tile rows (three threads split the tiles unevenly), on a
    /// conv3d with a 1×3×3 kernel over several depth planes, at the partial tiles of odd sizes, and
    /// with more input channels than one chunk of the multiply.
    #[test]
    fn fast_transforms_match_the_gemm_path_across_tile_rows_planes_and_edges() {
        if !crate::conv_direct::applicable(
            &crate::conv::geometry(
                "conv2d",
                &[1, 32, 8, 8],
                &[32, 32, 3, 3],
                None,
                ConvParams::<2>::padding(1),
            )
            .unwrap(),
            crate::isa::active(),
        ) {
            eprintln!("skipped: no AVX2 or AVX-512 here, so no Winograd path");
            return;
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        pool.install(|| {
            // Every case must take the Winograd path (at least 32 channels in and out).
            let check = |ours: Tensor, gemm: Tensor, what: &str| {
                let (scale, diff) = (max_abs(&gemm), max_diff(&ours, &gemm));
                assert!(diff <= 2e-5 * scale, "{what}: max diff {diff} against max {scale}");
            };
            // 200 input channels take several chunks of the multiply (the first writes, the
            // rest add).
            for (shape, pad) in [([2, 32, 70, 90], 1), ([1, 32, 13, 17], 0), ([1, 200, 11, 9], 1)] {
                let (w, b) = (rand(&[40, shape[1], 3, 3], 2), rand(&[40], 3));
                let x = rand(&shape, 1);
                let p = ConvParams::<2>::padding(pad);
                let run = |path| conv_cached(&x, &w, Some(&b), p, &ConvCache::pinned(path)).unwrap();
                check(
                    run(ConvPath::Winograd),
                    run(ConvPath::Gemm),
                    &format!("conv2d {shape:?}"),
                );
            }
            let x = rand(&[1, 32, 3, 21, 26], 4);
            let w3 = rand(&[40, 32, 1, 3, 3], 5);
            let p = ConvParams::<3> {
                padding: [0, 1, 1],
                ..Default::default()
            };
            let run = |path| conv_cached(&x, &w3, None, p, &ConvCache::pinned(path)).unwrap();
            check(run(ConvPath::Winograd), run(ConvPath::Gemm), "conv3d 1x3x3");
            // F(2×2×2): odd sizes on every axis, two images, padding 1 and 0, several chunks.
            let b = rand(&[40], 3);
            for (shape, pad) in [([2, 32, 5, 9, 23], 1), ([1, 32, 6, 7, 8], 0), ([1, 112, 4, 5, 6], 1)] {
                let w3 = rand(&[40, shape[1], 3, 3, 3], 6);
                let x = rand(&shape, 7);
                let p = ConvParams::<3>::padding(pad);
                let run = |path| conv_cached(&x, &w3, Some(&b), p, &ConvCache::pinned(path)).unwrap();
                check(
                    run(ConvPath::Winograd),
                    run(ConvPath::Gemm),
                    &format!("conv3d {shape:?}"),
                );
            }
        });
    }
}
