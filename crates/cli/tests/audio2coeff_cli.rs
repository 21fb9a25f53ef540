//! `sadtalker audio2coeff` end to end: a checkpoint with the official Audio2Coeff tensor names
//! (recipe weights, written here), a real speech file and first-frame `.mat` in, the motion `.mat`
//! out; expression against the reference (fixtures/goldens/audio2coeff/speech.safetensors: the
//! expression does not depend on the CVAE's latents, and `--seed 3` draws the reference's blinks of
//! `random.seed(3)`), reproducibility, exit codes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sadtalker_checkpoint::Recipe;
use sadtalker_coeffs::CoeffTable;
use sadtalker_coeffs::file::COEFF_KEY;
use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn sadtalker(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sadtalker"))
        .args(args)
        .env("SADTALKER_HOME", home)
        .output()
        .expect("run sadtalker")
}

/// `SadTalker_V0.0.2_256.safetensors` holding only the Audio2Coeff tensors, under their official
/// names (fixtures/official/keys.json; audio2exp without the `netG.` level, as the reference loader
/// reads them), recipe values.
fn write_checkpoint(dir: &Path) {
    let text = std::fs::read_to_string(fixtures().join("official/keys.json")).expect("keys.json");
    let all: serde_json::Value = serde_json::from_str(&text).expect("json");
    let recipe = Recipe::default();
    let buffers: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = all["SadTalker_V0.0.2_256.safetensors"]
        .as_object()
        .expect("object")
        .iter()
        .filter(|(name, _)| name.starts_with("audio2exp.") || name.starts_with("audio2pose."))
        .map(|(name, v)| {
            let name = name.replacen("audio2exp.netG.", "audio2exp.", 1);
            let shape: Vec<usize> = v[1]
                .as_array()
                .expect("shape")
                .iter()
                .map(|d| d.as_u64().expect("dim") as usize)
                .collect();
            let n: usize = shape.iter().product();
            if v[0] == "int64" {
                (name, Dtype::I64, shape, vec![0u8; n * 8])
            } else {
                let bytes = recipe
                    .values(&name, &shape)
                    .iter()
                    .flat_map(|x| x.to_le_bytes())
                    .collect();
                (name, Dtype::F32, shape, bytes)
            }
        })
        .collect();
    let views = buffers
        .iter()
        .map(|(n, dt, shape, b)| (n.clone(), TensorView::new(*dt, shape.clone(), b).expect("view")));
    safetensors::serialize_to_file(views, None, &dir.join("SadTalker_V0.0.2_256.safetensors")).expect("write");
}

/// The reference's coefficients of golden case `case`, `(frames, 70)` row-major.
fn golden_coeffs(case: &str) -> Vec<f32> {
    let bytes = std::fs::read(fixtures().join("goldens/audio2coeff/speech.safetensors")).expect("golden");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("golden");
    let t = st.tensor(&format!("{case}.coeffs")).expect("coeffs");
    t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn writes_the_reference_expression_reproducibly_and_fails_with_the_right_codes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (ckpt, home) = (dir.path().join("checkpoints"), dir.path().join("store"));
    std::fs::create_dir_all(&ckpt).expect("mkdir");
    write_checkpoint(&ckpt);
    let audio = fixtures().join("audio/speech_16k.wav");
    let first = fixtures().join("coeffs/first_frame_scipy.mat");
    let run = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "audio2coeff",
            "--driven-audio",
            audio.to_str().expect("utf8"),
            "--first-coeff",
            first.to_str().expect("utf8"),
            "-o",
            out.to_str().expect("utf8"),
            "--checkpoint-dir",
            ckpt.to_str().expect("utf8"),
        ];
        args.extend_from_slice(extra);
        sadtalker(&home, &args)
    };

    let out = dir.path().join("a.mat");
    let o = run(&out, &["--seed", "3", "--json"]);
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(doc["frames"], 125);
    let table = CoeffTable::read(&out, COEFF_KEY).expect("read output");
    assert_eq!((table.rows, table.width), (125, 70));
    let reference = golden_coeffs("speech_seed3_style0");
    let (mut max_abs, mut scale) = (0f32, 0f32);
    for (ours, theirs) in table.data.chunks_exact(70).zip(reference.chunks_exact(70)) {
        for k in 0..64 {
            max_abs = max_abs.max((ours[k] - theirs[k]).abs());
            scale = scale.max(theirs[k].abs());
        }
    }
    assert!(
        max_abs <= 1e-5 * scale,
        "expression vs reference: max_abs {max_abs}, scale {scale}"
    );

    // Same seed, same bytes; another seed, other blinks and head motion.
    let again = dir.path().join("b.mat");
    assert!(run(&again, &["--seed", "3", "--quiet"]).status.success());
    assert_eq!(std::fs::read(&out).expect("a"), std::fs::read(&again).expect("b"));
    let other = dir.path().join("c.mat");
    assert!(
        run(&other, &["--seed", "4", "--quiet", "--pose-style", "12"])
            .status
            .success()
    );
    let other = CoeffTable::read(&other, COEFF_KEY).expect("read");
    assert!(other.data.iter().zip(&table.data).any(|(a, b)| (a - b).abs() > 1e-4));

    // Exit codes: bad input 3, model missing 4; nothing written on failure.
    let bad = dir.path().join("bad.mat");
    let o = run(&bad, &["--pose-style", "46"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = sadtalker(
        &home,
        &[
            "audio2coeff",
            "--driven-audio",
            fixtures().join("audio/not_audio.wav").to_str().expect("utf8"),
            "--first-coeff",
            first.to_str().expect("utf8"),
            "-o",
            bad.to_str().expect("utf8"),
            "--checkpoint-dir",
            ckpt.to_str().expect("utf8"),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(3),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let o = sadtalker(
        &home,
        &[
            "audio2coeff",
            "--driven-audio",
            audio.to_str().expect("utf8"),
            "--first-coeff",
            first.to_str().expect("utf8"),
            "-o",
            bad.to_str().expect("utf8"),
            "--checkpoint-dir",
            empty.to_str().expect("utf8"),
        ],
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!bad.exists());
}
