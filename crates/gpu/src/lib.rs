//! GPU backend of the renderer's ops: the same functions as `sadtalker_ops`, with the same
//! PyTorch semantics, on [`GpuTensor`]s in device memory.
//!
//! Kernels are WGSL compute shaders run through `wgpu`, which drives Vulkan (NVIDIA, AMD,
//! Intel on Linux and Windows; Mesa's lavapipe on the CPU), Metal (Apple) and DX12 from one
//! source, loads every driver at run time, and so builds with no GPU SDK and no GPU present.
//! See README.md for why wgpu rather than CubeCL, with the probe's figures.
//!
//! ```no_run
//! use sadtalker_gpu::{Device, DeviceKind, GpuTensor};
//! # fn main() -> sadtalker_gpu::Result<()> {
//! let dev = Device::open(DeviceKind::Auto)?;
//! let x = GpuTensor::from_slice(&dev, &[-1.0, 2.0], &[1, 2])?;
//! assert_eq!(sadtalker_gpu::relu(&x)?.to_vec()?, [0.0, 2.0]);
//! # Ok(()) }
//! ```

pub mod context;
mod device;
mod error;
pub mod ops;
mod tensor;

pub use device::{Device, DeviceInfo, DeviceKind, DeviceType, Transfers, list_devices, quiet_headless_vulkan};
pub use error::{GpuError, Result};
pub use ops::attention::{attention, softmax};
pub use ops::conv::{PaddingMode, conv, conv_padded, conv1d, conv2d, conv3d};
pub use ops::elementwise::{
    add, add_one_channel, channel_affine, greater, leaky_relu, mul, mul_one_channel, relu, scale, scale_channels,
    shift_channels, sigmoid,
};
pub use ops::interpolate::{interpolate_bilinear, interpolate_nearest};
pub use ops::layout::{cat_channels, narrow, pad2d, transpose_last2};
pub use ops::motion::{keypoint_motions, motion_mask};
pub use ops::norm::{group_norm, instance_norm, instance_norm_modulate};
pub use ops::pool::{avg_pool, max_pool2d};
pub use ops::sample::grid_sample;
pub use sadtalker_ops::{ConvParams, Resize};
pub use tensor::GpuTensor;
