//! Convolutions (`F.conv1d`, `F.conv2d`, `F.conv3d`) as GEMM over per-thread im2col tiles.
//!
//! Why hand-written: candle has no conv3d, and its CPU conv2d ran at ~0.56× PyTorch here
//! (see README, "Tensor backend"). One kernel serves all three ranks: a 1-D or 2-D
//! convolution is a 3-D one with unit depth (and height).
//!
//! Each rayon task unfolds a few output rows of one image and one group into a
//! thread-local `K × cols` buffer (K = in-channels-per-group × kernel volume) and multiplies
//! it by the group's `out × K` weight matrix with `gemm` on its own slice of the output.
//! Tiles are sized to stay in L2, so the unfold costs little next to the GEMM, and no
//! full-size unfold buffer (600 MB for a 64-channel 256² 3×3 conv) is ever allocated.

use candle_core::Tensor;
use gemm::Parallelism;
use rayon::prelude::*;

use crate::access::{Input, SharedMut, output, with_opt};
use crate::{Result, shape_err};

/// Hyper-parameters of an `N`-dimensional convolution, as `torch.nn.ConvNd` takes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvParams<const N: usize> {
    /// Step between output positions, per spatial axis.
    pub stride: [usize; N],
    /// Zeros added on both sides, per spatial axis.
    pub padding: [usize; N],
    /// Spacing between kernel taps, per spatial axis.
    pub dilation: [usize; N],
    /// Number of channel groups (`in_channels` for a depthwise convolution).
    pub groups: usize,
}

/// What a convolution reads outside its input (`padding_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PaddingMode {
    /// `'zeros'`.
    #[default]
    Zeros,
    /// `'reflect'`: the input mirrored about its edges (`nn.ReflectionPad2d`), the edge itself
    /// not repeated.
    Reflect,
}

impl<const N: usize> Default for ConvParams<N> {
    fn default() -> Self {
        Self {
            stride: [1; N],
            padding: [0; N],
            dilation: [1; N],
            groups: 1,
        }
    }
}

impl<const N: usize> ConvParams<N> {
    /// Stride 1, the given padding on every axis, no dilation, one group.
    pub fn padding(p: usize) -> Self {
        Self {
            padding: [p; N],
            ..Self::default()
        }
    }

    /// The same parameters with another stride on every axis.
    pub fn with_stride(mut self, s: usize) -> Self {
        self.stride = [s; N];
        self
    }

    /// The same parameters with another dilation on every axis.
    pub fn with_dilation(mut self, d: usize) -> Self {
        self.dilation = [d; N];
        self
    }

    /// The same parameters with another group count.
    pub fn with_groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }

    /// Pads the per-axis arrays to three axes (depth, height, width) with neutral values.
    fn to_3d(self) -> ConvParams<3> {
        let mut p = ConvParams::<3> {
            groups: self.groups,
            ..Default::default()
        };
        for i in 0..N {
            p.stride[3 - N + i] = self.stride[i];
            p.padding[3 - N + i] = self.padding[i];
            p.dilation[3 - N + i] = self.dilation[i];
        }
        p
    }
}

/// `F.conv1d(x, weight, bias, stride, padding, dilation, groups)`: x is `(N, C, L)`.
pub fn conv1d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: ConvParams<1>) -> Result<Tensor> {
    conv(x, weight, bias, p)
}

/// `F.conv2d(x, weight, bias, stride, padding, dilation, groups)`: x is `(N, C, H, W)`.
pub fn conv2d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: ConvParams<2>) -> Result<Tensor> {
    conv(x, weight, bias, p)
}

/// `F.conv3d(x, weight, bias, stride, padding, dilation, groups)`: x is `(N, C, D, H, W)`.
pub fn conv3d(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: ConvParams<3>) -> Result<Tensor> {
    conv(x, weight, bias, p)
}

/// The convolution with `N` (1, 2 or 3) spatial axes; what [`conv1d`], [`conv2d`] and
/// [`conv3d`] call, for code generic over the rank (like `torch.nn.Conv{N}d`).
pub fn conv<const N: usize>(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>, p: ConvParams<N>) -> Result<Tensor> {
    conv_cached(x, weight, bias, p, &ConvCache::default())
}

