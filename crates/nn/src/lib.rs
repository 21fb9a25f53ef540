//! Layers that mirror `torch.nn` modules one to one: same constructor arguments, same
//! parameter names, weights loaded by name through [`Weights`]. Network ports build from
//! these so that a reader can hold the Rust and the PyTorch module side by side, as in
//! candle's `candle-examples`.
//!
//! ```no_run
//! # use sadtalker_nn::*;
//! # fn f(w: &Weights, x: &candle_core::Tensor) -> Result<()> {
//! // self.conv = nn.Conv2d(3, 64, kernel_size=7, padding=3)
//! let conv = Conv2d::load(&w.pp("conv"), 3, 64, [7, 7], ConvParams::padding(3), true)?;
//! // self.norm = BatchNorm2d(64, affine=True)
//! let norm = BatchNorm::load(&w.pp("norm"), 64, BatchNorm::EPS)?;
//! let y = norm.forward(&conv.forward(x)?)?.relu()?;
//! # Ok(()) }
//! ```

mod activations;
mod conv;
mod linear;
mod norm;
mod on_device;
mod param;

pub use activations::Activations;
pub use conv::{Conv, Conv1d, Conv2d, Conv3d, ConvTranspose, ConvTranspose2d};
pub use linear::Linear;
pub use norm::{BatchNorm, GroupNorm, InstanceNorm};
pub use param::Param;
pub use sadtalker_checkpoint::Weights;
pub use sadtalker_ops::ConvParams;

/// Why a layer could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A weight could not be loaded (missing, wrong shape, damaged file).
    #[error(transparent)]
    Weights(#[from] sadtalker_checkpoint::CheckpointError),
    /// An operation rejected its inputs.
    #[error(transparent)]
    Op(#[from] sadtalker_ops::OpError),
    /// candle failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The GPU a layer ran on failed (device lost, out of memory, a tensor too large for it).
    /// Boxed: wgpu's errors are large, and every network's `Result` carries this type.
    #[error(transparent)]
    Gpu(Box<sadtalker_gpu::GpuError>),
}

impl From<sadtalker_gpu::GpuError> for NnError {
    fn from(e: sadtalker_gpu::GpuError) -> Self {
        NnError::Gpu(Box::new(e))
    }
}

impl NnError {
    /// Whether a model file is at fault (a weight missing, of the wrong shape or damaged), rather than
    /// the program.
    pub fn is_weights(&self) -> bool {
        matches!(self, NnError::Weights(e) if !matches!(e, sadtalker_checkpoint::CheckpointError::Candle(_)))
    }
}

/// Result of layer operations.
pub type Result<T> = std::result::Result<T, NnError>;

#[doc(hidden)]
pub mod __private {
    pub use candle_core::Error as CandleError;
    pub use sadtalker_checkpoint::CheckpointError;
    pub use sadtalker_gpu::GpuError;
    pub use sadtalker_ops::OpError;
}

/// Gives a network crate's error type (which has an `Nn(NnError)` variant) the conversions from the
/// parts of [`NnError`], so `?` works on checkpoint, op, candle and GPU results alike. Every network crate
/// carries layer failures in that one variant instead of repeating the three.
#[macro_export]
macro_rules! layer_error_conversions {
    ($error:ty) => {
        impl From<$crate::__private::CheckpointError> for $error {
            fn from(e: $crate::__private::CheckpointError) -> Self {
                Self::Nn(e.into())
            }
        }
        impl From<$crate::__private::OpError> for $error {
            fn from(e: $crate::__private::OpError) -> Self {
                Self::Nn(e.into())
            }
        }
        impl From<$crate::__private::CandleError> for $error {
            fn from(e: $crate::__private::CandleError) -> Self {
                Self::Nn(e.into())
            }
        }
        impl From<$crate::__private::GpuError> for $error {
            fn from(e: $crate::__private::GpuError) -> Self {
                Self::Nn(e.into())
            }
        }
    };
}
