//! `sadtalker render` runs the renderer stage of `sadtalker generate` through the same library
//! functions: on the coefficients and crop that `generate --verbose` keeps, it writes exactly the frames
//! `generate` encoded. Networks: the hidden `--builtin-weights self-test` (64-pixel renderer).

mod common;
use common::text;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn s(p: &Path) -> String {
    p.to_str().expect("utf-8 path").to_owned()
}

fn sadtalker(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sadtalker"))
        .args(args)
        .env("SADTALKER_HOME", home)
        .output()
        .expect("run sadtalker")
}

fn pngs(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .expect("frames folder")
        .map(|e| {
            let p = e.expect("entry").path();
            let img = image::open(&p).expect("png").to_rgb8();
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                img.into_raw(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn render_writes_the_frames_generate_made_from_the_same_coefficients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("home");
    let video = dir.path().join("talk.mp4");
    let gen_frames = dir.path().join("gen_frames");
    let o = sadtalker(
        &[
            "generate",
            "--builtin-weights",
            "self-test",
            "--size",
            "64",
            "--quiet",
            "--verbose",
            "--source-image",
            &s(&fixtures().join("preprocess/astronaut.png")),
            "--landmarks",
            &s(&fixtures().join("pipeline/astronaut_lm.txt")),
            "--driven-audio",
            &s(&fixtures().join("pipeline/speech_3f.wav")),
            "--frames-dir",
            &s(&gen_frames),
            "-o",
            &s(&video),
        ],
        &home,
    );
    assert!(o.status.success(), "generate: {}", text(&o));
    let kept = dir.path().join("talk");
    let first = kept.join("first_frame_dir");
    let (coeffs, first_coeff, crop) = (
        s(&kept.join("astronaut##speech_3f.mat")),
        s(&first.join("astronaut.mat")),
        s(&first.join("astronaut.png")),
    );
    let render = |size: &str, out: &Path| {
        let out = s(out);
        sadtalker(
            &[
                "render",
                "--builtin-weights",
                "self-test",
                "--size",
                size,
                "--quiet",
                "--coeffs",
                &coeffs,
                "--first-coeff",
                &first_coeff,
                "--source-image",
                &crop,
                "-o",
                &out,
            ],
            &home,
        )
    };
    let out = dir.path().join("render_frames");
    let o = render("64", &out);
    assert!(o.status.success(), "render: {}", text(&o));
    let (a, b) = (pngs(&gen_frames), pngs(&out));
    assert_eq!(
        a.len(),
        3,
        "generate wrote 3 frames: {:?}",
        a.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    assert_eq!(b.len(), a.len(), "render wrote as many frames");
    for ((_, fa), (nb, fb)) in a.iter().zip(&b) {
        assert!(fa == fb, "frame {nb}: render's pixels differ from generate's");
    }

    // A size the networks do not have is refused before any work, naming the sizes there are.
    let o = render("256", &dir.path().join("never"));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("[64]"), "{}", text(&o));
    assert!(!dir.path().join("never").exists());
}
