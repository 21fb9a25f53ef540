//! `sadtalker extract` end to end: a checkpoint folder holding an official-format
//! `SadTalker_V0.0.2_256.safetensors` with recipe weights for the reconstruction net (the official key
//! names and shapes from fixtures/official/keys.json), given landmarks, and the reference's result on
//! the same weights (fixtures/goldens/preprocess/e2e.safetensors); plus the failure exit codes.

mod common;
use common::{fixtures, text};

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use sadtalker_checkpoint::Checkpoint;
use serde_json::Value;
use tempfile::TempDir;

/// Writes a safetensors file of recipe values for every `face_3drecon.*` float tensor of the official
/// 256 file, named and shaped as there.
fn write_recon_checkpoint(path: &Path) {
    let recon = |name: &str| name.starts_with("face_3drecon.");
    common::write_recipe_safetensors("official/keys.json", "SadTalker_V0.0.2_256.safetensors", recon, path);
}

/// The shared checkpoint folder (built once: ~95 MB) and an empty model store.
fn env() -> &'static TempDir {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = TempDir::new().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("checkpoints")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("home")).expect("mkdir");
        write_recon_checkpoint(&dir.path().join("checkpoints/SadTalker_V0.0.2_256.safetensors"));
        // The astronaut's 68 landmarks, as the golden gives them to the reference.
        let g = Checkpoint::open(fixtures().join("goldens/preprocess/e2e.safetensors")).expect("golden");
        let cases: Value = serde_json::from_str(&g.metadata()["cases"]).expect("cases");
        let lm: Vec<String> = cases[0]["lm"]
            .as_array()
            .expect("lm")
            .iter()
            .map(|p| format!("{} {}", p[0], p[1]))
            .collect();
        std::fs::write(dir.path().join("lm.txt"), lm.join("\n")).expect("write landmarks");
        dir
    })
}

fn run(args: &[&str], checkpoints: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sadtalker"))
        .arg("extract")
        .args(args)
        .arg("--checkpoint-dir")
        .arg(checkpoints)
        .env("SADTALKER_HOME", env().path().join("home"))
        .output()
        .expect("run sadtalker")
}

#[test]
fn extract_with_given_landmarks_matches_the_reference() {
    let out = TempDir::new().expect("tempdir");
    let astro = fixtures().join("preprocess/astronaut.png");
    let lm = env().path().join("lm.txt");
    // On the CPU, and on a GPU where one opens (under CI=true, lavapipe must): the reconstruction
    // net on the device, the same bars.
    let mut runs = vec![("crop", "cpu"), ("extfull", "cpu")];
    if sadtalker_gpu::context::device_for_test(sadtalker_gpu::DeviceKind::Vulkan).is_some() {
        runs.push(("crop", "vulkan"));
    }
    for (mode, device) in runs {
        let dir = out.path().join(format!("{mode}-{device}"));
        let o = run(
            &[
                "--source-image",
                astro.to_str().expect("utf-8"),
                "-o",
                dir.to_str().expect("utf-8"),
                "--landmarks",
                lm.to_str().expect("utf-8"),
                "--preprocess",
                mode,
                "--device",
                device,
                "--json",
            ],
            &env().path().join("checkpoints"),
        );
        assert!(o.status.success(), "{mode}: {}", text(&o));
        let summary: Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
        assert_eq!(summary["mode"], mode);
        assert_eq!(summary["frames"], 1);
        assert_eq!(summary["device"], device, "{summary}");
        // The .mat as the reference writes it, with the reference's values.
        let mat = sadtalker_coeffs::file::FirstFrameFile::read(dir.join("astronaut.mat")).expect("the .mat");
        let g = Checkpoint::open(fixtures().join("goldens/preprocess/e2e.safetensors")).expect("golden");
        let (reference, _) = g.read_f32(&format!("{mode}.coeff_3dmm")).expect("golden coefficients");
        let worst = mat.coeff[0]
            .0
            .iter()
            .zip(&reference)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{mode}: coeff_3dmm differs by {worst}");
        let (full, _) = g.read_f32(&format!("{mode}.full_3dmm")).expect("golden full");
        let full_ours = mat.full.expect("full_3dmm");
        let worst = full_ours
            .0
            .iter()
            .zip(&full)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "{mode}: full_3dmm differs by {worst}");
        // The picture and the crop record.
        let png = image::open(dir.join("astronaut_crop.png")).expect("picture").to_rgb8();
        assert_eq!(png.dimensions(), (256, 256));
        let record: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("astronaut_crop.json")).expect("record"))
                .expect("JSON record");
        assert_eq!(record["crop_info"][1], serde_json::json!([64, 9, 153, 97]));
        let expected_box = if mode == "extfull" {
            [64, 9, 153, 97]
        } else {
            [72, 16, 145, 89]
        };
        assert_eq!(record["paste_box"], serde_json::json!(expected_box));
        assert_eq!(record["record"]["mode"], mode);
    }
}

