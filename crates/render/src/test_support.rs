//! Helpers of this crate's unit tests.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::sync::{Mutex, MutexGuard, PoisonError};

use candle_core::{Device, Tensor};
use sadtalker_gpu::{Device as GpuDevice, DeviceKind, Transfers, context};

/// A deterministic smooth host tensor of `shape`, values `scale * sin(0.37 i) + shift`.
pub(crate) fn wave(shape: &[usize], scale: f64, shift: f64) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::arange(0f32, n as f32, &Device::Cpu)
        .and_then(|t| ((t * 0.37)?.sin()? * scale)? + shift)
        .and_then(|t| t.reshape(shape))
        .unwrap()
}

/// Held by each test that counts the shared test device's transfers, so that no other
/// test's traffic falls into its window.
static COUNTING: Mutex<()> = Mutex::new(());

/// The test GPU (lavapipe in CI; `None` skips outside CI) and the right to count its
/// transfers, held until the guard drops.
pub(crate) fn counting_gpu() -> Option<(GpuDevice, MutexGuard<'static, ()>)> {
    let dev = context::device_for_test(DeviceKind::Vulkan)?;
    Some((dev, COUNTING.lock().unwrap_or_else(PoisonError::into_inner)))
}

/// `run`'s second result and what crossed between host and `dev` during that call: the first
/// call uploads the layers' weights, the second moves only the activations.
pub(crate) fn second_run<R>(dev: &GpuDevice, run: impl Fn() -> R) -> (R, Transfers) {
    run();
    let before = dev.transfers();
    let r = run();
    (r, dev.transfers() - before)
}

/// Frames (values in [0, 1]) from the GPU within the unit tests' bar of the CPU's: the
/// convolutions' rounding (direct sums against Winograd) through a dozen recipe-weight layers
/// is ~5e-4; the renderer's device test holds frames to 45 dB of the reference.
pub(crate) fn assert_frames_close(gpu: &Tensor, cpu: &Tensor) {
    let diff = max_diff(gpu, cpu);
    assert!(
        diff <= 2e-3,
        "max difference {diff} from the CPU's frames (values in [0, 1])"
    );
}

/// The largest |a - b|.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
