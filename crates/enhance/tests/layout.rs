//! The loaders against the official files' layout: every tensor name and shape of GFPGANv1.4.pth
//! (`params_ema`), parsing_parsenet.pth and detection_Resnet50_Final.pth (`module.`), from the key manifest
//! `fixtures/official/enhance_keys.json`; small files in the official format (torch zip, `params_ema`
//! wrapper; plain state dict) from `tools/reference/gen_enhance_layout.py`; and the errors for missing or
//! wrong files.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use candle_core::Device;
use common::{RecipeNoise, fixtures};
use sadtalker_checkpoint::{CheckpointError, Recipe, WeightSource, Weights};
use sadtalker_enhance::{EnhancerFiles, GFPGANer, GFPGANv1Clean, GfpganConfig, ParseNet, ParseNetConfig};
use sadtalker_parity::assert_close;
use sadtalker_preprocess::detect::RetinaFace;
use serde_json::Value;

/// The tensors of one official file by name and shape; values are zeros (only the layout is checked).
struct Manifest {
    file: String,
    shapes: BTreeMap<String, Vec<usize>>,
}

impl Manifest {
    fn open(file: &str) -> Arc<Self> {
        let text = std::fs::read_to_string(fixtures().join("official/enhance_keys.json")).unwrap();
        let all: Value = serde_json::from_str(&text).unwrap();
        let shapes = all[file]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .map(|(k, v)| {
                let shape = v[1]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect();
                (k.clone(), shape)
            })
            .collect();
        Arc::new(Self {
            file: file.to_owned(),
            shapes,
        })
    }
}

impl WeightSource for Manifest {
    fn describe(&self) -> String {
        format!("{} (key manifest)", self.file)
    }

    fn contains(&self, name: &str) -> bool {
        self.shapes.contains_key(name)
    }

    fn names(&self) -> Vec<String> {
        self.shapes.keys().cloned().collect()
    }

    fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, CheckpointError> {
        let found = self.shapes.get(name).ok_or_else(|| CheckpointError::MissingTensor {
            path: self.describe(),
            name: name.to_owned(),
            hint: String::new(),
        })?;
        if found != shape {
            return Err(CheckpointError::ShapeMismatch {
                path: self.describe(),
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: found.clone(),
            });
        }
        Ok(vec![0.0; shape.iter().product()])
    }
}

#[test]
fn official_gfpgan_layout_loads_from_params_ema() {
    let w = Weights::new(Manifest::open("GFPGANv1.4.pth"), &Device::Cpu);
    GFPGANv1Clean::load_from_checkpoint(&w, &GfpganConfig::v1_4()).unwrap();
    // What GFPGANer never runs: the style MLP (input_is_latent=True), the stored noise
    // (randomize_noise=True) and the intermediate RGB heads (return_rgb=False).
    let unused = w.unused();
    let unexpected: Vec<&String> = unused
        .iter()
        .filter(|n| {
            ![
                "params_ema.stylegan_decoder.style_mlp.",
                "params_ema.stylegan_decoder.noises.",
                "params_ema.toRGB.",
            ]
            .iter()
            .any(|p| n.starts_with(p))
        })
        .collect();
    println!("GFPGANv1.4.pth: {} tensors not used by GFPGANer", unused.len());
    assert!(unexpected.is_empty(), "tensors the port ignores: {unexpected:?}");
}

#[test]
fn official_parsenet_layout_loads_every_tensor() {
    let w = Weights::new(Manifest::open("parsing_parsenet.pth"), &Device::Cpu);
    ParseNet::load_from_checkpoint(&w, &ParseNetConfig::facexlib()).unwrap();
    assert_eq!(w.unused(), Vec::<String>::new());
}

#[test]
fn official_detector_layout_loads_every_tensor() {
    let w = Weights::new(Manifest::open("detection_Resnet50_Final.pth"), &Device::Cpu);
    RetinaFace::load_from_checkpoint(&w).unwrap();
    assert_eq!(w.unused(), Vec::<String>::new());
}

fn tiny_gfpgan_config() -> GfpganConfig {
    GfpganConfig {
        out_size: 32,
        num_style_feat: 16,
        channel_multiplier: 2,
        narrow: 1.0 / 64.0,
    }
}

