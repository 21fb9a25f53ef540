//! The networks load from the official files' layouts: `face_3drecon.*` (v0.0.2 safetensors) or
//! `net_recon.*` (legacy `epoch_20.pth`), RetinaFace with or without `module.`, FAN under
//! `state_dict.`; a file lacking a tensor names it.

use std::sync::Arc;

use candle_core::{Device, Tensor};
use sadtalker_checkpoint::{CheckpointError, Recipe, WeightSource, Weights};
use sadtalker_preprocess::PreprocessError;
use sadtalker_preprocess::detect::RetinaFace;
use sadtalker_preprocess::landmarks::Fan;
use sadtalker_preprocess::recon::ReconNet;

/// A checkpoint whose tensors live under `prefix.` and hold the recipe's values of `recipe_prefix.`
/// (so a net loaded from it must equal one loaded from the recipe under `recipe_prefix`).
struct Renamed {
    prefix: &'static str,
    recipe_prefix: &'static str,
}

impl WeightSource for Renamed {
    fn describe(&self) -> String {
        format!("test file with `{}.` names", self.prefix)
    }
    fn contains(&self, name: &str) -> bool {
        name.starts_with(&format!("{}.", self.prefix))
    }
    fn names(&self) -> Vec<String> {
        vec![format!("{}.marker", self.prefix)]
    }
    fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, CheckpointError> {
        let Some(rest) = name.strip_prefix(&format!("{}.", self.prefix)) else {
            return Err(CheckpointError::MissingTensor {
                path: self.describe(),
                name: name.into(),
                hint: String::new(),
            });
        };
        let full = if self.recipe_prefix.is_empty() {
            rest.to_string()
        } else {
            format!("{}.{rest}", self.recipe_prefix)
        };
        Ok(Recipe::default().values(&full, shape))
    }
}

fn weights(prefix: &'static str, recipe_prefix: &'static str) -> Weights {
    Weights::new(Arc::new(Renamed { prefix, recipe_prefix }), &Device::Cpu)
}

fn same(a: &Tensor, b: &Tensor) -> bool {
    let v = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("values");
    v(a) == v(b)
}

#[test]
fn recon_loads_from_safetensors_and_legacy_layouts() {
    let dev = Device::Cpu;
    let x = Tensor::rand(0f32, 1f32, (1, 3, 224, 224), &dev).expect("input");
    let recipe = ReconNet::load_from_checkpoint(&Weights::from_recipe(Recipe::default(), &dev)).expect("recipe");
    let legacy = ReconNet::load_from_checkpoint(&weights("net_recon", "face_3drecon")).expect("epoch_20 layout");
    assert!(same(&recipe.forward(&x).expect("f"), &legacy.forward(&x).expect("f")));
    // Neither layout: the error names the official tensor.
    let e = ReconNet::load_from_checkpoint(&weights("other", "")).expect_err("no recon tensors");
    assert!(matches!(e, PreprocessError::Nn(_)), "unexpected error {e}");
    assert!(e.to_string().contains("face_3drecon.backbone"), "{e}");
}

#[test]
fn retinaface_loads_with_or_without_module_prefix() {
    let dev = Device::Cpu;
    let x = Tensor::rand(-100f32, 100f32, (1, 3, 40, 48), &dev).expect("input");
    let plain = RetinaFace::load_from_checkpoint(&Weights::from_recipe(Recipe::default(), &dev)).expect("plain");
    let module = RetinaFace::load_from_checkpoint(&weights("module", "")).expect("module. layout");
    let (a, b) = (plain.forward(&x).expect("f"), module.forward(&x).expect("f"));
    assert_eq!(a.loc, b.loc);
    assert_eq!(a.conf, b.conf);
}

#[test]
fn fan_loads_from_the_state_dict_layout() {
    // alignment_WFLW_4HG.pth is {'state_dict': ...}: the loader scopes into it.
    Fan::load_from_checkpoint(&weights("state_dict", "state_dict")).expect("state_dict layout");
    let e = Fan::load_from_checkpoint(&weights("nothing", "")).expect_err("no FAN tensors");
    assert!(e.to_string().contains("conv1.conv.weight"), "{e}");
}
