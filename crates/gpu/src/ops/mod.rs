//! Kernels, one file per op family; each checks shapes on the host, then records one dispatch.
//! Nothing here waits for the device: results stay on it until [`crate::GpuTensor::to_vec`].

pub mod attention;
pub mod conv;
pub mod elementwise;
pub mod interpolate;
pub mod layout;
pub mod motion;
pub mod norm;
pub mod pool;
pub mod sample;

use wgpu::util::DeviceExt;

use crate::device::Device;
use crate::error::{Result, shape_err};

/// Records one dispatch of `pipeline` with `params` (the uniform at binding 0) and `buffers`
/// at bindings 1, 2, ... (submitted with the next batch, see `Device::record`).
pub(crate) fn dispatch(
    dev: &Device,
    op: &'static str,
    pipeline: &wgpu::ComputePipeline,
    params: &[u8],
    buffers: &[&wgpu::Buffer],
    groups: [u32; 3],
) -> Result<()> {
    let max = dev.inner.device.limits().max_compute_workgroups_per_dimension;
    if groups.iter().any(|&g| g > max) {
        return shape_err(
            op,
            format!("{groups:?} workgroups exceed this device's {max} per dimension"),
        );
    }
    if groups.contains(&0) {
        return Ok(());
    }
    let d = &dev.inner.device;
    let uniform = d.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(op),
        contents: params,
        usage: wgpu::BufferUsages::UNIFORM,
    });
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: uniform.as_entire_binding(),
    }];
    for (i, b) in buffers.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry {
            binding: i as u32 + 1,
            resource: b.as_entire_binding(),
        });
    }
    let bind = dev.checked(|| {
        d.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(op),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        })
    })?;
    dev.record(op, |enc| {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(op),
            timestamp_writes: None,
        });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    })
}

/// Checks that all tensors live on one device and returns it.
pub(crate) fn same_device<'a>(op: &'static str, ts: &[&'a crate::GpuTensor]) -> Result<&'a Device> {
    let Some(first) = ts.first() else {
        return shape_err(op, "no tensors");
    };
    if ts.iter().any(|t| t.device() != first.device()) {
        return Err(crate::error::GpuError::DeviceMismatch { op });
    }
    Ok(first.device())
}

/// `v` as a `u32` kernel argument, or a shape error if the tensor is too large to index.
pub(crate) fn u32_arg(op: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).or_else(|_| shape_err(op, format!("size {v} exceeds the kernels' 32-bit indices")))
}
