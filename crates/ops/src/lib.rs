//! Tensor operations with exact PyTorch semantics, on [`candle_core::Tensor`].
//!
//! candle supplies the tensor type, element-wise arithmetic, broadcasting, matmul and
//! indexing. What SadTalker's networks need beyond that (conv3d, 3-D `grid_sample`, 3-D
//! nearest upsampling, `AvgPool3d`, instance norm) candle lacks, and its CPU conv2d runs at
//! about a quarter of PyTorch's speed here, so the hot operations live in this crate behind
//! plain functions. Each function mirrors one `torch.nn.functional` call, argument for
//! argument, so that a network port reads like its Python original, and a faster kernel
//! (or a CUDA one) can replace an implementation without touching the networks.
//!
//! All functions take and return `f32` tensors in PyTorch's `N, C, (D,) H, W` layout.
//! Inputs need not be contiguous (a non-contiguous input is copied once). The kernels run
//! on the CPU with rayon; other devices get [`OpError::Device`].

mod access;
pub mod activation;
pub mod attention;
pub mod conv;
mod conv_amx;
mod conv_direct;
pub mod conv_transpose;
pub mod conv_weight;
pub mod grid_sample;
pub mod interpolate;
pub mod isa;
pub mod memory;
pub mod motion;
pub mod norm;
pub mod pad;
pub mod pool;
pub mod precision;
pub mod profile;
pub mod random;
mod scratch;
#[cfg(test)]
mod test_util;
mod winograd;

pub use activation::{leaky_relu, sigmoid, softmax_last_dim};
pub use attention::attention;
pub use conv::{ConvCache, ConvParams, ConvPath, PaddingMode, conv, conv_cached, conv1d, conv2d, conv3d};
pub use conv_transpose::conv_transpose;
pub use conv_weight::ConvWeight;
pub use grid_sample::grid_sample;
pub use interpolate::{BilinearMaps, NearestMaps, Resize, interpolate_bilinear, interpolate_nearest};
pub use motion::{KeypointPair, keypoint_motions, motion_mask};
pub use norm::{BatchNormStats, batch_norm, group_norm, instance_norm, instance_norm_modulate};
pub use pad::reflection_pad2d;
pub use pool::{adaptive_avg_pool, avg_pool2d, avg_pool3d, max_pool2d};
pub use precision::Precision;

/// What went wrong in an operation.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The arguments do not fit together (rank, channel count, grid shape, ...).
    #[error("{op}: {msg}")]
    Shape {
        /// The operation, as PyTorch names it (`conv2d`, `grid_sample`, ...).
        op: &'static str,
        /// What is wrong, with the shapes involved.
        msg: String,
    },
    /// The tensor is not `f32`.
    #[error("{op}: expected an f32 tensor, got {dtype:?}")]
    DType {
        /// The operation.
        op: &'static str,
        /// The element type received.
        dtype: candle_core::DType,
    },
    /// The tensor lives on a device this operation has no kernel for yet.
    #[error("{op}: no kernel for device {device:?} yet (only the CPU is supported)")]
    Device {
        /// The operation.
        op: &'static str,
        /// The device the tensor is on.
        device: candle_core::DeviceLocation,
    },
    /// An error from candle itself.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result of an operation.
pub type Result<T> = std::result::Result<T, OpError>;

pub(crate) fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(OpError::Shape { op, msg: msg.into() })
}
