//! Reading the enhancer's goldens, whose tensors keep their dtype (u8 images, f64 matrices), unlike the
//! f32-only files `sadtalker-parity` reads.

#![allow(dead_code, clippy::unwrap_used)] // shared by several test binaries, each using a part

pub mod generator;
pub mod realesrgan;

use std::collections::HashMap;
use std::path::PathBuf;

use image::RgbImage;
use sadtalker_enhance::cv::{Affine, GrayF64};
use safetensors::{Dtype, SafeTensors};
use serde_json::Value;

/// One tensor: its shape and raw little-endian bytes.
pub struct Raw {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub bytes: Vec<u8>,
}

/// A golden file with typed tensors and a `cases` list.
pub struct RawGolden {
    pub tensors: HashMap<String, Raw>,
    pub cases: Vec<Value>,
}

/// Held by a test for as long as it uses the shared device, so that no other test's traffic
/// falls into its transfer counts (the tests of a binary share one device and run in parallel).
static COUNTING: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn counting() -> std::sync::MutexGuard<'static, ()> {
    COUNTING.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn fixtures() -> PathBuf {
    sadtalker_parity::fixtures_dir()
}

impl RawGolden {
    pub fn open(rel: &str) -> Self {
        Self::open_path(&fixtures().join(rel))
    }

    pub fn open_path(path: &std::path::Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| {
            panic!(
                "{}: {e}\n(regenerate with tools/reference/gen_enhance_goldens.py)",
                path.display()
            )
        });
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let cases: Vec<Value> = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get("cases"))
            .map(|s| serde_json::from_str(s).unwrap())
            .unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                (
                    name,
                    Raw {
                        dtype: view.dtype(),
                        shape: view.shape().to_vec(),
                        bytes: view.data().to_vec(),
                    },
                )
            })
            .collect();
        Self { tensors, cases }
    }

    pub fn case(&self, name: &str) -> &Value {
        self.cases
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no case {name}"))
    }

    pub fn raw(&self, name: &str) -> &Raw {
        self.tensors.get(name).unwrap_or_else(|| panic!("no tensor {name}"))
    }

    pub fn u8(&self, name: &str) -> (Vec<usize>, Vec<u8>) {
        let r = self.raw(name);
        assert_eq!(r.dtype, Dtype::U8, "{name}");
        (r.shape.clone(), r.bytes.clone())
    }

    pub fn f64(&self, name: &str) -> (Vec<usize>, Vec<f64>) {
        let r = self.raw(name);
        assert_eq!(r.dtype, Dtype::F64, "{name}");
        let v = r
            .bytes
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (r.shape.clone(), v)
    }

    pub fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        let r = self.raw(name);
        assert_eq!(r.dtype, Dtype::F32, "{name}");
        let v = r
            .bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        (r.shape.clone(), v)
    }

    /// An `(H, W, 3)` u8 tensor as an image.
    pub fn image(&self, name: &str) -> RgbImage {
        let (s, v) = self.u8(name);
        assert_eq!(s.len(), 3, "{name}: {s:?}");
        RgbImage::from_raw(s[1] as u32, s[0] as u32, v).unwrap()
    }

    pub fn gray(&self, name: &str) -> GrayF64 {
        let (s, v) = self.f64(name);
        GrayF64 {
            width: s[1],
            height: s[0],
            data: v,
        }
    }

    /// `(N, 2, 3)` or `(2, 3)` f64 matrices.
    pub fn affines(&self, name: &str) -> Vec<Affine> {
        let (_, v) = self.f64(name);
        v.chunks_exact(6)
            .map(|m| [[m[0], m[1], m[2]], [m[3], m[4], m[5]]])
            .collect()
    }
}

/// How two images differ: pixels that differ, the largest difference.
pub fn image_diff(ours: &RgbImage, reference: &RgbImage) -> (usize, u8) {
    assert_eq!(ours.dimensions(), reference.dimensions(), "image sizes differ");
    let mut n = 0;
    let mut max = 0u8;
    for (a, b) in ours.as_raw().iter().zip(reference.as_raw()) {
        let d = a.abs_diff(*b);
        if d > 0 {
            n += 1;
            max = max.max(d);
        }
    }
    (n, max)
}

/// The script's injected StyleGAN noise: layer `i` is `(1, 1, r, r)`, the recipe values of `noise{i}` with
/// gain `r` (uniform in [-1, 1)).
pub struct RecipeNoise;

impl sadtalker_enhance::NoiseSource for RecipeNoise {
    fn noise(
        &mut self,
        layer: usize,
        batch: usize,
        height: usize,
        width: usize,
    ) -> sadtalker_enhance::Result<candle_core::Tensor> {
        assert_eq!(batch, 1);
        let r = 1usize << ((layer + 5) / 2);
        assert_eq!((height, width), (r, r), "noise layer {layer}");
        let v = sadtalker_checkpoint::Recipe::new(0)
            .with_gain(r as f64)
            .values(&format!("noise{layer}"), &[1, 1, r, r]);
        Ok(candle_core::Tensor::from_vec(
            v,
            (1, 1, r, r),
            &candle_core::Device::Cpu,
        )?)
    }
}