/// Weight layouts the fast kernels derive from a layer's weights (packed 16-channel
/// panels, Winograd transforms). A layer keeps one per weight tensor and passes it to
/// [`conv_cached`], so they are computed on the first call only.
#[derive(Debug, Default)]
pub struct ConvCache {
    pub(crate) path: ConvPath,
    pub(crate) direct: std::sync::OnceLock<Vec<f32>>,
    pub(crate) winograd: std::sync::OnceLock<Vec<f32>>,
    pub(crate) amx: std::sync::OnceLock<Vec<u16>>,
}

/// Which kernel [`conv_cached`] runs. `Auto` picks per shape; the others pin one, so that tests can
/// check every kernel on the same cases and benchmarks can time them (a pinned kernel that does not
/// apply to a shape — e.g. Winograd on a strided conv — falls back to the GEMM path).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvPath {
    /// Winograd for wide 3×3 layers, else direct, else GEMM: chosen from the shape alone; in
    /// the bf16 precision, AMX tiles where they apply.
    #[default]
    Auto,
    /// im2col / row-shift / pointwise tiles into `gemm`.
    Gemm,
    /// The AVX-512 direct microkernel (stride 1, x86-64 with AVX-512F).
    Direct,
    /// Winograd F(4×4, 3×3) / F(2×2×2, 3×3×3) on the direct microkernel, from the first call and
    /// whatever the channel counts.
    Winograd,
}

impl ConvCache {
    /// A cache that makes [`conv_cached`] run `path`.
    pub fn pinned(path: ConvPath) -> Self {
        Self {
            path,
            ..Self::default()
        }
    }
}

/// [`conv`] reusing the weight layouts in `cache` (which must only ever be used with this
/// `weight` and these parameters).
pub fn conv_cached<const N: usize>(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    p: ConvParams<N>,
    cache: &ConvCache,
) -> Result<Tensor> {
    let op = op_name::<N>()?;
    let x = Input::new(op, x)?;
    let w = Input::new(op, weight)?;
    let b = bias.map(|b| Input::new(op, b)).transpose()?;
    let g = geometry(op, x.dims(), w.dims(), b.as_ref().map(Input::dims), p)?;
    let _t = profile_scope(op, &g, cache.path);
    let data = x.with(|xs| w.with(|ws| with_opt(b.as_ref(), |bs| conv_f32(xs, ws, bs, &g, cache))));
    output(data, g.output_shape::<N>())
}

/// The profiler's scope for one convolution, counted under its shape and kernel too.
pub(crate) fn profile_scope(op: &'static str, g: &Geometry, path: ConvPath) -> crate::profile::Scope {
    crate::profile::scope_detail(op, || {
        let kernel = Kernel::choose(g, path, crate::isa::active(), crate::precision::active());
        format!(
            "{op} {}->{} k{:?} s{:?} g{} @{}x{:?} {kernel:?}",
            g.cin, g.cout, g.k, g.stride, g.groups, g.n, g.in_sp
        )
    })
}

/// The op's name for `N` spatial axes (`conv1d`, `conv2d`, `conv3d`; an error for other ranks).
pub fn op_name<const N: usize>() -> Result<&'static str> {
    match N {
        1 => Ok("conv1d"),
        2 => Ok("conv2d"),
        3 => Ok("conv3d"),
        _ => shape_err("conv", format!("{N} spatial axes: only 1, 2 and 3 are supported")),
    }
}