#[test]
fn params_ema_torch_file_loads_the_same_network() {
    let dev = Device::Cpu;
    let file = Weights::from_file(fixtures().join("enhance/gfpgan_tiny_params_ema.pth"), &dev).unwrap();
    let from_file = GFPGANv1Clean::load_from_checkpoint(&file, &tiny_gfpgan_config()).unwrap();
    let recipe = Weights::from_recipe(Recipe::new(0).with_gain(3f64.sqrt()), &dev);
    let from_recipe = GFPGANv1Clean::load(&recipe, &tiny_gfpgan_config()).unwrap();
    let x = candle_core::Tensor::rand(-1f32, 1f32, (1, 3, 32, 32), &dev).unwrap();
    let a = from_file.forward(&x, &mut RecipeNoise).unwrap();
    let b = from_recipe.forward(&x, &mut RecipeNoise).unwrap();
    let d = assert_close("tiny GFPGAN from the .pth vs recipe", &a, &b, 0.0);
    assert_eq!(d.max_abs, 0.0);
}

#[test]
fn plain_parsenet_torch_file_loads_the_same_network() {
    let dev = Device::Cpu;
    let cfg = ParseNetConfig {
        in_size: 32,
        out_size: 32,
        min_feat_size: 8,
        base_ch: 4,
        parsing_ch: 19,
        res_depth: 1,
        ch_range: [4, 8],
    };
    let file = Weights::from_file(fixtures().join("enhance/parsenet_tiny.pth"), &dev).unwrap();
    let from_file = ParseNet::load_from_checkpoint(&file, &cfg).unwrap();
    assert_eq!(file.unused(), Vec::<String>::new());
    let recipe = Weights::from_recipe(Recipe::new(0).with_gain(2f64.sqrt()), &dev);
    let from_recipe = ParseNet::load(&recipe, &cfg).unwrap();
    let x = candle_core::Tensor::rand(-1f32, 1f32, (1, 3, 32, 32), &dev).unwrap();
    let (a, _) = from_file.forward(&x).unwrap();
    let (b, _) = from_recipe.forward(&x).unwrap();
    assert_eq!(
        assert_close("tiny ParseNet from the .pth vs recipe", &a, &b, 0.0).max_abs,
        0.0
    );
}

fn files(gfpgan: PathBuf) -> EnhancerFiles {
    EnhancerFiles {
        gfpgan,
        parsenet: fixtures().join("enhance/parsenet_tiny.pth"),
        detector: fixtures().join("enhance/parsenet_tiny.pth"),
    }
}

#[test]
fn missing_model_file_is_named() {
    let missing = std::env::temp_dir().join("sadtalker-no-such-dir/GFPGANv1.4.pth");
    let err = GFPGANer::load(&files(missing), &Device::Cpu, 0)
        .unwrap_err()
        .to_string();
    println!("{err}");
    assert!(
        err.contains("GFPGANv1.4.pth") && err.contains("models fetch --for enhancer"),
        "{err}"
    );
}

#[test]
fn wrong_model_file_is_named() {
    // A ParseNet file given as GFPGAN: the error names the file and the tensor it lacks.
    let wrong = fixtures().join("enhance/parsenet_tiny.pth");
    let err = GFPGANer::load(&files(wrong), &Device::Cpu, 0).unwrap_err().to_string();
    println!("{err}");
    assert!(
        err.contains("GFPGAN") && err.contains("parsenet_tiny.pth") && err.contains("has no tensor"),
        "{err}"
    );
}

#[test]
fn official_restoreformer_layout_loads_every_tensor() {
    // RestoreFormer() as GFPGANer builds it for arch='RestoreFormer', under `params_ema.`: 405 tensors
    // whose f32 payload is 290,720,012 bytes against the official file's 290,785,322 (the rest is the
    // pickle/zip overhead), so the key set is complete.
    let w = Weights::new(Manifest::open("RestoreFormer.pth"), &Device::Cpu);
    sadtalker_enhance::RestoreFormer::load_from_checkpoint(&w, &sadtalker_enhance::RestoreFormerConfig::official())
        .unwrap();
    assert_eq!(w.unused(), Vec::<String>::new());
}

#[test]
fn official_realesrgan_x2plus_layout_loads_every_tensor() {
    // RRDBNet(3, 3, num_feat=64, num_block=23, num_grow_ch=32, scale=2) under `params_ema.` (RealESRGANer
    // takes `params_ema`, else `params`): 702 tensors, payload 0.37 % under the published file size.
    let w = Weights::new(Manifest::open("RealESRGAN_x2plus.pth"), &Device::Cpu);
    sadtalker_enhance::RRDBNet::load_from_checkpoint(&w, &sadtalker_enhance::RrdbConfig::x2plus()).unwrap();
    assert_eq!(w.unused(), Vec::<String>::new());
}
