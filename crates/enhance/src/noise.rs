//! The noise GFPGAN's StyleGAN2 decoder adds in every style layer.
//!
//! The reference draws it with `torch.randn` afresh for every face (`randomize_noise=True`), so its output
//! is not reproducible; here it comes from a seeded generator, so a run is. Hand-written (SplitMix64 and
//! Box–Muller, a few lines) rather than a dependency: nothing else in the project needs random numbers.

use candle_core::{Device, Tensor};

use crate::Result;
use crate::stylegan2_clean_arch::NoiseSource;

/// Standard normal noise from a seeded SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct GaussianNoise {
    state: u64,
    spare: Option<f32>,
    device: Device,
}

impl GaussianNoise {
    /// A stream for `seed` (e.g. a hash of the run seed, the frame and the face).
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            state: seed,
            spare: None,
            device: device.clone(),
        }
    }

    /// A stream for one face: `seed`, frame `frame`, face `face`.
    pub fn for_face(seed: u64, frame: u64, face: usize, device: &Device) -> Self {
        let mut s = Self::new(seed ^ 0x005E_ED0F_FACE, device);
        let a = s.next_u64() ^ frame.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self::new(a ^ (face as u64).wrapping_mul(0xD1B5_4A32_D192_ED03), device)
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform value in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64)
    }

    /// One standard normal value (Box–Muller, both values used).
    pub fn sample(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        self.spare = Some((r * t.sin()) as f32);
        (r * t.cos()) as f32
    }
}

impl NoiseSource for GaussianNoise {
    fn noise(&mut self, _layer: usize, batch: usize, height: usize, width: usize) -> Result<Tensor> {
        let v: Vec<f32> = (0..batch * height * width).map(|_| self.sample()).collect();
        Ok(Tensor::from_vec(v, (batch, 1, height, width), &self.device)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_standard_normal_and_reproducible() {
        let mut a = GaussianNoise::new(42, &Device::Cpu);
        let v: Vec<f32> = (0..20_000).map(|_| a.sample()).collect();
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.03 && (var - 1.0).abs() < 0.05, "mean {mean}, var {var}");
        let mut b = GaussianNoise::new(42, &Device::Cpu);
        assert_eq!(b.sample(), v[0]);
        let f0 = GaussianNoise::for_face(1, 0, 0, &Device::Cpu).sample();
        assert_ne!(f0, GaussianNoise::for_face(1, 1, 0, &Device::Cpu).sample());
        assert_ne!(f0, GaussianNoise::for_face(1, 0, 1, &Device::Cpu).sample());
    }
}
