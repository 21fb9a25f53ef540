//! [`GpuTensor`]: a contiguous f32 buffer in device memory with a PyTorch-layout shape.

use crate::device::Device;
use crate::error::{GpuError, Result, shape_err};

/// A contiguous row-major `f32` tensor on a [`Device`]. Clones share the buffer; ops never
/// write into their inputs, so sharing is safe.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    pub(crate) device: Device,
    pub(crate) buffer: wgpu::Buffer,
    shape: Vec<usize>,
}

impl GpuTensor {
    /// Uploads `data` with `shape` (whose product must be `data.len()`).
    pub fn from_slice(device: &Device, data: &[f32], shape: &[usize]) -> Result<GpuTensor> {
        let op = "upload";
        if shape.iter().product::<usize>() != data.len() {
            return shape_err(op, format!("shape {shape:?} does not hold {} elements", data.len()));
        }
        let t = GpuTensor::uninit(device, op, shape)?;
        device.inner.uploads.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if !data.is_empty() {
            device
                .inner
                .queue
                .write_buffer(&t.buffer, 0, bytemuck::cast_slice(data));
        }
        Ok(t)
    }

    /// Uploads a host `f32` tensor (any layout; a strided one is made contiguous first).
    pub fn from_tensor(device: &Device, t: &candle_core::Tensor) -> Result<GpuTensor> {
        if t.dtype() != candle_core::DType::F32 {
            return Err(GpuError::Host(sadtalker_ops::OpError::DType {
                op: "upload",
                dtype: t.dtype(),
            }));
        }
        let data = t.flatten_all()?.to_vec1::<f32>()?;
        GpuTensor::from_slice(device, &data, t.dims())
    }

    /// A tensor whose contents the next kernel overwrites entirely.
    pub(crate) fn uninit(device: &Device, op: &'static str, shape: &[usize]) -> Result<GpuTensor> {
        let n: usize = shape.iter().product();
        let bytes = (n as u64) * 4;
        if bytes > device.inner.max_binding {
            return Err(GpuError::TooLarge {
                op,
                bytes,
                limit: device.inner.max_binding,
            });
        }
        // A zero-sized binding is invalid: an empty tensor still gets one element of storage.
        let buffer = device.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(op),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Ok(GpuTensor {
            device: device.clone(),
            buffer,
            shape: shape.to_vec(),
        })
    }

    /// The dimensions, PyTorch order.
    pub fn dims(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn elem_count(&self) -> usize {
        self.shape.iter().product()
    }

    /// The same data with another shape of as many elements (no copy: the layout is contiguous).
    pub fn reshape(&self, shape: &[usize]) -> Result<GpuTensor> {
        if shape.iter().product::<usize>() != self.elem_count() {
            return shape_err(
                "reshape",
                format!(
                    "shape {shape:?} does not hold the {} elements of {:?}",
                    self.elem_count(),
                    self.shape
                ),
            );
        }
        Ok(GpuTensor {
            device: self.device.clone(),
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
        })
    }

    /// The device holding the data.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Downloads the data (waits for every kernel that writes it).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        self.device
            .inner
            .downloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.elem_count();
        if n == 0 {
            return Ok(Vec::new());
        }
        let dev = &self.device;
        let bytes = (n * 4) as u64;
        let staging = dev.inner.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("download"),
            size: bytes,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        dev.record("download", |enc| {
            enc.copy_buffer_to_buffer(&self.buffer, 0, &staging, 0, bytes)
        })?;
        dev.flush()?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            // The receiver outlives the wait below; a failed send only means it gave up.
            let _ = tx.send(r);
        });
        dev.synchronize()?;
        let readback = |msg: String| GpuError::Readback {
            adapter: dev.info().name.clone(),
            msg,
        };
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(readback(e.to_string())),
            Err(_) => return Err(readback("the mapping callback never ran".into())),
        }
        let view = staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| readback(e.to_string()))?;
        // Copies instead of casting in place: the mapping need not be 4-byte aligned on every backend.
        let out = bytemuck::pod_collect_to_vec::<u8, f32>(&view);
        drop(view);
        staging.unmap();
        Ok(out)
    }

    /// Downloads into a host candle tensor of the same shape.
    pub fn to_tensor(&self) -> Result<candle_core::Tensor> {
        Ok(candle_core::Tensor::from_vec(
            self.to_vec()?,
            self.shape.clone(),
            &candle_core::Device::Cpu,
        )?)
    }
}
