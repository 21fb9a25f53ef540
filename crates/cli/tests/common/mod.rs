//! Shared by the CLI tests: model files in the official layouts, filled with recipe values, and output
//! helpers.

// Each test binary compiles this module and uses a part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use sadtalker_checkpoint::Recipe;
use serde_json::Value;

/// The repository's `fixtures/` folder.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

/// Owned command-line arguments.
pub fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

/// The test portrait.
pub fn astronaut() -> PathBuf {
    fixtures().join("preprocess/astronaut.png")
}

/// Its 68 landmarks (the test networks' random weights find no face).
pub fn landmarks() -> PathBuf {
    fixtures().join("pipeline/astronaut_lm.txt")
}

/// 3 video frames of speech.
pub fn speech() -> PathBuf {
    fixtures().join("pipeline/speech_3f.wav")
}

/// `batch CSV --out OUT` on the test networks (64 pixels), plus `extra`.
pub fn batch_args(csv: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = strings(&[
        "batch",
        &s(csv),
        "--out",
        &s(out),
        "--builtin-weights",
        "self-test",
        "--size",
        "64",
    ]);
    a.extend(extra.iter().map(|x| (*x).to_owned()));
    a
}

/// Writes, as a safetensors file at `path`, the float tensors of `file` in the key manifest
/// `fixtures/<manifest>` whose names pass `keep`, named and shaped as in the official file and
/// filled with recipe values.
pub fn write_recipe_safetensors(manifest: &str, file: &str, keep: impl Fn(&str) -> bool, path: &Path) {
    let keys: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(manifest)).unwrap_or_else(|e| panic!("{manifest}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{manifest} is not JSON: {e}"));
    let table = keys[file]
        .as_object()
        .unwrap_or_else(|| panic!("{manifest}: no {file}"));
    let recipe = Recipe::default();
    let mut header = serde_json::Map::new();
    let mut data: Vec<u8> = Vec::new();
    for (name, spec) in table {
        if name.starts_with("__") || spec[0] != "float32" || !keep(name) {
            continue;
        }
        let shape: Vec<usize> = spec[1]
            .as_array()
            .expect("shape")
            .iter()
            .map(|d| d.as_u64().expect("dim") as usize)
            .collect();
        let start = data.len();
        for v in recipe.values(name, &shape) {
            data.extend_from_slice(&v.to_le_bytes());
        }
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&Value::Object(header)).expect("header");
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    std::fs::write(path, out).expect("write the checkpoint");
}

/// A finished command's stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
