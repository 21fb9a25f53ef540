//! Convolutions with the semantics of `sadtalker_ops::conv{1,2,3}d` (`F.conv*d`): one
//! implicit-GEMM kernel (`shaders/conv.wgsl`) serves all ranks, lower ones padded to 3-D.

use sadtalker_ops::ConvParams;

use crate::error::{Result, shape_err};
use crate::ops::{dispatch, same_device, u32_arg};
use crate::tensor::GpuTensor;

/// The output block one workgroup computes (`BM` × `BN` in the shader).
const TILE_ROWS: usize = 64;
const TILE_COLS: usize = 64;

/// At most this many column tiles in the grid's x dimension, below the device's limit where a
/// test lowers it: past 65535 tiles (4.2 M output columns) the fold into z otherwise needs a
/// 2100² conv, 14 s on lavapipe. Any value gives the same results, so a test may set it while
/// others run.
#[doc(hidden)]
pub static GRID_X_CAP: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(u32::MAX);

/// `F.conv1d(x, weight, bias, stride, padding, dilation, groups)`: x is `(N, C, L)`.
pub fn conv1d(x: &GpuTensor, weight: &GpuTensor, bias: Option<&GpuTensor>, p: ConvParams<1>) -> Result<GpuTensor> {
    conv(x, weight, bias, p)
}

/// `F.conv2d(x, weight, bias, stride, padding, dilation, groups)`: x is `(N, C, H, W)`.
pub fn conv2d(x: &GpuTensor, weight: &GpuTensor, bias: Option<&GpuTensor>, p: ConvParams<2>) -> Result<GpuTensor> {
    conv(x, weight, bias, p)
}

/// `F.conv3d(x, weight, bias, stride, padding, dilation, groups)`: x is `(N, C, D, H, W)`.
pub fn conv3d(x: &GpuTensor, weight: &GpuTensor, bias: Option<&GpuTensor>, p: ConvParams<3>) -> Result<GpuTensor> {
    conv(x, weight, bias, p)
}

/// The convolution with `N` (1, 2 or 3) spatial axes.
pub fn conv<const N: usize>(
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: Option<&GpuTensor>,
    p: ConvParams<N>,
) -> Result<GpuTensor> {
    let op = match N {
        1 => "conv1d",
        2 => "conv2d",
        3 => "conv3d",
        _ => return shape_err("conv", format!("{N} spatial axes: only 1, 2 and 3 are supported")),
    };
    let mut all = vec![x, weight];
    all.extend(bias);
    let dev = same_device(op, &all)?;
    let g = Geometry::new(op, x.dims(), weight.dims(), bias.map(GpuTensor::dims), &p)?;
    let mut out_shape = vec![g.n, g.cout];
    out_shape.extend_from_slice(&g.out_sp[3 - N..]);
    let y = GpuTensor::uninit(dev, op, &out_shape)?;

    let m = g.cout / g.groups;
    let cin_g = g.cin / g.groups;
    let k = cin_g * g.k.iter().product::<usize>();
    let ncols = g.n * g.out_sp.iter().product::<usize>();
    if m == 0 || ncols == 0 {
        return Ok(y);
    }
    let u = |v: usize| u32_arg(op, v);
    // Column tiles beyond one grid dimension fold into z (with the groups); see the shader.
    let col_tiles = u(ncols.div_ceil(TILE_COLS))?;
    let grid_x = col_tiles
        .min(dev.inner.device.limits().max_compute_workgroups_per_dimension)
        .min(GRID_X_CAP.load(std::sync::atomic::Ordering::Relaxed).max(1));
    let folds = col_tiles.div_ceil(grid_x) as usize;
    // Every flat index the shader forms must fit in u32.
    u(x.elem_count())?;
    u(y.elem_count())?;
    u(weight.elem_count())?;
    #[rustfmt::skip]
    let params: [u32; 28] = [
        u(cin_g)?, u(m)?, u(k)?, u(ncols)?,
        u(g.cin)?, u(g.cout)?, u(g.in_sp[0])?, u(g.in_sp[1])?,
        u(g.in_sp[2])?, u(g.k[0])?, u(g.k[1])?, u(g.k[2])?,
        u(g.stride[0])?, u(g.stride[1])?, u(g.stride[2])?, u(g.pad[0])?,
        u(g.pad[1])?, u(g.pad[2])?, u(g.dil[0])?, u(g.dil[1])?,
        u(g.dil[2])?, u(g.out_sp[0])?, u(g.out_sp[1])?, u(g.out_sp[2])?,
        u32::from(bias.is_some()), u(g.groups)?, grid_x, 0,
    ];
    let pipeline = dev.pipeline("conv", include_str!("../shaders/conv.wgsl"))?;
    let b = bias.map_or(&dev.inner.dummy, |b| &b.buffer);
    let groups = [grid_x, u(m.div_ceil(TILE_ROWS))?, u(g.groups * folds)?];
    dispatch(
        dev,
        op,
        &pipeline,
        bytemuck::cast_slice(&params),
        &[&x.buffer, &weight.buffer, b, &y.buffer],
        groups,
    )?;
    Ok(y)
}

/// Sizes of one convolution, 1-D/2-D cases padded to three spatial axes (depth, height, width).
struct Geometry {
    n: usize,
    cin: usize,
    cout: usize,
    groups: usize,
    in_sp: [usize; 3],
    k: [usize; 3],
    stride: [usize; 3],
    pad: [usize; 3],
    dil: [usize; 3],
    out_sp: [usize; 3],
}

impl Geometry {
    /// Checks input `xd`, weight `wd` and bias against `p` under the conditions
    /// `sadtalker_ops` checks, and derives the output size.
    fn new<const N: usize>(
        op: &'static str,
        xd: &[usize],
        wd: &[usize],
        bias: Option<&[usize]>,
        p: &ConvParams<N>,
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
                format!(
                    "input {xd:?} and weight {wd:?} do not fit groups={groups} (weight must be (out, in/groups, ...))"
                ),
            );
        }
        if let Some(bd) = bias
            && bd != [cout]
        {
            return shape_err(op, format!("bias {bd:?} does not match {cout} output channels"));
        }
        let pad3 = |a: [usize; N], fill: usize| {
            let mut o = [fill; 3];
            o[3 - N..].copy_from_slice(&a);
            o
        };
        let (stride, pad, dil) = (pad3(p.stride, 1), pad3(p.padding, 0), pad3(p.dilation, 1));
        let mut in_sp = [1usize; 3];
        let mut k = [1usize; 3];
        in_sp[3 - N..].copy_from_slice(&xd[2..]);
        k[3 - N..].copy_from_slice(&wd[2..]);
        let mut out_sp = [0usize; 3];
        for i in 0..3 {
            let span = dil[i] * (k[i].max(1) - 1) + 1;
            let padded = in_sp[i] + 2 * pad[i];
            if stride[i] == 0 || dil[i] == 0 || k[i] == 0 || padded < span {
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
            out_sp[i] = (padded - span) / stride[i] + 1;
        }
        Ok(Geometry {
            n,
            cin,
            cout,
            groups,
            in_sp,
            k,
            stride,
            pad,
            dil,
            out_sp,
        })
    }
}