/// Checks that input `xd`, weight `wd` and bias dimensions fit `p` as `torch.nn.functional.conv{N}d`
/// requires, and derives the sizes. Every backend checks shapes through this one function (the GPU
/// crate too), so the errors read the same everywhere.
pub fn geometry<const N: usize>(
    op: &'static str,
    xd: &[usize],
    wd: &[usize],
    bias: Option<&[usize]>,
    p: ConvParams<N>,
) -> Result<Geometry> {
    if xd.len() != N + 2 || wd.len() != N + 2 {
        return shape_err(
            op,
            format!(
                "expected input and weight of rank {}, got input {xd:?} and weight {wd:?}",
                N + 2
            ),
        );
    }
    let groups = p.groups;
    let (n, cin, cout) = (xd[0], xd[1], wd[0]);
    if groups == 0 || cin % groups != 0 || cout % groups != 0 || wd[1] * groups != cin {
        return shape_err(
            op,
            format!("input {xd:?} and weight {wd:?} do not fit groups={groups} (weight must be (out, in/groups, ...))"),
        );
    }
    if let Some(bd) = bias
        && bd != [cout]
    {
        return shape_err(op, format!("bias {bd:?} does not match {cout} output channels"));
    }
    let p3 = p.to_3d();
    let mut in_sp = [1usize; 3];
    let mut k = [1usize; 3];
    in_sp[3 - N..].copy_from_slice(&xd[2..]);
    k[3 - N..].copy_from_slice(&wd[2..]);
    let mut out_sp = [0usize; 3];
    for i in 0..3 {
        let span = p3.dilation[i] * (k[i] - 1) + 1;
        let padded = in_sp[i] + 2 * p3.padding[i];
        if p3.stride[i] == 0 || p3.dilation[i] == 0 || k[i] == 0 || padded < span {
            return shape_err(
                op,
                format!(
                    "kernel {:?} (dilation {:?}) does not fit input {xd:?} padded by {:?}",
                    &wd[2..],
                    p.dilation,
                    p.padding
                ),
            );
        }
        out_sp[i] = (padded - span) / p3.stride[i] + 1;
    }
    Ok(Geometry {
        n,
        cin,
        cout,
        groups,
        in_sp,
        k,
        stride: p3.stride,
        pad: p3.padding,
        dil: p3.dilation,
        out_sp,
    })
}

/// Sizes of one convolution, with 1-D/2-D cases padded to three spatial axes (depth, height,
/// width; the missing leading axes have size 1, stride 1, no padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Batch size.
    pub n: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Channel groups.
    pub groups: usize,
    /// Input size.
    pub in_sp: [usize; 3],
    /// Kernel size.
    pub k: [usize; 3],
    /// Stride.
    pub stride: [usize; 3],
    /// Zero padding on each side.
    pub pad: [usize; 3],
    /// Dilation.
    pub dil: [usize; 3],
    /// Output size.
    pub out_sp: [usize; 3],
}

impl Geometry {
    /// The output's `(N, Cout, spatial…)` shape for `N` spatial axes.
    pub fn output_shape<const N: usize>(&self) -> Vec<usize> {
        let mut shape = vec![self.n, self.cout];
        shape.extend_from_slice(&self.out_sp[3 - N..]);
        shape
    }
}

/// Floats per unfold tile: 512 KiB, what one core's L2 holds beside the packed weights.
const TILE_FLOATS: usize = 128 * 1024;

/// How the convolution is laid onto GEMMs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Strategy {
    /// 1×1×1 kernel, stride 1, no padding: the input already is the GEMM's right-hand side.
    Pointwise,
    /// Stride 1 along W: unfold each source row once per (c, kz, ky), zero-padded, and run
    /// one GEMM per kx tap on views shifted by `kx * dilation`. A third of the unfold
    /// traffic of plain im2col for a 3-wide kernel, which is most of what im2col costs.
    RowShift,
    /// Anything else: classic im2col over all K = c·kd·kh·kw taps.
    Im2col,
}

/// The kernel that runs a convolution: decided by the shape, the cache's pin, the instruction
/// set and the precision alone, never by what ran before, so a layer gives the same result on
/// every call (the kernels round differently, within float32 tolerance; bf16 within its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// Winograd on the direct microkernel; weights as [`crate::winograd::transform_weights`].
    Winograd(crate::winograd::Plan),
    /// The direct microkernel; weights as [`crate::conv_direct::pack_all_groups`].
    Direct,
    /// im2col / row-shift / pointwise tiles into `gemm`, on the original weights.
    Gemm,
    /// bf16 on AMX tiles; weights as [`crate::conv_amx::pack_weights`].
    Amx,
}

