//! Checkpoints written by torch and the reference code (tools/reference/gen_checkpoint_fixtures.py)
//! read back by name, and damaged copies fail with errors naming the file and tensor.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};

use candle_core::Device;
use sadtalker_checkpoint::{Checkpoint, CheckpointError, Format, Recipe, Weights};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/checkpoints")
        .join(name)
}

/// A copy of a fixture cut to `keep` of its length.
fn truncated_copy(name: &str, keep: f64, dir: &Path) -> PathBuf {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, &bytes[..(bytes.len() as f64 * keep) as usize]).unwrap();
    path
}

#[test]
fn recipe_is_bit_identical_to_python() {
    for (file, recipe) in [
        ("recipe_small.safetensors", Recipe::default()),
        (
            "recipe_gain_small.safetensors",
            Recipe::default().with_gain(6f64.sqrt()),
        ),
    ] {
        let ck = Checkpoint::open(fixture(file)).unwrap();
        let tensors = ck.tensors();
        assert_eq!(tensors.len(), 7);
        for t in tensors {
            let (values, shape) = ck.read_f32(&t.name).unwrap();
            assert_eq!(values, recipe.values(&t.name, &shape), "{file}: {}", t.name);
        }
    }
}

/// The official mapping checkpoint layout, in both torch.save containers: every weight under
/// `mapping.` loads by name with the values the reference wrote.
#[test]
fn official_mapping_layout_loads_by_name() {
    for (file, format) in [
        ("mapping_small.pth.tar", Format::TorchZip),
        ("mapping_small_legacy.pth.tar", Format::TorchLegacy),
    ] {
        let ck = Checkpoint::open(fixture(file)).unwrap();
        assert_eq!(ck.format(), format, "{file}");
        let names: Vec<_> = ck.tensors().into_iter().map(|t| t.name).collect();
        // Nested dicts are flattened by dotted path, optimizer state included.
        assert!(
            names.iter().any(|n| n.starts_with("optimizer_mapping.state.")),
            "{file}: {names:?}"
        );
        let infos: Vec<_> = ck
            .tensors()
            .into_iter()
            .filter(|t| t.name.starts_with("mapping."))
            .collect();
        assert_eq!(infos.len(), 18, "{file}: MappingNet has 18 tensors");
        let w = Weights::from_file(fixture(file), &Device::Cpu).unwrap().pp("mapping");
        for t in &infos {
            let local = t.name.strip_prefix("mapping.").unwrap();
            let got = w
                .get(&t.shape, local)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert_eq!(got, Recipe::default().values(&t.name, &t.shape), "{file}: {}", t.name);
        }
        assert!(w.unused().is_empty(), "{file}: unused {:?}", w.unused());
        assert_eq!(w.get(&[45, 16], "fc_exp.weight").unwrap().dims(), &[45, 16]);
    }
}

#[test]
fn strided_shared_and_non_f32_storages_read_as_contiguous_f32() {
    let ck = Checkpoint::open(fixture("views.pth")).unwrap();
    let expected = Checkpoint::open(fixture("views_expected.safetensors")).unwrap();
    for t in expected.tensors() {
        let (want, shape) = expected.read_f32(&t.name).unwrap();
        let (got, got_shape) = ck.read_f32(&format!("net.{}", t.name)).unwrap();
        assert_eq!(got_shape, shape, "{}", t.name);
        assert_eq!(got, want, "{}", t.name);
    }
    // An integer tensor is listed but refused as weights, by name.
    let err = ck.read_f32("nbt").unwrap_err().to_string();
    assert!(err.contains("`nbt`") && err.contains("i64"), "{err}");
}

#[test]
fn truncated_files_are_reported_as_damaged_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    for (file, keep) in [
        ("mapping_small.pth.tar", 0.6),
        ("mapping_small.pth.tar", 0.999),
        ("mapping_small_legacy.pth.tar", 0.6),
        ("recipe_small.safetensors", 0.6),
        ("recipe_small.safetensors", 0.999),
    ] {
        let path = truncated_copy(file, keep, dir.path());
        // Damage may show at open or when the tensors are read; it must show somewhere.
        let err = match Checkpoint::open(&path) {
            Err(e) => e,
            Ok(ck) => ck
                .tensors()
                .iter()
                .find_map(|t| ck.read_f32(&t.name).err())
                .unwrap_or_else(|| panic!("{file} cut to {keep}: no error")),
        };
        assert!(
            matches!(err, CheckpointError::Corrupt { .. }),
            "{file} cut to {keep}: {err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(file) && msg.contains("download it again"), "{msg}");
        println!("{file} cut to {keep}: {msg}");
    }
}

