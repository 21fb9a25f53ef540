//! Loading the official checkpoint layouts.
//!
//! - In CI: a safetensors file written here with exactly the official `audio2exp.` / `audio2pose.`
//!   tensors (names, shapes and dtypes from fixtures/official/keys.json, recipe values), loaded by
//!   [`Audio2Coeff::load`] (strict, as the reference's `load_state_dict`) and run on a golden case.
//! - With `SADTALKER_OFFICIAL_DIR` (the folder `tools/reference/make_official_checkpoints.py` and
//!   `make_legacy_audio2coeff_checkpoints.py` write, recipe weights in the official files): the
//!   full `SadTalker_V0.0.2_256.safetensors` and the legacy `.pth` pair, when present.
//!
//! In every case the output must equal, bit for bit, the run with the recipe weights built in memory.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use sadtalker_audio2coeff::*;
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_coeffs::MotionCoeff;
use sadtalker_parity::{Golden, assert_close, fixtures_dir};
use safetensors::Dtype;
use safetensors::tensor::TensorView;

const SAFETENSORS: &str = "SadTalker_V0.0.2_256.safetensors";

/// The official names, dtypes and shapes of one file in fixtures/official/keys.json.
fn official_keys(file: &str) -> BTreeMap<String, (String, Vec<usize>)> {
    let text = std::fs::read_to_string(fixtures_dir().join("official/keys.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    all[file]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, v)| {
            let dtype = v[0].as_str().unwrap().to_owned();
            let shape = v[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (name.clone(), (dtype, shape))
        })
        .collect()
}

/// Writes a safetensors file holding `keys` (renamed by `rename`), float tensors filled with the
/// recipe values of `value_name(name)`, integer ones (BatchNorm counters) with zeros.
fn write_checkpoint(
    path: &Path,
    keys: &BTreeMap<String, (String, Vec<usize>)>,
    rename: impl Fn(&str) -> String,
    value_name: impl Fn(&str) -> String,
) {
    let recipe = Recipe::default();
    let buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = keys
        .iter()
        .map(|(name, (dtype, shape))| {
            let n: usize = shape.iter().product();
            let (dt, bytes) = match dtype.as_str() {
                "float32" => (
                    Dtype::F32,
                    recipe
                        .values(&value_name(name), shape)
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                ),
                "int64" => (Dtype::I64, vec![0u8; n * 8]),
                other => panic!("{name}: unexpected dtype {other}"),
            };
            (rename(name), dt, shape.clone(), bytes)
        })
        .collect();
    let views = buffers
        .iter()
        .map(|(name, dt, shape, bytes)| (name.clone(), TensorView::new(*dt, shape.clone(), bytes).unwrap()));
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// The official Audio2Coeff tensors: the audio2exp ones named as the reference loader reads them
/// (`audio2exp.audio_encoder…`; see `official_audio2exp_names`), the audio2pose ones as listed.
fn audio2coeff_keys() -> BTreeMap<String, (String, Vec<usize>)> {
    official_keys(SAFETENSORS)
        .into_iter()
        .filter(|(name, _)| name.starts_with("audio2exp.") || name.starts_with("audio2pose."))
        .collect()
}

/// keys.json lists the audio2exp tensors as an `Audio2Exp` module names them
/// (`audio2exp.netG.audio_encoder…`). The reference loads them with
/// `netG.load_state_dict(load_x_from_safetensor(ckpt, 'audio2exp'))` (strict), which only works
/// when the file has `audio2exp.audio_encoder…`; the official file's size (464 bytes smaller than
/// one with the `netG.` names, 93 tensors × 5 bytes, 8-byte aligned) confirms that layout.
fn official_audio2exp_names(name: &str) -> String {
    name.replacen("audio2exp.netG.", "audio2exp.", 1)
}

fn recipe_network() -> Audio2Coeff {
    let w = Weights::from_recipe(Recipe::default(), &Device::Cpu);
    Audio2Coeff::from_weights(&w.pp("audio2exp"), &w.pp("audio2pose"), Audio2PoseConfig::default()).unwrap()
}

/// Runs the first golden case and returns the final coefficients.
fn run_golden(net: &Audio2Coeff) -> Vec<f32> {
    let golden = Golden::open("goldens/audio2coeff/audio2coeff.safetensors");
    let case = golden.cases().next().unwrap();
    let mels = case.tensor("mels");
    let first: Vec<f32> = case.tensor("first_frame").to_vec1().unwrap();
    let ratio: Vec<f32> = case.tensor("ratio").to_vec1().unwrap();
    let opts = Audio2CoeffOptions {
        pose_style: case.params["pose_style"].as_u64().unwrap() as u32,
        ..Default::default()
    };
    let mut noise = ReplayNoise::new(case.tensor("z").to_vec2::<f32>().unwrap());
    let input = Audio2CoeffInput {
        mels: &mels,
        first_frame: MotionCoeff::from_slice(&first).unwrap(),
        blink_ratio: &ratio,
        ref_eyeblink: None,
    };
    let out = net.generate(&input, &opts, &mut noise, &mut |_, _, _| {}).unwrap();
    let flat: Vec<f32> = out.coeffs.iter().flat_map(|c| c.0).collect();
    let frames = out.coeffs.len();
    assert_close(
        &format!("{} from a checkpoint", case.name()),
        &Tensor::from_vec(flat.clone(), (frames, 70), &Device::Cpu).unwrap(),
        &case.tensor("coeffs"),
        1e-5,
    );
    flat
}

#[test]
fn official_safetensors_layout_loads_strictly_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let keys = audio2coeff_keys();
    assert_eq!(keys.keys().filter(|k| k.starts_with("audio2exp.")).count(), 93);
    assert_eq!(keys.keys().filter(|k| k.starts_with("audio2pose.")).count(), 419);
    let expected = run_golden(&recipe_network());

    // The official layout; values are the recipe's for those same names.
    let path = dir.path().join(SAFETENSORS);
    write_checkpoint(&path, &keys, official_audio2exp_names, official_audio2exp_names);
    let files = Audio2CoeffFiles::in_dir(dir.path(), 256).unwrap();
    assert_eq!(files, Audio2CoeffFiles::Safetensors(path.clone()));
    let net = Audio2Coeff::load(&files, &Device::Cpu).unwrap();
    assert_eq!(run_golden(&net), expected, "official layout");
    drop(net);

    // keys.json verbatim (`audio2exp.netG.…`, what saving an `Audio2Exp` module gives): also accepted.
    write_checkpoint(&path, &keys, |n| n.to_owned(), official_audio2exp_names);
    let net = Audio2Coeff::load(&files, &Device::Cpu).unwrap();
    assert_eq!(run_golden(&net), expected, "netG layout");
}

#[test]
fn a_wrong_checkpoint_fails_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SAFETENSORS);
    // Missing everything but the first block: the error names the first tensor not found.
    let keys = audio2coeff_keys();
    let some: BTreeMap<_, _> = keys
        .iter()
        .filter(|(k, _)| k.contains("audio_encoder.0."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    write_checkpoint(&path, &some, official_audio2exp_names, official_audio2exp_names);
    let err = Audio2Coeff::load(&Audio2CoeffFiles::Safetensors(path.clone()), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("audio2exp.audio_encoder.1.conv_block.0.weight"), "{err}");

    // A tensor no layer takes: rejected, as PyTorch's strict load would.
    let mut extra = keys.clone();
    extra.insert("audio2exp.mapping2.weight".into(), ("float32".into(), vec![64, 30]));
    write_checkpoint(&path, &extra, official_audio2exp_names, official_audio2exp_names);
    let err = Audio2Coeff::load(&Audio2CoeffFiles::Safetensors(path), &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("audio2exp.mapping2.weight"), "{err}");

    // An empty folder: the error says what to get.
    let err = Audio2CoeffFiles::in_dir(&dir.path().join("none"), 512)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("SadTalker_V0.0.2_512.safetensors") && err.contains("sadtalker models"),
        "{err}"
    );
}