/// A layer's weights in the form a [`Kernel`] reads.
#[derive(Clone, Copy)]
pub(crate) enum Layout<'a> {
    /// fp32: original, direct panels or Winograd transform.
    F32(&'a [f32]),
    /// bf16 AMX B tiles.
    Bf16(&'a [u16]),
}

impl Kernel {
    /// The kernel for `g` under `path` at the active instruction set `isa` and precision.
    pub(crate) fn choose(g: &Geometry, path: ConvPath, isa: crate::isa::Isa, precision: crate::Precision) -> Kernel {
        // `Precision::Bf16` is only ever active where AMX is (see `precision::set`); a pinned
        // path is an fp32 kernel and stays one.
        if precision == crate::Precision::Bf16 && path == ConvPath::Auto && crate::conv_amx::applicable(g) {
            return Kernel::Amx;
        }
        #[cfg(target_arch = "x86_64")]
        if path != ConvPath::Gemm && crate::conv_direct::applicable(g, isa) {
            let winograd = match path {
                ConvPath::Auto => crate::winograd::choose(g, false),
                ConvPath::Winograd => crate::winograd::choose(g, true),
                ConvPath::Gemm | ConvPath::Direct => None,
            };
            return winograd.map_or(Kernel::Direct, Kernel::Winograd);
        }
        let _ = (g, path, isa);
        Kernel::Gemm
    }

    /// Runs the kernel on `layout`, the weights in the form it takes (see the variants).
    pub(crate) fn run(
        self,
        x: &[f32],
        layout: Layout<'_>,
        bias: Option<&[f32]>,
        g: &Geometry,
        isa: crate::isa::Isa,
    ) -> Vec<f32> {
        match (self, layout) {
            #[cfg(target_arch = "x86_64")]
            (Kernel::Winograd(plan), Layout::F32(u)) => crate::winograd::conv_winograd(x, bias, g, plan, u, isa),
            #[cfg(target_arch = "x86_64")]
            (Kernel::Direct, Layout::F32(packed)) => crate::conv_direct::conv_direct(x, bias, g, packed, isa),
            #[cfg(target_arch = "x86_64")]
            (Kernel::Amx, Layout::Bf16(packed)) => crate::conv_amx::conv_amx(x, bias, g, packed),
            (_, Layout::F32(w)) => conv_gemm(x, w, bias, g),
            // Both callers build the layout from the kernel they then run.
            (_, Layout::Bf16(_)) => unreachable!("bf16 tiles are only built for Kernel::Amx"),
        }
    }
}

/// The convolution on contiguous `f32` buffers; returns the `(N, Cout, D', H', W')` output.
pub(crate) fn conv_f32(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Geometry, cache: &ConvCache) -> Vec<f32> {
    let isa = crate::isa::active();
    let kernel = Kernel::choose(g, cache.path, isa, crate::precision::active());
    let layout = match kernel {
        Kernel::Winograd(plan) => Layout::F32(
            cache
                .winograd
                .get_or_init(|| crate::winograd::transform_weights(w, g.cout, g.cin, plan)),
        ),
        Kernel::Direct => Layout::F32(cache.direct.get_or_init(|| crate::conv_direct::pack_all_groups(w, g))),
        Kernel::Amx => Layout::Bf16(cache.amx.get_or_init(|| crate::conv_amx::pack_weights(w, g))),
        Kernel::Gemm => Layout::F32(w),
    };
    kernel.run(x, layout, bias, g, isa)
}

/// [`conv_f32`] on the GEMM paths, with the original `(out, in/groups, k…)` weights.
fn conv_gemm(x: &[f32], w: &[f32], bias: Option<&[f32]>, g: &Geometry) -> Vec<f32> {
    let [od, oh, ow] = g.out_sp;
    let p = od * oh * ow;
    let cg = g.cin / g.groups;
    let kk = cg * g.k.iter().product::<usize>();
    let strategy = if g.k == [1, 1, 1] && g.stride == [1, 1, 1] && g.pad == [0, 0, 0] {
        Strategy::Pointwise
    } else if g.stride[2] == 1 && g.k[2] > 1 {
        Strategy::RowShift
    } else {
        Strategy::Im2col
    };
    let mut out = vec![0f32; g.n * g.cout * p];
    if let Some(b) = bias {
        for (i, plane) in out.chunks_mut(p).enumerate() {
            plane.fill(b[i % g.cout]);
        }
    }
    // Tiles are whole output rows (single positions for a pointwise conv).
    let row_len = if strategy == Strategy::Pointwise { 1 } else { ow };
    let rows = p / row_len;
    let threads = rayon::current_num_threads().max(1);
    // Floats one tile row unfolds to.
    let unfold_row = match strategy {
        Strategy::RowShift => cg * g.k[0] * g.k[1] * (ow + (g.k[2] - 1) * g.dil[2]),
        _ => kk * row_len,
    };
    let mut tile_rows = (TILE_FLOATS / unfold_row.max(1)).clamp(1, rows);
    if strategy == Strategy::Pointwise {
        tile_rows = tile_rows.max(64.min(rows));
    }
    // Enough tasks to keep every thread busy to the end.
    while tile_rows > 1 && g.n * g.groups * rows.div_ceil(tile_rows) < 4 * threads {
        tile_rows = tile_rows.div_ceil(2);
    }
    let tiles = rows.div_ceil(tile_rows);
    let out_ptr = SharedMut::new(&mut out);
    (0..g.n * g.groups * tiles).into_par_iter().for_each_init(
        || (Vec::new(), Vec::new()),
        |(col, acc): &mut (Vec<f32>, Vec<f32>), task| {
            let tile = task % tiles;
            let gi = (task / tiles) % g.groups;
            let ni = task / (tiles * g.groups);
            let t = Tile {
                ni,
                gi,
                row0: tile * tile_rows,
                nrows: tile_rows.min(rows - tile * tile_rows),
            };
            // SAFETY: the task owns output columns [row0·row_len, (row0+nrows)·row_len) of
            // channels gi·og .. (gi+1)·og of image ni; no other task writes them.
            unsafe {
                match strategy {
                    Strategy::Pointwise => pointwise_tile(x, w, bias.is_some(), g, t, out_ptr),
                    Strategy::RowShift => rowshift_tile(x, w, bias, g, t, out_ptr, col, acc),
                    Strategy::Im2col => im2col_tile(x, w, bias.is_some(), g, t, out_ptr, col),
                }
            }
        },
    );
    out
}

/// One task's share: output rows `row0 .. row0 + nrows` of image `ni`, group `gi`.
#[derive(Clone, Copy)]
struct Tile {
    ni: usize,
    gi: usize,
    row0: usize,
    nrows: usize,
}

/// Row-major `dst (m × n) (+)= lhs (m × k) · rhs (k × n)` with explicit strides
/// (`*_rs` between rows, `*_cs` between columns), single-threaded: the callers
/// parallelise over tiles.
///
/// # Safety
/// Pointers and strides must describe valid, non-aliasing regions of the given sizes.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_acc(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: *const f32,
    rhs_rs: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            1,
            rhs_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// Geometry shorthands for one image-group.
fn group_input<'a>(x: &'a [f32], g: &Geometry, t: Tile) -> &'a [f32] {
    let in_plane: usize = g.in_sp.iter().product();
    let cg = g.cin / g.groups;
    &x[(t.ni * g.cin + t.gi * cg) * in_plane..][..cg * in_plane]
}

