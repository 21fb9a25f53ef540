//! `F.interpolate(mode='nearest' | 'bilinear')`.

use sadtalker_ops::{BilinearMaps, NearestMaps, Resize};
use wgpu::util::DeviceExt;

use crate::error::{GpuError, Result, shape_err};
use crate::ops::elementwise::grid;
use crate::ops::{dispatch, u32_arg};
use crate::tensor::GpuTensor;

/// `F.interpolate(x, size|scale_factor, mode='nearest')` for `(N, C, L)`, `(N, C, H, W)` and
/// `(N, C, D, H, W)`: the pixels `sadtalker_ops::interpolate_nearest` picks (the same
/// [`NearestMaps`]), so the result is identical.
pub fn interpolate_nearest(x: &GpuTensor, resize: &Resize) -> Result<GpuTensor> {
    const OP: &str = "interpolate(nearest)";
    let xd = x.dims();
    if !(3..=5).contains(&xd.len()) {
        return shape_err(OP, format!("expected a 3-D, 4-D or 5-D input, got {xd:?}"));
    }
    let m = NearestMaps::new(&xd[2..], resize).map_err(GpuError::from_op)?;
    let mut shape = xd[..2].to_vec();
    shape.extend_from_slice(&m.out_sp);
    let dev = x.device();
    let y = GpuTensor::uninit(dev, OP, &shape)?;
    let n = u32_arg(OP, y.elem_count())?;
    if n == 0 {
        return Ok(y);
    }
    let maps: Vec<u32> = m
        .maps
        .iter()
        .flatten()
        .map(|&i| u32_arg(OP, i))
        .collect::<Result<_>>()?;
    let maps = dev.inner.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(OP),
        contents: bytemuck::cast_slice(&maps),
        usage: wgpu::BufferUsages::STORAGE,
    });
    let (groups, row) = grid(n);
    let mut params = [n, row, 0, 0, 0, 0, 0, 0];
    for a in 0..3 {
        params[2 + a] = u32_arg(OP, m.input[a])?;
        params[5 + a] = u32_arg(OP, m.output[a])?;
    }
    let pipeline = dev.pipeline(OP, include_str!("../shaders/nearest.wgsl"))?;
    dispatch(
        dev,
        OP,
        &pipeline,
        bytemuck::cast_slice(&params),
        &[&x.buffer, &maps, &y.buffer],
        groups,
    )?;
    Ok(y)
}

/// `F.interpolate(x, size|scale_factor, mode='bilinear', align_corners)` for `(N, C, H, W)`:
/// the taps and weights of `sadtalker_ops::interpolate_bilinear` (the same [`BilinearMaps`]),
/// so the values match it within the rounding of a fused multiply-add.
pub fn interpolate_bilinear(x: &GpuTensor, resize: &Resize, align_corners: bool) -> Result<GpuTensor> {
    const OP: &str = "interpolate(bilinear)";
    let xd = x.dims();
    if xd.len() != 4 || xd[2] == 0 || xd[3] == 0 {
        return shape_err(OP, format!("expected a non-empty 4-D input, got {xd:?}"));
    }
    let m = BilinearMaps::new([xd[2], xd[3]], resize, align_corners).map_err(GpuError::from_op)?;
    let dev = x.device();
    let y = GpuTensor::uninit(dev, OP, &[xd[0], xd[1], m.out_sp[0], m.out_sp[1]])?;
    let n = u32_arg(OP, y.elem_count())?;
    u32_arg(OP, x.elem_count())?;
    if n == 0 {
        return Ok(y);
    }
    let taps = m.h.iter().chain(&m.w);
    let idx: Vec<u32> = taps
        .clone()
        .flat_map(|t| [t.i0, t.i1])
        .map(|i| u32_arg(OP, i))
        .collect::<Result<_>>()?;
    let wt: Vec<f32> = taps.flat_map(|t| [t.l0, t.l1]).collect();
    let table = |label, contents: &[u8]| {
        dev.inner.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(label),
            contents,
            usage: wgpu::BufferUsages::STORAGE,
        })
    };
    let (idx, wt) = (
        table(OP, bytemuck::cast_slice(&idx)),
        table(OP, bytemuck::cast_slice(&wt)),
    );
    let (groups, row) = grid(n);
    let params = [
        n,
        row,
        u32_arg(OP, xd[2])?,
        u32_arg(OP, xd[3])?,
        u32_arg(OP, m.out_sp[0])?,
        u32_arg(OP, m.out_sp[1])?,
        0,
        0,
    ];
    let pipeline = dev.pipeline(OP, include_str!("../shaders/bilinear.wgsl"))?;
    dispatch(
        dev,
        OP,
        &pipeline,
        bytemuck::cast_slice(&params),
        &[&x.buffer, &idx, &wt, &y.buffer],
        groups,
    )?;
    Ok(y)
}