/// The folder of `SADTALKER_OFFICIAL_DIR` (these tests are `#[ignore]`d: run them with it set).
fn official_dir() -> std::path::PathBuf {
    std::env::var_os("SADTALKER_OFFICIAL_DIR")
        .map(std::path::PathBuf::from)
        .expect("set SADTALKER_OFFICIAL_DIR to the folder written by make_official_checkpoints.py")
}

/// With `SADTALKER_OFFICIAL_DIR` set: the full-size `SadTalker_V0.0.2_256.safetensors` written by
/// `make_official_checkpoints.py` (recipe weights, official key names) loads and reproduces the
/// in-memory recipe run.
#[test]
#[ignore = "needs SADTALKER_OFFICIAL_DIR from make_official_checkpoints.py DIR (about 1 GB)"]
fn official_safetensors_from_the_reference_script() {
    let dir = official_dir();
    let st = dir.join(SAFETENSORS);
    assert!(st.is_file(), "{} is missing", st.display());
    // make_official_checkpoints.py names the audio2exp tensors `audio2exp.netG.…` and fills them
    // with the recipe values of those names.
    let w = Weights::from_recipe(Recipe::default(), &Device::Cpu);
    let recipe_net = Audio2Coeff::from_weights(
        &w.pp("audio2exp").pp("netG"),
        &w.pp("audio2pose"),
        Audio2PoseConfig::default(),
    )
    .unwrap();
    let net = Audio2Coeff::load(&Audio2CoeffFiles::Safetensors(st.clone()), &Device::Cpu).unwrap();
    assert_eq!(run_official(&net), run_official(&recipe_net), "{}", st.display());
}