/// Pointer to output channel `gi·og`, column `col0` of image `ni`.
fn dst_ptr(out: SharedMut, g: &Geometry, t: Tile, col0: usize) -> *mut f32 {
    let p: usize = g.out_sp.iter().product();
    let og = g.cout / g.groups;
    // SAFETY: in bounds of the output buffer by construction of the tile.
    unsafe { out.ptr().add((t.ni * g.cout + t.gi * og) * p + col0) }
}

/// # Safety
/// The tile must be this task's alone.
unsafe fn pointwise_tile(x: &[f32], w: &[f32], has_bias: bool, g: &Geometry, t: Tile, out: SharedMut) {
    let (og, cg) = (g.cout / g.groups, g.cin / g.groups);
    let p: usize = g.out_sp.iter().product();
    let x_g = group_input(x, g, t);
    let w_g = &w[t.gi * og * cg..][..og * cg];
    // SAFETY: rows of x_g are `p` apart and the tile's columns lie inside them.
    unsafe {
        gemm_acc(
            og,
            t.nrows,
            cg,
            dst_ptr(out, g, t, t.row0),
            p,
            has_bias,
            w_g.as_ptr(),
            cg,
            1,
            x_g[t.row0..].as_ptr(),
            p,
        )
    }
}

/// # Safety
/// The tile must be this task's alone.
#[allow(clippy::too_many_arguments)]
unsafe fn im2col_tile(x: &[f32], w: &[f32], has_bias: bool, g: &Geometry, t: Tile, out: SharedMut, col: &mut Vec<f32>) {
    let og = g.cout / g.groups;
    let kk = g.cin / g.groups * g.k.iter().product::<usize>();
    let ow = g.out_sp[2];
    let p: usize = g.out_sp.iter().product();
    let cols = t.nrows * ow;
    col.resize(kk * cols, 0.0);
    im2col(group_input(x, g, t), g, t.row0, t.nrows, col);
    let w_g = &w[t.gi * og * kk..][..og * kk];
    // SAFETY: col is kk × cols; the destination columns are this tile's.
    unsafe {
        gemm_acc(
            og,
            cols,
            kk,
            dst_ptr(out, g, t, t.row0 * ow),
            p,
            has_bias,
            w_g.as_ptr(),
            kk,
            1,
            col.as_ptr(),
            cols,
        )
    }
}