#[test]
fn failures_exit_with_their_codes_and_write_nothing() {
    let out = TempDir::new().expect("tempdir");
    let o_dir = out.path().join("o");
    let ck = env().path().join("checkpoints");
    let lm = env().path().join("lm.txt");
    let astro = fixtures().join("preprocess/astronaut.png");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();

    // A corrupt image: bad input (3).
    let bad = out.path().join("bad.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n garbage").expect("write");
    let o = run(
        &["--source-image", &s(&bad), "-o", &s(&o_dir), "--landmarks", &s(&lm)],
        &ck,
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("bad.png"), "{}", text(&o));
    assert!(
        !o_dir.exists() || std::fs::read_dir(&o_dir).expect("dir").next().is_none(),
        "partial output"
    );

    // Bad landmarks file: bad input (3).
    let short = out.path().join("short.txt");
    std::fs::write(&short, "1 2 3 4").expect("write");
    let o = run(
        &[
            "--source-image",
            &s(&astro),
            "-o",
            &s(&o_dir),
            "--landmarks",
            &s(&short),
        ],
        &ck,
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("136 numbers"), "{}", text(&o));

    // Detection needs the face models, which are not installed: model missing (4), named.
    let o = run(&["--source-image", &s(&astro), "-o", &s(&o_dir)], &ck);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("detection_Resnet50_Final.pth"), "{}", text(&o));

    // No reconstruction weights at all: model missing (4).
    let empty = out.path().join("empty");
    std::fs::create_dir_all(&empty).expect("mkdir");
    let o = run(
        &["--source-image", &s(&astro), "-o", &s(&o_dir), "--landmarks", &s(&lm)],
        &empty,
    );
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(text(&o).contains("SadTalker_V0.0.2_256.safetensors"), "{}", text(&o));

    // An unsupported size: usage (2).
    let o = run(&["--source-image", &s(&astro), "-o", &s(&o_dir), "--size", "300"], &ck);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        !o_dir.exists() || std::fs::read_dir(&o_dir).expect("dir").next().is_none(),
        "partial output"
    );
}

#[test]
fn extract_from_a_folder_of_frames_gives_one_row_per_frame() {
    let out = TempDir::new().expect("tempdir");
    let frames = out.path().join("clip");
    std::fs::create_dir_all(&frames).expect("mkdir");
    let astro = fixtures().join("preprocess/astronaut.png");
    for name in ["000.png", "001.png"] {
        std::fs::copy(&astro, frames.join(name)).expect("copy frame");
    }
    std::fs::write(frames.join("notes.txt"), "not a frame").expect("write");
    let dir = out.path().join("o");
    let lm = env().path().join("lm.txt");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let o = run(
        &["--video", &s(&frames), "-o", &s(&dir), "--landmarks", &s(&lm), "--json"],
        &env().path().join("checkpoints"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
    assert_eq!(summary["frames"], 2);
    let mat = sadtalker_coeffs::file::FirstFrameFile::read(dir.join("clip.mat")).expect("the .mat");
    assert_eq!(mat.coeff.len(), 2);
    assert_eq!(mat.coeff[0], mat.coeff[1], "identical frames, identical rows");
    let g = Checkpoint::open(fixtures().join("goldens/preprocess/e2e.safetensors")).expect("golden");
    let (reference, _) = g.read_f32("crop.coeff_3dmm").expect("golden coefficients");
    let worst = mat.coeff[1]
        .0
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 1e-5, "coeff_3dmm differs by {worst}");
}

#[test]
fn extract_from_an_mp4_gives_one_row_per_decoded_frame() {
    let out = TempDir::new().expect("tempdir");
    let mp4 = out.path().join("still.mp4");
    let astro = fixtures().join("preprocess/astronaut.png");
    let wav = fixtures().join("audio/tiny_16k.wav");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    // An H.264 MP4 of the portrait, made by our own writer.
    let o = Command::new(env!("CARGO_BIN_EXE_sadtalker"))
        .args([
            "video",
            "still",
            "--source-image",
            &s(&astro),
            "--driven-audio",
            &s(&wav),
            "-o",
            &s(&mp4),
        ])
        .output()
        .expect("run sadtalker video still");
    assert!(o.status.success(), "{}", text(&o));
    let dir = out.path().join("o");
    let lm = env().path().join("lm.txt");
    let o = run(
        &["--video", &s(&mp4), "-o", &s(&dir), "--landmarks", &s(&lm), "--json"],
        &env().path().join("checkpoints"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
    let frames = summary["frames"].as_u64().expect("frame count") as usize;
    assert!(frames >= 1);
    let mat = sadtalker_coeffs::file::FirstFrameFile::read(dir.join("still.mat")).expect("the .mat");
    assert_eq!(mat.coeff.len(), frames);
    // Lossy frames of the same portrait: close to the PNG's coefficients, not equal.
    let g = Checkpoint::open(fixtures().join("goldens/preprocess/e2e.safetensors")).expect("golden");
    let (reference, _) = g.read_f32("crop.coeff_3dmm").expect("golden coefficients");
    let worst = mat.coeff[0].0[..70]
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(worst < 0.05, "coeff_3dmm of the decoded frame differs by {worst}");
}
