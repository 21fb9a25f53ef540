//! [`Param`]: a fixed tensor a network applies between its layers.

use candle_core::Tensor;
use sadtalker_gpu::{Device, GpuTensor};

use crate::on_device::OnDevice;
use crate::{Activations, Result};

/// A fixed tensor that a module applies between layers rather than inside one (`nn.Parameter`
/// used directly in `forward`: StyleGAN2's biases, for instance). Like a layer's weights, it is
/// uploaded to a GPU the first time it is used there and kept for the next calls (shared by
/// clones).
#[derive(Clone, Debug)]
pub struct Param {
    value: Tensor,
    on_device: OnDevice<GpuTensor>,
}

impl Param {
    /// The parameter `value`.
    pub fn new(value: Tensor) -> Self {
        Self {
            value,
            on_device: OnDevice::default(),
        }
    }

    /// The values on the host.
    pub fn value(&self) -> &Tensor {
        &self.value
    }

    /// The parameter where `like` is: the host tensor itself, or the GPU's copy.
    pub fn on<T: Activations>(&self, like: &T) -> Result<T> {
        T::param(like, self)
    }

    /// The copy on `dev`, uploaded on the first call there.
    pub(crate) fn on_device(&self, dev: &Device) -> Result<GpuTensor> {
        self.on_device
            .get(dev, || Ok(GpuTensor::from_tensor(dev, &self.value)?))
    }
}