/// # Safety
/// The tile must be this task's alone.
#[allow(clippy::too_many_arguments)]
unsafe fn rowshift_tile(
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    t: Tile,
    out: SharedMut,
    col: &mut Vec<f32>,
    acc: &mut Vec<f32>,
) {
    let [kd, kh, kw] = g.k;
    let (og, cg) = (g.cout / g.groups, g.cin / g.groups);
    let ow = g.out_sp[2];
    let p: usize = g.out_sp.iter().product();
    let kk = cg * kd * kh * kw;
    let kr = cg * kd * kh; // unfolded rows: one per (c, kz, ky)
    let span = (kw - 1) * g.dil[2]; // extra source columns a row's taps reach
    let lp = ow + span; // padded row length
    // Columns computed per GEMM: every tile row but the last carries `span` junk columns.
    let n = (t.nrows - 1) * lp + ow;
    col.resize(kr * t.nrows * lp, 0.0);
    unfold_rows(group_input(x, g, t), g, t.row0, t.nrows, lp, col);
    let w_g = &w[t.gi * og * kk..][..og * kk];
    let rhs_rs = t.nrows * lp;
    // One output row: accumulate straight into the output. Several: into a scratch tile
    // (junk columns included), then copy the valid columns out.
    let (dst, dst_rs, first_acc) = if t.nrows == 1 {
        (dst_ptr(out, g, t, t.row0 * ow), p, bias.is_some())
    } else {
        acc.resize(og * n, 0.0);
        (acc.as_mut_ptr(), n, false)
    };
    for kx in 0..kw {
        // SAFETY: lhs walks w_g with row stride kk and column stride kw (the taps of one
        // kx); rhs reads columns kx·dil .. kx·dil + n of col rows, inside each row's
        // nrows·lp floats (n + span <= nrows·lp).
        unsafe {
            gemm_acc(
                og,
                n,
                kr,
                dst,
                dst_rs,
                kx > 0 || first_acc,
                w_g[kx..].as_ptr(),
                kk,
                kw,
                col[kx * g.dil[2]..].as_ptr(),
                rhs_rs,
            )
        }
    }
    if t.nrows > 1 {
        for o in 0..og {
            let b = bias.map_or(0.0, |b| b[t.gi * og + o]);
            for r in 0..t.nrows {
                let src = &acc[o * n + r * lp..][..ow];
                // SAFETY: row r of output channel o in this tile's columns.
                let dst =
                    unsafe { std::slice::from_raw_parts_mut(dst_ptr(out, g, t, (t.row0 + r) * ow).add(o * p), ow) };
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = s + b;
                }
            }
        }
    }
}

