//! Helpers the unit tests of this crate share: seeded inputs and error measures.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use candle_core::{Device, Tensor};

/// `n` values in [-0.5, 0.5) from a linear congruential generator: the same numbers for the
/// same seed on every machine, with no dependency on a random-number crate.
pub(crate) fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) - 0.5
        })
        .collect()
}

/// A CPU tensor of `shape` filled by [`rand_vec`].
pub(crate) fn rand(shape: &[usize], seed: u64) -> Tensor {
    Tensor::from_vec(rand_vec(shape.iter().product(), seed), shape, &Device::Cpu).unwrap()
}

/// The largest absolute value of `t`.
pub(crate) fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

/// The largest absolute difference between `a` and `b`.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}
