//! Shared test helpers: the one device all tests of a binary use, and seeded random tensors.
#![allow(clippy::unwrap_used, dead_code)] // tests: a panic is the failure report; each binary uses a part

use std::io::Write;
use std::sync::OnceLock;

use candle_core::Tensor;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sadtalker_gpu::{Device, DeviceKind, GpuTensor};

/// The device under test, opened once per test binary (compiling kernels on lavapipe costs
/// tens of milliseconds each). `None` means "skip": only allowed outside CI, because a CI
/// run that silently skips could never fail. Under `CI=true` a missing device panics.
pub fn device() -> Option<&'static Device> {
    static DEV: OnceLock<Result<Device, String>> = OnceLock::new();
    let dev = DEV.get_or_init(|| {
        let d = Device::open(DeviceKind::Auto).map_err(|e| e.to_string());
        if let Err(e) = &d
            && !std::env::var("CI").is_ok_and(|v| v == "true")
        {
            // Straight to stderr, once per binary: the harness captures `eprintln!` of passing tests.
            let _ = writeln!(std::io::stderr(), "skipping the GPU tests: no device: {e}");
        }
        d
    });
    match dev {
        Ok(d) => Some(d),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true and no GPU device (not even lavapipe): {e}")
        }
        Err(_) => None,
    }
}

/// A host tensor of uniform values in [-1, 1), seeded.
pub fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, shape, &candle_core::Device::Cpu).unwrap()
}

/// Uploads a host tensor.
pub fn up(dev: &Device, t: &Tensor) -> GpuTensor {
    GpuTensor::from_tensor(dev, t).unwrap()
}

/// max |got - want| / max |want|, after checking the shapes agree.
pub fn rel_err(got: &GpuTensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims(), "shape");
    let g = got.to_vec().unwrap();
    let w = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let scale = w.iter().fold(0f32, |m, v| m.max(v.abs())).max(f32::MIN_POSITIVE);
    let diff = g.iter().zip(&w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff.is_finite(), "non-finite difference");
    diff / scale
}