#[test]
fn wrong_shape_names_the_file_and_tensor() {
    let w = Weights::from_file(fixture("mapping_small_wrongshape.pth.tar"), &Device::Cpu)
        .unwrap()
        .pp("mapping");
    let err = w.get(&[45, 16], "fc_exp.weight").unwrap_err();
    assert!(
        matches!(&err, CheckpointError::ShapeMismatch { found, .. } if found == &vec![44, 16]),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("mapping_small_wrongshape.pth.tar") && msg.contains("`mapping.fc_exp.weight`"),
        "{msg}"
    );
    assert!(msg.contains("[44, 16]") && msg.contains("[45, 16]"), "{msg}");
    println!("{msg}");
}

#[test]
fn missing_tensor_suggests_what_the_file_has() {
    let w = Weights::from_file(fixture("mapping_small.pth.tar"), &Device::Cpu).unwrap();
    // Forgot the prefix: the hint shows the near miss with it.
    let msg = w.get(&[45, 16], "fc_exp.weight").unwrap_err().to_string();
    assert!(
        msg.contains("no tensor `fc_exp.weight`") && msg.contains("mapping.fc_exp.weight"),
        "{msg}"
    );
    // Wrong prefix entirely: the hint lists the prefixes.
    let msg = w.pp("generator").get(&[1], "conv.weight").unwrap_err().to_string();
    assert!(msg.contains("mapping") && msg.contains("optimizer_mapping"), "{msg}");
}

#[test]
fn foreign_files_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().unwrap();
    for (name, content, expect) in [
        ("empty.pth", &b""[..], "empty"),
        ("page.safetensors", b"<!DOCTYPE html><html>404</html>", "HTML"),
        (
            "lfs.safetensors",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\n",
            "Git LFS pointer",
        ),
        ("noise.pth", b"\x01\x02\x03\x04hello", "unknown format"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        let err = Checkpoint::open(&path).unwrap_err();
        assert!(matches!(err, CheckpointError::NotACheckpoint { .. }), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(msg.contains(name) && msg.contains(expect), "{msg}");
    }
    let err = Checkpoint::open(dir.path().join("absent.pth")).unwrap_err();
    assert!(matches!(err, CheckpointError::Io { .. }) && err.to_string().contains("absent.pth"));
}

/// Full-size files from `tools/reference/make_official_checkpoints.py DIR`, when
/// `SADTALKER_OFFICIAL_DIR=DIR` is set (about 1 GB, so not in CI): every tensor of the
/// committed key manifest (fixtures/official/keys.json) is present with its shape, and the
/// values are the recipe's.
#[test]
#[ignore = "needs SADTALKER_OFFICIAL_DIR from make_official_checkpoints.py DIR (about 1 GB)"]
fn full_size_official_layout() {
    let dir = std::env::var_os("SADTALKER_OFFICIAL_DIR")
        .expect("set SADTALKER_OFFICIAL_DIR to the folder written by make_official_checkpoints.py");
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("../official/keys.json")).unwrap()).unwrap();
    for (file, keys) in manifest.as_object().unwrap() {
        let ck = Checkpoint::open(Path::new(&dir).join(file)).unwrap();
        let keys = keys.as_object().unwrap();
        for (i, (name, desc)) in keys.iter().enumerate() {
            let info = ck.info(name).unwrap_or_else(|| panic!("{file}: missing {name}"));
            let shape: Vec<usize> = desc[1]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(info.shape, shape, "{file}: {name}");
            if i % 50 == 0 && desc[0] == "float32" {
                assert_eq!(
                    ck.read_f32(name).unwrap().0,
                    Recipe::default().values(name, &shape),
                    "{name}"
                );
            }
        }
        println!("{file}: {} tensors match the manifest", keys.len());
    }
}

/// `zip` mistakes an archive whose first directory entry is 76 bytes (a 21-character
/// record name) for one with prepended data; the vendored pytorch-reader opens torch
/// archives at offset 0 (vendor/pytorch-reader/PATCHED.md).
#[test]
fn zip_with_a_21_character_record_name_loads() {
    let ck = Checkpoint::open(fixture("auido2exp_00300-model.pth")).unwrap();
    assert_eq!(ck.format(), Format::TorchZip);
    assert_eq!(ck.read_f32("model.w").unwrap().0, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
}
