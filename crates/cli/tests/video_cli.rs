//! `sadtalker video still` / `video info` end to end: files in, MP4 out, exit codes.

use std::path::Path;
use std::process::{Command, Output};

fn sadtalker(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sadtalker"))
        .args(args)
        .output()
        .expect("run sadtalker")
}

fn write_wav(path: &Path, seconds: f32, sample_rate: u32, channels: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    let n = (seconds * sample_rate as f32) as usize;
    for i in 0..n {
        let s = (0.3 * (i as f32 * 0.05).sin() * 32767.0) as i16;
        for _ in 0..channels {
            w.write_sample(s).expect("sample");
        }
    }
    w.finalize().expect("finalize");
}

fn write_png(path: &Path, w: u32, h: u32) {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 3) as u8, (y * 2) as u8, 128]));
    img.save(path).expect("png");
}

#[test]
fn still_writes_a_marked_video_as_long_as_the_audio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (img, wav, out) = (
        dir.path().join("face.png"),
        dir.path().join("speech.wav"),
        dir.path().join("out.mp4"),
    );
    write_png(&img, 101, 80); // odd width: padded to 102
    write_wav(&wav, 1.5, 44_100, 3); // three channels: downmixed to mono
    let o = sadtalker(&[
        "video",
        "still",
        "--source-image",
        img.to_str().expect("utf8"),
        "--driven-audio",
        wav.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--reason",
        "renderer failed",
        "--json",
    ]);
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(doc["frames"], 38); // 1.5 s at 25 fps, rounded up from 37.5
    assert_eq!(doc["width"], 102);
    assert_eq!(doc["comment"], "degraded: renderer failed");
    assert_eq!(doc["audio"]["channels"], 1);
    assert_eq!(doc["audio"]["sample_rate"], 44_100);
    let bytes = std::fs::read(&out).expect("output");
    assert!(bytes.windows(25).any(|w| w == b"degraded: renderer failed"));

    let o = sadtalker(&["video", "info", out.to_str().expect("utf8"), "--json"]);
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(info["frames"], 38);
    assert_eq!(info["fps"], 25.0);
    assert_eq!(info["has_audio"], true);
}

#[test]
fn audio_at_rates_aac_lacks_is_resampled_to_16k() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (img, wav, out) = (
        dir.path().join("face.png"),
        dir.path().join("speech.wav"),
        dir.path().join("out.mp4"),
    );
    write_png(&img, 64, 64);
    write_wav(&wav, 0.6, 96_000, 2);
    let o = sadtalker(&[
        "video",
        "still",
        "--source-image",
        img.to_str().expect("utf8"),
        "--driven-audio",
        wav.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
        "--json",
    ]);
    assert!(o.status.success(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(doc["audio"]["sample_rate"], 16_000);
    assert_eq!(doc["audio"]["channels"], 1);
    assert_eq!(doc["frames"], 15);
}

#[test]
fn bad_inputs_exit_3_and_leave_no_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (img, wav, out) = (
        dir.path().join("face.png"),
        dir.path().join("speech.wav"),
        dir.path().join("out.mp4"),
    );
    write_png(&img, 64, 64);
    std::fs::write(&wav, b"not a wav file at all").expect("write");
    let o = sadtalker(&[
        "video",
        "still",
        "--source-image",
        img.to_str().expect("utf8"),
        "--driven-audio",
        wav.to_str().expect("utf8"),
        "-o",
        out.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("speech.wav"), "{stderr}");
    assert!(!out.exists());

    // Output folder that does not exist.
    write_wav(&wav, 0.5, 16_000, 1);
    let missing = dir.path().join("nope/out.mp4");
    let o = sadtalker(&[
        "video",
        "still",
        "--source-image",
        img.to_str().expect("utf8"),
        "--driven-audio",
        wav.to_str().expect("utf8"),
        "-o",
        missing.to_str().expect("utf8"),
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("nope/out.mp4"));

    // A file that is not an MP4.
    let o = sadtalker(&["video", "info", img.to_str().expect("utf8")]);
    assert_eq!(o.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&o.stderr).contains("ffmpeg -i INPUT"));
}
