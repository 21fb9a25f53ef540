//! What can go wrong opening a device or running a kernel; each message says what is
//! missing and how to fix it, because the user reads it after `--device X` failed.

use crate::device::DeviceKind;

/// Errors of the GPU backend.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// The Vulkan loader library (`libvulkan.so.1` / `vulkan-1.dll`) could not be loaded.
    #[error(
        "{kind}: the Vulkan loader ({library}) is not installed or cannot be loaded ({detail}). \
         Install it (Debian/Ubuntu: `apt-get install libvulkan1`; Windows: install or update the GPU driver), \
         or use --device cpu"
    )]
    VulkanLoaderMissing {
        /// The device that was asked for.
        kind: DeviceKind,
        /// The library file that was looked for.
        library: &'static str,
        /// The loader's own message.
        detail: String,
    },
    /// The backend is present but reports no device (no driver / ICD for this GPU).
    #[error("{kind}: no {backend} device found. {remedy}")]
    NoDevice {
        /// The device that was asked for.
        kind: DeviceKind,
        /// The graphics API that was searched.
        backend: &'static str,
        /// What to install or check.
        remedy: &'static str,
    },
    /// The backend does not exist on this operating system (Metal off Apple platforms).
    #[error("{kind}: {what} is not available on this platform ({os}). {remedy}")]
    NotOnPlatform {
        /// The device that was asked for.
        kind: DeviceKind,
        /// The missing API.
        what: &'static str,
        /// `std::env::consts::OS`.
        os: &'static str,
        /// What to use instead.
        remedy: &'static str,
    },
    /// The backend is not part of this build yet.
    #[error("{kind}: {what}")]
    NotInThisBuild {
        /// The device that was asked for.
        kind: DeviceKind,
        /// What is missing and what to use meanwhile.
        what: &'static str,
    },
    /// The adapter exists but refused to create a device (driver too old, limits, lost device).
    #[error("{adapter}: could not open the device: {source}. Update the GPU driver, or use --device cpu")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's error.
        source: wgpu::RequestDeviceError,
    },
    /// The device rejected a command (validation error, out of memory) or was lost.
    #[error("{adapter}: the device reported an error: {msg}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// The driver's / wgpu's message.
        msg: String,
    },
    /// Reading a result back failed (device lost, mapping refused).
    #[error("{adapter}: reading back a buffer failed: {msg}")]
    Readback {
        /// The adapter's name.
        adapter: String,
        /// What failed.
        msg: String,
    },
    /// A tensor is larger than one buffer binding of this device may be.
    #[error(
        "{op}: {bytes} bytes exceed this device's largest storage binding ({limit} bytes); run this job on a \
         device with larger buffers, or with --device cpu"
    )]
    TooLarge {
        /// The operation.
        op: &'static str,
        /// The size asked for.
        bytes: u64,
        /// The device's limit.
        limit: u64,
    },
    /// The arguments do not fit together (same conditions as `sadtalker_ops`).
    #[error("{op}: {msg}")]
    Shape {
        /// The operation, as PyTorch names it.
        op: &'static str,
        /// What is wrong, with the shapes involved.
        msg: String,
    },
    /// Tensors of two different devices were combined.
    #[error("{op}: the tensors live on different devices")]
    DeviceMismatch {
        /// The operation.
        op: &'static str,
    },
    /// The self-test kernel ran but computed a wrong result: the driver is broken.
    #[error(
        "{adapter}: self-test failed: {msg}. The driver miscompiles compute shaders; update it or use --device cpu"
    )]
    SelfTest {
        /// The adapter's name.
        adapter: String,
        /// What differed.
        msg: String,
    },
    /// A host tensor could not be converted (wrong dtype, candle error).
    #[error(transparent)]
    Host(#[from] sadtalker_ops::OpError),
    /// An error from candle itself.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result of the GPU backend.
pub type Result<T> = std::result::Result<T, GpuError>;

impl GpuError {
    /// A CPU-op error as this crate reports it: shape errors keep their kind (the same checks
    /// run for both backends), anything else is a host error.
    pub(crate) fn from_op(e: sadtalker_ops::OpError) -> GpuError {
        match e {
            sadtalker_ops::OpError::Shape { op, msg } => GpuError::Shape { op, msg },
            other => GpuError::Host(other),
        }
    }
}

pub(crate) fn shape_err<T>(op: &'static str, msg: impl Into<String>) -> Result<T> {
    Err(GpuError::Shape { op, msg: msg.into() })
}
