//! Deterministic pseudo-random weights, identical in Rust and in
//! `tools/reference/recipe.py`.
//!
//! Full-size networks cannot be checked against the reference with real weights (none
//! can be downloaded here) and are too large to commit. Instead both sides generate the
//! same weights from each tensor's name: value `i` of tensor `name` comes from
//! `splitmix64(fnv1a64(name) ^ seed + (i + 1) * 0x9E3779B97F4A7C15)`, whose top 24 bits
//! give `u` in `[0, 1)` and `s = 2u - 1` in `[-1, 1)`, both exact in `f32`. Each tensor is
//! scaled by its role so that activations stay in a sane range through deep networks:
//!
//! | tensor (last name component, rank) | value |
//! |---|---|
//! | `running_var` | `0.5 + u` |
//! | `running_mean` | `0.1 * s` |
//! | `weight`, rank 1 (norm gamma) | `1 + 0.1 * s` |
//! | `bias`, and any other rank ≤ 1 tensor | `0.1 * s` |
//! | rank ≥ 2 (conv / linear weights) | `s * f32(gain / sqrt(fan_in))`, `fan_in = prod(shape[1..])` |
//!
//! `gain` is 1 by default (weights shrink activations layer by layer); deep ReLU networks
//! keep their activations' scale with `gain = sqrt(6)` (Kaiming-uniform), which makes parity
//! tests sensitive to the input all the way through.
//!
//! Every operation is a single `f32` IEEE operation, so numpy reproduces it bit for bit.

use rayon::prelude::*;

/// The deterministic weight generator (see the module docs for the exact rule).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Recipe {
    /// Mixed into every tensor's hash; 0 unless a test wants a second, independent draw.
    pub seed: u64,
    /// Scale of rank ≥ 2 weights relative to `1 / sqrt(fan_in)`.
    pub gain: f64,
}

impl Default for Recipe {
    fn default() -> Self {
        Self { seed: 0, gain: 1.0 }
    }
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Recipe {
    /// A recipe with the given seed (gain 1).
    pub fn new(seed: u64) -> Self {
        Self { seed, gain: 1.0 }
    }

    /// The same recipe with another weight gain (see the module docs).
    pub fn with_gain(self, gain: f64) -> Self {
        Self { gain, ..self }
    }

    /// The values of tensor `name` with `shape`, row-major.
    pub fn values(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        let n: usize = shape.iter().product();
        let base = fnv1a64(name) ^ self.seed;
        let last = name.rsplit('.').next().unwrap_or(name);
        let role = Role::of(last, shape, self.gain);
        (0..n)
            .into_par_iter()
            .with_min_len(1 << 14)
            .map(|i| {
                let h = mix(base.wrapping_add((i as u64).wrapping_add(1).wrapping_mul(GOLDEN)));
                // Top 24 bits: exact in f32.
                let k = (h >> 40) as f32;
                let u = k * (1.0 / 16_777_216.0);
                let s = k * (1.0 / 8_388_608.0) - 1.0;
                role.value(u, s)
            })
            .collect()
    }
}

#[derive(Clone, Copy)]
enum Role {
    RunningVar,
    RunningMean,
    Gamma,
    Small,
    Scaled(f32),
}

impl Role {
    fn of(last: &str, shape: &[usize], gain: f64) -> Self {
        match (last, shape.len()) {
            ("running_var", _) => Role::RunningVar,
            ("running_mean", _) => Role::RunningMean,
            ("weight", 1) => Role::Gamma,
            (_, 0 | 1) => Role::Small,
            ("bias", _) => Role::Small,
            _ => {
                let fan_in: usize = shape[1..].iter().product();
                Role::Scaled((gain / (fan_in.max(1) as f64).sqrt()) as f32)
            }
        }
    }

    #[inline]
    fn value(self, u: f32, s: f32) -> f32 {
        match self {
            Role::RunningVar => 0.5 + u,
            Role::RunningMean => 0.1 * s,
            Role::Gamma => 1.0 + 0.1 * s,
            Role::Small => 0.1 * s,
            Role::Scaled(c) => s * c,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_and_scaled_by_role() {
        let r = Recipe::default();
        let w = r.values("enc.conv.weight", &[8, 4, 3, 3]);
        assert_eq!(w, r.values("enc.conv.weight", &[8, 4, 3, 3]));
        assert_ne!(w, r.values("enc.conv2.weight", &[8, 4, 3, 3]));
        let bound = 1.0 / 6.0; // 1/sqrt(4*3*3)
        assert!(w.iter().all(|v| v.abs() <= bound));
        assert!(w.iter().any(|v| v.abs() > 0.9 * bound));
        let var = r.values("bn.running_var", &[64]);
        assert!(var.iter().all(|&v| (0.5..1.5).contains(&v)));
        let gamma = r.values("bn.weight", &[64]);
        assert!(gamma.iter().all(|&v| (0.9..=1.1).contains(&v)));
        assert_ne!(r.values("x.bias", &[4]), Recipe::new(1).values("x.bias", &[4]));
    }

    #[test]
    fn hash_matches_reference_constants() {
        // Pinned values: tools/reference/recipe.py prints the same for `python recipe.py`.
        assert_eq!(fnv1a64(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(mix(GOLDEN), 0xe220_a839_7b1d_cdaf);
    }
}
