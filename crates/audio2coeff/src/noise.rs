//! Where the CVAE's latent draws come from.
//!
//! `Audio2Pose.test` draws `z = torch.randn(bs, latent_dim)` once per window. Behind
//! [`NoiseSource`] the draws can come from a seeded generator ([`SeededNoise`], the default:
//! the same seed gives the same video) or be replayed from a recording ([`ReplayNoise`]: parity
//! tests feed the reference's exact draws).

use std::collections::VecDeque;

use sadtalker_ops::random::SeededNormal;

use crate::error::Audio2CoeffError;

/// A source of independent standard-normal samples (`torch.randn`).
pub trait NoiseSource {
    /// The next `len` samples, in order.
    fn standard_normal(&mut self, len: usize) -> Result<Vec<f32>, Audio2CoeffError>;
}

/// Standard-normal samples from ChaCha8 seeded with a `u64`: reproducible across runs and
/// platforms (ChaCha's stream is fixed by its specification, unlike `StdRng`'s).
#[derive(Clone, Debug)]
pub struct SeededNoise {
    rng: SeededNormal,
}

impl SeededNoise {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SeededNormal::new(seed),
        }
    }
}

impl NoiseSource for SeededNoise {
    fn standard_normal(&mut self, len: usize) -> Result<Vec<f32>, Audio2CoeffError> {
        Ok(self.rng.take(len))
    }
}

/// Replays recorded draws: each request must ask for exactly the next recorded draw's length.
#[derive(Clone, Debug, Default)]
pub struct ReplayNoise {
    draws: VecDeque<Vec<f32>>,
    taken: usize,
}

impl ReplayNoise {
    /// Replays `draws` in order.
    pub fn new(draws: impl IntoIterator<Item = Vec<f32>>) -> Self {
        Self {
            draws: draws.into_iter().collect(),
            taken: 0,
        }
    }

    /// Draws not yet replayed.
    pub fn remaining(&self) -> usize {
        self.draws.len()
    }
}

impl NoiseSource for ReplayNoise {
    fn standard_normal(&mut self, len: usize) -> Result<Vec<f32>, Audio2CoeffError> {
        let draw = self.draws.pop_front().ok_or_else(|| {
            Audio2CoeffError::Noise(format!(
                "draw {} was requested but only {} were recorded",
                self.taken + 1,
                self.taken
            ))
        })?;
        if draw.len() != len {
            return Err(Audio2CoeffError::Noise(format!(
                "draw {} has {} values, {len} were requested",
                self.taken + 1,
                draw.len()
            )));
        }
        self.taken += 1;
        Ok(draw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_noise_is_reproducible_and_standard() {
        let a = SeededNoise::new(7).standard_normal(20_000).unwrap();
        assert_eq!(a, SeededNoise::new(7).standard_normal(20_000).unwrap());
        assert_ne!(a[..64], SeededNoise::new(8).standard_normal(64).unwrap()[..]);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = a.iter().map(|&v| (f64::from(v) - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean}, var {var}");
    }

    #[test]
    fn replay_checks_count_and_length() {
        let mut r = ReplayNoise::new([vec![1.0, 2.0], vec![3.0]]);
        assert_eq!(r.standard_normal(2).unwrap(), vec![1.0, 2.0]);
        assert!(
            r.standard_normal(2)
                .unwrap_err()
                .to_string()
                .contains("draw 2 has 1 values")
        );
        let mut r = ReplayNoise::new([vec![1.0]]);
        r.standard_normal(1).unwrap();
        assert!(
            r.standard_normal(1)
                .unwrap_err()
                .to_string()
                .contains("only 1 were recorded")
        );
    }
}
