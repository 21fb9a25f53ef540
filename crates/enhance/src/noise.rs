//! The noise GFPGAN's StyleGAN2 decoder adds in every style layer.
//!
//! The reference draws it with `torch.randn` afresh for every face (`randomize_noise=True`), so its output
//! is not reproducible; here it comes from the project's seeded generator
//! ([`sadtalker_ops::random::SeededNormal`]), a stream per (seed, frame, face), so a run is.

use candle_core::{Device, Tensor};
use sadtalker_ops::random::SeededNormal;

use crate::Result;
use crate::stylegan2_clean_arch::NoiseSource;

/// Standard normal noise for one face.
#[derive(Clone, Debug)]
pub struct GaussianNoise {
    normal: SeededNormal,
    device: Device,
}

impl GaussianNoise {
    /// A stream for `seed`.
    pub fn new(seed: u64, device: &Device) -> Self {
        Self {
            normal: SeededNormal::new(seed),
            device: device.clone(),
        }
    }

    /// A stream for one face: `seed`, frame `frame`, face `face`.
    pub fn for_face(seed: u64, frame: u64, face: usize, device: &Device) -> Self {
        Self {
            normal: SeededNormal::derived(seed, &[frame, face as u64]),
            device: device.clone(),
        }
    }

    /// One standard normal value.
    pub fn sample(&mut self) -> f32 {
        self.normal.sample()
    }
}

impl NoiseSource for GaussianNoise {
    fn noise(&mut self, _layer: usize, batch: usize, height: usize, width: usize) -> Result<Tensor> {
        let v = self.normal.take(batch * height * width);
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
