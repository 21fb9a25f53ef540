//! Zero-copy access to the `f32` data of a CPU tensor, and creation of results.

use candle_core::{CpuStorage, DType, Device, Shape, Storage, Tensor};

use crate::{OpError, Result};

/// A CPU `f32` tensor whose storage is known to be contiguous.
pub(crate) struct Input {
    tensor: Tensor,
}

impl Input {
    /// Checks device and dtype; makes the tensor contiguous (a copy only when it is not).
    pub(crate) fn new(op: &'static str, t: &Tensor) -> Result<Self> {
        if !t.device().is_cpu() {
            return Err(OpError::Device {
                op,
                device: t.device().location(),
            });
        }
        if t.dtype() != DType::F32 {
            return Err(OpError::DType { op, dtype: t.dtype() });
        }
        let tensor = t.contiguous()?;
        // Establish the invariant `with` relies on: CPU f32 storage, contiguous layout.
        let ok = {
            let (storage, layout) = tensor.storage_and_layout();
            matches!(&*storage, Storage::Cpu(CpuStorage::F32(_))) && layout.contiguous_offsets().is_some()
        };
        if !ok {
            return Err(candle_core::Error::msg(format!("{op}: could not get contiguous CPU f32 storage")).into());
        }
        Ok(Self { tensor })
    }

    pub(crate) fn dims(&self) -> &[usize] {
        self.tensor.dims()
    }

    /// Runs `f` on the tensor's elements in row-major order.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&[f32]) -> R) -> R {
        let (storage, layout) = self.tensor.storage_and_layout();
        match (&*storage, layout.contiguous_offsets()) {
            (Storage::Cpu(CpuStorage::F32(data)), Some((start, end))) => f(&data[start..end]),
            // `new` checked both; a tensor's storage and layout never change afterwards.
            _ => unreachable!("Input holds contiguous CPU f32 storage by construction"),
        }
    }
}

/// Wraps a freshly computed buffer as a CPU tensor (no copy).
pub(crate) fn output(data: Vec<f32>, shape: impl Into<Shape>) -> Result<Tensor> {
    Ok(Tensor::from_vec(data, shape, &Device::Cpu)?)
}

/// Runs `f` on an optional input's elements.
pub(crate) fn with_opt<R>(t: Option<&Input>, f: impl FnOnce(Option<&[f32]>) -> R) -> R {
    match t {
        Some(t) => t.with(|s| f(Some(s))),
        None => f(None),
    }
}

/// A raw pointer that may be shared between rayon tasks which write disjoint parts of one
/// output buffer. Each use documents why its writes cannot overlap.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut(*mut f32);

impl SharedMut {
    pub(crate) fn new(buf: &mut [f32]) -> Self {
        Self(buf.as_mut_ptr())
    }

    /// The pointer. A method, not a field access, so closures capture the whole `Send`
    /// wrapper rather than the bare pointer.
    pub(crate) fn ptr(self) -> *mut f32 {
        self.0
    }
}
// SAFETY: only used for disjoint writes, see the call sites.
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}
