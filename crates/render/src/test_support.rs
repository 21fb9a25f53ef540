//! Helpers of this crate's unit tests.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use candle_core::{Device, Tensor};

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
pub(crate) static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