/// With `SADTALKER_OFFICIAL_DIR` set: the legacy `.pth` pair written by
/// `make_legacy_audio2coeff_checkpoints.py` (the reference's `{'model': state_dict, 'optimizer', 'epoch'}`
/// containers, recipe values of the official names) loads and matches the golden.
#[test]
#[ignore = "needs SADTALKER_OFFICIAL_DIR from make_legacy_audio2coeff_checkpoints.py DIR"]
fn legacy_checkpoints_from_the_reference_script() {
    let dir = official_dir();
    let (exp, pose) = (
        dir.join(audio2coeff::LEGACY_AUDIO2EXP),
        dir.join(audio2coeff::LEGACY_AUDIO2POSE),
    );
    assert!(
        exp.is_file() && pose.is_file(),
        "the legacy pair is missing in {}",
        dir.display()
    );
    let files = Audio2CoeffFiles::Legacy {
        audio2exp: exp,
        audio2pose: pose,
    };
    let net = Audio2Coeff::load(&files, &Device::Cpu).unwrap();
    assert_eq!(run_golden(&net), run_golden(&recipe_network()), "legacy .pth pair");
}

/// Like [`run_golden`] without the comparison to the golden (other weights).
fn run_official(net: &Audio2Coeff) -> Vec<f32> {
    let golden = Golden::open("goldens/audio2coeff/audio2coeff.safetensors");
    let case = golden.cases().next().unwrap();
    let mels = case.tensor("mels");
    let first: Vec<f32> = case.tensor("first_frame").to_vec1().unwrap();
    let ratio: Vec<f32> = case.tensor("ratio").to_vec1().unwrap();
    let input = Audio2CoeffInput {
        mels: &mels,
        first_frame: MotionCoeff::from_slice(&first).unwrap(),
        blink_ratio: &ratio,
        ref_eyeblink: None,
    };
    let out = net
        .generate(
            &input,
            &Audio2CoeffOptions::default(),
            &mut SeededNoise::new(5),
            &mut |_, _, _| {},
        )
        .unwrap();
    out.coeffs.iter().flat_map(|c| c.0).collect()
}
