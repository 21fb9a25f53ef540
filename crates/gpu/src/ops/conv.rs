//! Convolutions with the semantics of `sadtalker_ops::conv{1,2,3}d` (`F.conv*d`): one
//! implicit-GEMM kernel (`shaders/conv.wgsl`) serves all ranks, lower ones padded to 3-D.

use sadtalker_ops::ConvParams;
pub use sadtalker_ops::conv::PaddingMode;

use crate::error::{GpuError, Result};
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
    conv_padded(x, weight, bias, p, PaddingMode::Zeros)
}

/// [`conv`] with the padding `mode`: with [`PaddingMode::Reflect`] the input is mirrored about
/// its edges inside the kernel (as `nn.ReflectionPad2d` before an unpadded convolution, without
/// the padded copy), which needs each padding smaller than its axis, as PyTorch does.
pub fn conv_padded<const N: usize>(
    x: &GpuTensor,
    weight: &GpuTensor,
    bias: Option<&GpuTensor>,
    p: ConvParams<N>,
    mode: PaddingMode,
) -> Result<GpuTensor> {
    // The shape checks and sizes of the CPU op, so that both backends accept and refuse alike.
    let op = sadtalker_ops::conv::op_name::<N>().map_err(GpuError::from_op)?;
    let mut all = vec![x, weight];
    all.extend(bias);
    let dev = same_device(op, &all)?;
    let g = sadtalker_ops::conv::geometry(op, x.dims(), weight.dims(), bias.map(GpuTensor::dims), p)
        .map_err(GpuError::from_op)?;
    if mode == PaddingMode::Reflect && (0..3).any(|a| g.pad[a] > 0 && g.pad[a] >= g.in_sp[a]) {
        return crate::error::shape_err(
            op,
            format!(
                "reflection padding {:?} must be smaller than the input {:?}",
                p.padding,
                &x.dims()[2..]
            ),
        );
    }
    let out_shape = g.output_shape::<N>();
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
        u32::from(bias.is_some()), u(g.groups)?, grid_x, u32::from(mode == PaddingMode::Reflect),
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
