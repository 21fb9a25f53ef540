//! `sadtalker coeffs` and `sadtalker audio` as a user runs them: outputs, exit codes, messages.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sadtalker"))
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn adapt_round_trips_70_73_70() {
    let dir = tempfile::tempdir().unwrap();
    let motion = fixtures().join("coeffs/motion_scipy.mat");
    let first = fixtures().join("coeffs/first_frame_scipy.mat");
    let wide = dir.path().join("wide.mat");
    let narrow = dir.path().join("narrow.mat");
    let o = run(&[
        "coeffs",
        "adapt",
        path(&motion),
        "-o",
        path(&wide),
        "--to",
        "73",
        "--crop-from",
        path(&first),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same bytes the Python side verified with scipy.loadmat.
    assert_eq!(
        std::fs::read(&wide).unwrap(),
        std::fs::read(fixtures().join("coeffs/written_by_rust_adapted73.mat")).unwrap()
    );
    let o = run(&[
        "coeffs",
        "adapt",
        path(&wide),
        "-o",
        path(&narrow),
        "--to",
        "70",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (report["from"].as_u64(), report["to"].as_u64(), report["rows"].as_u64()),
        (Some(73), Some(70), Some(9))
    );
    // 70 → 73 → 70 gives back the scipy-written file's body (only the header text differs).
    let original = std::fs::read(&motion).unwrap();
    let back = std::fs::read(&narrow).unwrap();
    assert_eq!(back[116..], original[116..]);
}

#[test]
fn adapt_refuses_what_it_cannot_convert() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.mat");
    let motion = fixtures().join("coeffs/motion_scipy.mat");
    // 70 → 73 without crop parameters.
    let o = run(&["coeffs", "adapt", path(&motion), "-o", path(&out), "--to", "73"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("--crop-from"), "{}", stderr(&o));
    assert!(!out.exists(), "nothing is written on failure");
    // A width the adapter does not know (the Rust-written fixture has 6 × 70 — make a 71).
    let odd = dir.path().join("odd.mat");
    let mut f = sadtalker_coeffs_fixture(71);
    f.write(&odd).unwrap();
    let o = run(&["coeffs", "adapt", path(&odd), "-o", path(&out), "--to", "70"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("71 columns"), "{}", stderr(&o));
    // 257 columns without --from-full.
    let full = dir.path().join("full.mat");
    f = sadtalker_coeffs_fixture(257);
    f.write(&full).unwrap();
    let o = run(&["coeffs", "adapt", path(&full), "-o", path(&out), "--to", "70"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("--from-full"), "{}", stderr(&o));
    let o = run(&[
        "coeffs",
        "adapt",
        path(&full),
        "-o",
        path(&out),
        "--to",
        "70",
        "--from-full",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Not a .mat file; an unknown target width is a usage error.
    let o = run(&["coeffs", "show", path(&fixtures().join("audio/not_audio.wav"))]);
    assert_eq!(o.status.code(), Some(3));
    let o = run(&["coeffs", "adapt", path(&motion), "-o", path(&out), "--to", "72"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A `.mat` file with a `coeff_3dmm` of 2 rows × `width`.
fn sadtalker_coeffs_fixture(width: usize) -> sadtalker_coeffs::mat::MatFile {
    let mut f = sadtalker_coeffs::mat::MatFile::new();
    let data: Vec<f32> = (0..2 * width).map(|i| i as f32).collect();
    f.set(
        "coeff_3dmm",
        sadtalker_coeffs::mat::MatArray::from_rows_f32(2, width, &data),
    );
    f
}

#[test]
fn show_describes_the_first_frame_file() {
    let o = run(&[
        "coeffs",
        "show",
        path(&fixtures().join("coeffs/first_frame_scipy.mat")),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let vars = doc["variables"].as_array().unwrap();
    assert_eq!(vars[0]["name"], "coeff_3dmm");
    assert_eq!(vars[0]["shape"], serde_json::json!([1, 73]));
    assert_eq!(vars[0]["groups"].as_array().unwrap().len(), 4);
    assert_eq!(vars[1]["shape"], serde_json::json!([1, 257]));
    let text = run(&["coeffs", "show", path(&fixtures().join("coeffs/first_frame_scipy.mat"))]);
    assert!(String::from_utf8_lossy(&text.stdout).contains("first-frame coefficients"));
}

#[test]
fn audio_mel_writes_npy_and_refuses_bad_audio() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mel.npy");
    let o = run(&[
        "audio",
        "mel",
        path(&fixtures().join("audio/speech_22k.ogg")),
        "-o",
        path(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.starts_with(b"\x93NUMPY\x01\x00"));
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
    assert!(header.contains("'shape': (401, 80)"), "{header}");
    assert_eq!((10 + header_len) % 64, 0);
    assert_eq!(bytes.len(), 10 + header_len + 401 * 80 * 4);

    let o = run(&[
        "audio",
        "mel",
        path(&fixtures().join("audio/opus_unsupported.ogg")),
        "-o",
        path(&out),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stderr(&o).contains("Opus"), "{}", stderr(&o));
    let o = run(&[
        "audio",
        "mel",
        path(&fixtures().join("audio/silence_16k.wav")),
        "-o",
        path(&out),
    ]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("silence"), "{}", stderr(&o));
}
