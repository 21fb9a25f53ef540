//! `sadtalker enhance` end to end: a checkpoint folder with the enhancer's three files in the official key
//! layout (names and shapes from fixtures/official/enhance_keys.json, recipe values, written as
//! safetensors), an image and a short video with audio in; plus missing weights and bad input.
//!
//! Recipe weights make RetinaFace find no face, so what this checks is the command around the networks:
//! the store lookup, loading the official layout, streaming a video with its audio, the ×2 pass-through
//! of frames without a face (counted), the JSON summary and the exit codes. The networks' parity is
//! checked in crates/enhance.

mod common;
use common::{fixtures, text};

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;
use tempfile::TempDir;

/// Writes `file`'s float tensors from the key manifest as a safetensors file of recipe values.
fn write_official_layout(file: &str, path: &Path) {
    common::write_recipe_safetensors("official/enhance_keys.json", file, |_| true, path);
}

/// The shared checkpoint folder (built once, ~540 MB: the official sizes) and an empty model store.
fn env() -> &'static TempDir {
    static DIR: OnceLock<TempDir> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = TempDir::new().expect("tempdir");
        for sub in ["checkpoints", "home", "empty"] {
            std::fs::create_dir_all(dir.path().join(sub)).expect("mkdir");
        }
        for file in ["GFPGANv1.4.pth", "parsing_parsenet.pth", "detection_Resnet50_Final.pth"] {
            write_official_layout(file, &dir.path().join("checkpoints").join(file));
        }
        dir
    })
}

fn run(args: &[&str], checkpoints: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sadtalker"))
        .arg("enhance")
        .args(args)
        .arg("--checkpoint-dir")
        .arg(checkpoints)
        .env("SADTALKER_HOME", env().path().join("home"))
        .output()
        .expect("run sadtalker")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn image_without_a_face_comes_back_upscaled() {
    let out = TempDir::new().expect("tempdir");
    let input = fixtures().join("preprocess/astronaut.png");
    let target = out.path().join("x2.png");
    let o = run(
        &["--input", s(&input), "-o", s(&target), "--json"],
        &env().path().join("checkpoints"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
    assert_eq!(summary["frames"], 1);
    assert_eq!(summary["frames_without_face"], 1);
    assert_eq!(summary["faces_restored"], 0);
    let src = image::open(&input).expect("input").to_rgb8();
    let got = image::open(&target).expect("output").to_rgb8();
    let want = sadtalker_enhance::cv::resize_lanczos4_u8c3(&src, 2 * src.width(), 2 * src.height());
    assert!(got == want, "a frame without a face is the Lanczos ×2 of the input");
    // Nothing but the output is left in the folder.
    assert_eq!(std::fs::read_dir(out.path()).expect("dir").count(), 1);
}

#[test]
fn video_is_streamed_with_its_audio() {
    let out = TempDir::new().expect("tempdir");
    let input = out.path().join("in.mp4");
    let samples: Vec<f32> = (0..16_000 * 4 / 25).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
    let mut w = sadtalker_video::Mp4Writer::create(
        &input,
        sadtalker_video::VideoSettings::default(),
        Some(sadtalker_video::Audio::mono(&samples, 16_000)),
    )
    .expect("writer");
    for k in 0..4u32 {
        let frame = image::RgbImage::from_fn(64, 48, |x, y| {
            image::Rgb([(x * 4) as u8, (y * 5) as u8, (k * 60) as u8])
        });
        w.write_image(&frame).expect("frame");
    }
    w.finish().expect("finish");

    let target = out.path().join("out.mp4");
    let o = run(
        &["--input", s(&input), "-o", s(&target), "--json"],
        &env().path().join("checkpoints"),
    );
    assert!(o.status.success(), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).expect("JSON summary");
    assert_eq!(summary["kind"], "video");
    assert_eq!(summary["frames"], 4);
    assert_eq!(summary["frames_without_face"], 4);
    assert_eq!(summary["audio"], true);
    let reader = sadtalker_video::Mp4Reader::open(&target).expect("output video");
    let info = reader.info().clone();
    assert_eq!((info.width, info.height, info.frame_count), (128, 96, 4));
    assert!(info.has_audio, "the audio track is kept");
    assert_eq!(reader.count(), 4);
}

#[test]
fn missing_weights_name_the_file_and_the_fetch_command() {
    let out = TempDir::new().expect("tempdir");
    let input = fixtures().join("preprocess/astronaut.png");
    let target = out.path().join("x2.png");
    let o = run(&["--input", s(&input), "-o", s(&target)], &env().path().join("empty"));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let msg = text(&o);
    assert!(
        msg.contains("GFPGANv1.4.pth") && msg.contains("sadtalker models fetch --for enhancer"),
        "{msg}"
    );
    assert!(!target.exists());
}

#[test]
fn bad_input_exits_3() {
    let out = TempDir::new().expect("tempdir");
    let missing = out.path().join("nope.png");
    let o = run(
        &["--input", s(&missing), "-o", s(&out.path().join("a.png"))],
        &env().path().join("empty"),
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let input = fixtures().join("preprocess/astronaut.png");
    let o = run(
        &["--input", s(&input), "-o", s(&out.path().join("a.mp4"))],
        &env().path().join("empty"),
    );
    assert_eq!(o.status.code(), Some(3), "an image in, a video out: {}", text(&o));
}