/// For [`Strategy::RowShift`]: copies, for every (c, kz, ky) and tile row, the source row
/// that row's taps read, zero-padded to `lp` columns, into `col`
/// (`(c·kd + kz)·kh + ky` rows × `nrows·lp` columns).
fn unfold_rows(x_g: &[f32], g: &Geometry, row0: usize, nrows: usize, lp: usize, col: &mut [f32]) {
    let [kd, kh, _] = g.k;
    let [id, ih, iw] = g.in_sp;
    let pw = g.pad[2];
    let in_plane = id * ih * iw;
    let cols = nrows * lp;
    // Source columns pw .. pw + iw of the padded row hold the input row (clipped).
    let (lo, hi) = (pw.min(lp), (pw + iw).min(lp));
    for c in 0..g.cin / g.groups {
        let plane = &x_g[c * in_plane..][..in_plane];
        for kz in 0..kd {
            for ky in 0..kh {
                let krow = &mut col[((c * kd + kz) * kh + ky) * cols..][..cols];
                for r in 0..nrows {
                    let dst = &mut krow[r * lp..][..lp];
                    let Some(src) = input_row(plane, g, row0 + r, kz, ky) else {
                        dst.fill(0.0);
                        continue;
                    };
                    dst[..lo].fill(0.0);
                    dst[lo..hi].copy_from_slice(&src[..hi - lo]);
                    dst[hi..].fill(0.0);
                }
            }
        }
    }
}

/// The input row (all `W` columns) that kernel tap (`kz`, `ky`) reads for output row `q` (one (z, y)
/// output line), or `None` where that tap falls in the zero padding.
fn input_row<'a>(plane: &'a [f32], g: &Geometry, q: usize, kz: usize, ky: usize) -> Option<&'a [f32]> {
    let [id, ih, iw] = g.in_sp;
    let oh = g.out_sp[1];
    let (oz, oy) = (q / oh, q % oh);
    let z = (oz * g.stride[0] + kz * g.dil[0])
        .checked_sub(g.pad[0])
        .filter(|&z| z < id)?;
    let y = (oy * g.stride[1] + ky * g.dil[1])
        .checked_sub(g.pad[1])
        .filter(|&y| y < ih)?;
    Some(&plane[(z * ih + y) * iw..][..iw])
}

/// Unfolds output rows `row0 .. row0 + nrows` (row = one (z, y) output line of `W'`
/// positions) of one image-group into `col` (`K × nrows·W'`, row-major).
fn im2col(x_g: &[f32], g: &Geometry, row0: usize, nrows: usize, col: &mut [f32]) {
    let [kd, kh, kw] = g.k;
    let [id, ih, iw] = g.in_sp;
    let ow = g.out_sp[2];
    let (sw, pw, dw) = (g.stride[2], g.pad[2], g.dil[2]);
    let cols = nrows * ow;
    let in_plane = id * ih * iw;
    let cg = g.cin / g.groups;
    for c in 0..cg {
        let plane = &x_g[c * in_plane..][..in_plane];
        for kz in 0..kd {
            for ky in 0..kh {
                for kx in 0..kw {
                    let kidx = ((c * kd + kz) * kh + ky) * kw + kx;
                    let dst_row = &mut col[kidx * cols..][..cols];
                    let x0 = (kx * dw) as isize - pw as isize;
                    for r in 0..nrows {
                        let dst = &mut dst_row[r * ow..][..ow];
                        let Some(src) = input_row(plane, g, row0 + r, kz, ky) else {
                            dst.fill(0.0);
                            continue;
                        };
                        if sw == 1 {
                            // Valid outputs: 0 <= ox + x0 < iw.
                            let lo = (-x0).clamp(0, ow as isize) as usize;
                            let hi = (iw as isize - x0).clamp(lo as isize, ow as isize) as usize;
                            dst[..lo].fill(0.0);
                            let s0 = (lo as isize + x0) as usize;
                            dst[lo..hi].copy_from_slice(&src[s0..s0 + (hi - lo)]);
                            dst[hi..].fill(0.0);
                        } else {
                            for (ox, d) in dst.iter_mut().enumerate() {
                                let xx = (ox * sw) as isize + x0;
                                *d = if xx >= 0 && xx < iw as isize {
                                    src[xx as usize]
                                } else {
                                    0.0
                                };
                            }
                        }
                    }
                }
            }
        }
    }
}
