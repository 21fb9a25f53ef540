//! `sadtalker generate`, `batch` and `doctor` end to end through the binary.
//!
//! Networks: the hidden test option `--builtin-weights self-test` (the doctor's self-test networks:
//! deterministic recipe weights, a reduced 64-pixel face renderer) so that every stage runs in about a
//! second per clip; frame-level parity with the reference is tested in crates/pipeline/tests. Inputs: the
//! astronaut with its 68 landmarks (random weights find no face), and 3 video frames of speech.

mod common;
use common::{astronaut, batch_args, landmarks, s, speech, strings as args, text};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

fn sadtalker(args: &[String], home: &Path) -> Output {
    sadtalker_env(args, home, &[])
}

fn sadtalker_env(args: &[String], home: &Path, env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sadtalker"))
        .args(args)
        .env("SADTALKER_HOME", home)
        .env_remove("SADTALKER_MIRROR")
        .envs(env.iter().copied())
        .output()
        .expect("run sadtalker")
}

/// `generate` with the test networks, the astronaut and 3 frames of speech, plus `extra`.
fn generate(dir: &Path, extra: &[&str]) -> Output {
    generate_env(dir, extra, &[])
}

/// [`generate`] with environment variables.
fn generate_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    generate_portrait(dir, &astronaut(), extra, env)
}

/// [`generate_env`] with another portrait.
fn generate_portrait(dir: &Path, portrait: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut a = args(&[
        "generate",
        "--builtin-weights",
        "self-test",
        "--size",
        "64",
        "--source-image",
        &s(portrait),
        "--driven-audio",
        &s(&speech()),
    ]);
    a.extend(extra.iter().map(|x| (*x).to_owned()));
    sadtalker_env(&a, &dir.join("home"), env)
}

#[test]
fn generate_writes_the_video_and_a_json_report() {
    let dir = TempDir::new().expect("tempdir");
    let out = dir.path().join("talk.mp4");
    let o = generate(
        dir.path(),
        &[
            "--landmarks",
            &s(&landmarks()),
            "-o",
            &s(&out),
            "--preprocess",
            "full",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    // Never silent about the test weights.
    assert!(String::from_utf8_lossy(&o.stderr).contains("built-in deterministic test weights"));
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(r["output"], s(&out));
    assert_eq!(r["frames"], 3);
    assert_eq!(r["fps"], 25);
    assert_eq!(r["ok"], true);
    assert_eq!(r["degraded"], false);
    assert!(r["degraded_reason"].is_null());
    // full: pasted back into the 256-pixel portrait.
    assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(256), Some(256)));
    for stage in [
        "inputs",
        "models",
        "preprocess",
        "audio",
        "audio2coeff",
        "render",
        "paste_back",
        "encode",
        "total",
    ] {
        assert!(r["seconds"][stage].as_f64().is_some(), "no time for {stage}: {r}");
    }
    // Built-in weights are never passed off as the real thing, in the JSON too.
    let warnings = r["warnings"].as_array().expect("warnings");
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().is_some_and(|w| w.contains("test weights"))),
        "no built-in weights warning in {warnings:?}"
    );
    let video = sadtalker_video::read_video(&out).expect("the MP4 decodes");
    assert_eq!(video.frames.len(), 3);
    assert_eq!(video.frames[0].dimensions(), (256, 256));
}

#[test]
fn enhancer_gfpgan_runs_per_frame_and_doubles_the_size() {
    let dir = TempDir::new().expect("tempdir");
    let out = dir.path().join("enhanced.mp4");
    let o = generate(
        dir.path(),
        &[
            "--landmarks",
            &s(&landmarks()),
            "-o",
            &s(&out),
            "--enhancer",
            "gfpgan",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    // crop at 64 → GFPGANer's ×2 upscale (the test weights find no face to restore: upscale only).
    assert_eq!((r["width"].as_u64(), r["height"].as_u64()), (Some(128), Some(128)));
    assert!(r["seconds"]["enhance"].as_f64().is_some(), "{r}");
    let video = sadtalker_video::read_video(&out).expect("decodes");
    assert_eq!(video.frames.len(), 3);
    assert_eq!(video.frames[0].dimensions(), (128, 128));
}

#[test]
fn the_references_underscore_options_work_and_name_by_time() {
    let dir = TempDir::new().expect("tempdir");
    let results = dir.path().join("results");
    let a = args(&[
        "generate",
        "--builtin-weights",
        "self-test",
        "--size",
        "64",
        "--source_image",
        &s(&astronaut()),
        "--driven_audio",
        &s(&speech()),
        "--result_dir",
        &s(&results),
        "--pose_style",
        "3",
        "--expression_scale",
        "1.5",
        "--batch_size",
        "1",
        "--input_yaw",
        "-10",
        "10",
        "--landmarks",
        &s(&landmarks()),
        "--cpu",
    ]);
    let o = sadtalker(&a, &dir.path().join("home"));
    assert!(o.status.success(), "{}", text(&o));
    let names: Vec<String> = std::fs::read_dir(&results)
        .expect("result dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    // YYYY_MM_DD_HH.MM.SS.mp4, as inference.py names it.
    let n = &names[0];
    assert!(n.ends_with(".mp4") && n.len() == "2024_01_01_00.00.00.mp4".len(), "{n}");
    assert_eq!(&n[4..5], "_");
    assert_eq!(&n[13..14], ".");
}

#[test]
fn fallback_still_writes_a_flagged_video_and_exits_degraded() {
    let dir = TempDir::new().expect("tempdir");
    let out = dir.path().join("still.mp4");
    // No landmarks: face detection with deterministic random weights finds no face.
    let o = generate(dir.path(), &["-o", &s(&out), "--fallback", "still", "--json"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("degraded") && err.contains("preprocess"), "{err}");
    assert!(err.contains("--preprocess full"), "no hint: {err}");
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(r["degraded"], true);
    assert_eq!(r["ok"], false);
    assert_eq!(r["degraded_reason"]["stage"], "preprocess");
    assert_eq!(r["degraded_reason"]["code"], "no_face");
    // The still video: the portrait for the whole speech.
    let video = sadtalker_video::read_video(&out).expect("the still MP4 decodes");
    assert_eq!(video.frames.len() as u64, r["frames"].as_u64().expect("frames"));
    assert_eq!(video.frames[0].dimensions(), (256, 256));

    // Without the fallback the same job fails as bad input, and writes nothing.
    let out2 = dir.path().join("none.mp4");
    let o = generate(dir.path(), &["-o", &s(&out2), "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("face"), "{}", text(&o));
    assert!(!out2.exists());
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(r["ok"], false);
    assert_eq!(r["error"]["stage"], "preprocess");
    assert_eq!(r["error"]["code"], "no_face");
    assert_eq!(r["error"]["kind"], "bad_input");
}

#[test]
fn bad_inputs_and_options_exit_with_their_codes() {
    let dir = TempDir::new().expect("tempdir");
    let out = dir.path().join("x.mp4");
    let bad_img = dir.path().join("bad.png");
    std::fs::write(&bad_img, b"\x89PNG\r\n\x1a\n not a png").expect("write");
    let bad_wav = dir.path().join("bad.wav");
    std::fs::write(&bad_wav, b"RIFF nonsense").expect("write");
    let lm = s(&landmarks());
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (args(&["--source-image", &s(&bad_img)]), 3, "bad.png"),
        (args(&["--driven-audio", &s(&bad_wav)]), 3, "bad.wav"),
        (
            args(&["--driven-audio", &s(&dir.path().join("gone.wav"))]),
            3,
            "gone.wav",
        ),
        (args(&["--pose-style", "46"]), 3, "pose"),
        (args(&["--size", "100"]), 3, "--size"),
        (args(&["--device", "cuda"]), 3, "cuda"),
        (args(&["--enhancer", "codeformer"]), 3, "gfpgan"),
        (args(&["--background-enhancer", "realesrgan"]), 3, "add --enhancer"),
        (
            args(&["--enhancer", "gfpgan", "--background-enhancer", "esrgan"]),
            3,
            "realesrgan",
        ),
        (args(&["--preprocess", "sideways"]), 2, "sideways"),
    ];
    for (extra, code, needle) in cases {
        let mut base: Vec<(String, String)> = [
            ("--builtin-weights", "self-test".to_owned()),
            ("--size", "64".to_owned()),
            ("--source-image", s(&astronaut())),
            ("--driven-audio", s(&speech())),
            ("--landmarks", lm.clone()),
            ("-o", s(&out)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        // The case's option replaces the default one of the same name.
        base.retain(|(k, _)| k != &extra[0]);
        let mut a = args(&["generate"]);
        for (k, v) in base {
            a.push(k);
            a.push(v);
        }
        a.extend(extra.clone());
        let o = sadtalker(&a, &dir.path().join("home"));
        assert_eq!(o.status.code(), Some(code), "{extra:?}: {}", text(&o));
        assert!(text(&o).contains(needle), "{extra:?}: {}", text(&o));
        assert!(!out.exists(), "{extra:?} left a video");
    }
}

#[test]
fn missing_models_exit_4_naming_the_files_and_the_fix() {
    let dir = TempDir::new().expect("tempdir");
    let a = args(&[
        "generate",
        "--source-image",
        &s(&astronaut()),
        "--driven-audio",
        &s(&speech()),
        "-o",
        &s(&dir.path().join("x.mp4")),
        "--offline",
    ]);
    let o = sadtalker(&a, &dir.path().join("empty-home"));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let t = text(&o);
    for needle in [
        "SadTalker_V0.0.2_256.safetensors",
        "mapping_00229-model.pth.tar",
        "sadtalker models import",
        "sadtalker models fetch",
    ] {
        assert!(t.contains(needle), "no `{needle}` in: {t}");
    }
    assert!(
        !t.contains("GFPGANv1.4.pth"),
        "the enhancer files are asked for only with --enhancer: {t}"
    );
    // --enhancer gfpgan also needs the store's `enhancer` files.
    let mut a = a.clone();
    a.extend(args(&["--enhancer", "gfpgan"]));
    let o = sadtalker(&a, &dir.path().join("empty-home"));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let t = text(&o);
    for needle in ["GFPGANv1.4.pth", "parsing_parsenet.pth", "detection_Resnet50_Final.pth"] {
        assert!(t.contains(needle), "no `{needle}` in: {t}");
    }
}

/// A batch folder: three good jobs (different seeds and modes), one corrupt image, one corrupt speech.
fn batch_inputs(dir: &Path) -> PathBuf {
    let inputs = dir.join("in");
    std::fs::create_dir_all(&inputs).expect("mkdir");
    std::fs::copy(astronaut(), inputs.join("astro.png")).expect("copy");
    std::fs::copy(landmarks(), inputs.join("astro_lm.txt")).expect("copy");
    std::fs::copy(speech(), inputs.join("speech.wav")).expect("copy");
    std::fs::write(inputs.join("broken.png"), b"\x89PNG\r\n\x1a\n not a png").expect("write");
    std::fs::write(inputs.join("broken.wav"), b"RIFF\x00\x00\x00\x00WAVEjunk").expect("write");
    let csv = inputs.join("jobs.csv");
    std::fs::write(
        &csv,
        "image,audio,landmarks,name,seed,preprocess,still\n\
         astro.png,speech.wav,astro_lm.txt,first,0,crop,\n\
         broken.png,speech.wav,astro_lm.txt,bad_image,0,crop,\n\
         astro.png,speech.wav,astro_lm.txt,second,7,resize,\n\
         astro.png,broken.wav,astro_lm.txt,bad_audio,0,crop,\n\
         astro.png,speech.wav,astro_lm.txt,third,3,full,yes\n",
    )
    .expect("write");
    csv
}

fn batch(csv: &Path, out: &Path, extra: &[&str], home: &Path) -> Output {
    sadtalker(&batch_args(csv, out, extra), home)
}

fn report(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("report.jsonl"))
        .expect("report.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn batch_records_failures_resumes_and_shards_merge_to_the_full_run() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let csv = batch_inputs(dir.path());
    let full = dir.path().join("full");

    let o = batch(&csv, &full, &[], &home);
    assert_eq!(o.status.code(), Some(6), "partial: {}", text(&o));
    let t = text(&o);
    assert!(t.contains("troubleshooting"), "{t}");
    let rep = report(&full);
    assert_eq!(rep.len(), 5);
    let status: Vec<&str> = rep.iter().map(|r| r["status"].as_str().expect("status")).collect();
    assert_eq!(status, ["ok", "failed", "ok", "failed", "ok"]);
    assert_eq!(rep[1]["error"]["code"], "image_unreadable");
    assert!(rep[1]["error"]["message"].as_str().expect("msg").contains("broken.png"));
    assert_eq!(rep[3]["error"]["code"], "audio_unreadable");
    assert!(rep[3]["error"]["message"].as_str().expect("msg").contains("broken.wav"));
    for r in &rep {
        assert!(r["seconds"].as_f64().is_some() && r["key"].as_str().is_some_and(|k| k.len() == 64));
    }
    let mut videos: Vec<String> = std::fs::read_dir(&full)
        .expect("out dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".mp4"))
        .collect();
    videos.sort();
    assert_eq!(videos, ["first.mp4", "second.mp4", "third.mp4"]);
    let third = sadtalker_video::read_video(full.join("third.mp4")).expect("decodes");
    assert_eq!(third.frames.len(), 3);

    // Resume: nothing is run again (the failures are bad inputs with unchanged contents).
    let before = std::fs::metadata(full.join("first.mp4"))
        .expect("meta")
        .modified()
        .expect("mtime");
    let o = batch(&csv, &full, &["--resume", "--json"], &home);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(summary["skipped"], 5, "{summary}");
    assert_eq!(report(&full).len(), 5, "resume appended records");
    let after = std::fs::metadata(full.join("first.mp4"))
        .expect("meta")
        .modified()
        .expect("mtime");
    assert_eq!(before, after);

    // Two shards + merge == the full run (same records, byte-identical videos).
    let sharded = dir.path().join("sharded");
    // Shard 0 takes jobs 0, 2, 4 (all good), shard 1 the two bad ones.
    for (shard, code) in [("0/2", 0), ("1/2", 6)] {
        let o = batch(&csv, &sharded, &["--shard", shard, "--quiet"], &home);
        assert_eq!(o.status.code(), Some(code), "{shard}: {}", text(&o));
    }
    assert!(sharded.join("report.shard-0-of-2.jsonl").is_file());
    let o = sadtalker(&args(&["batch", "merge", &s(&sharded)]), &home);
    assert_eq!(o.status.code(), Some(6), "{}", text(&o));
    let merged = report(&sharded);
    assert_eq!(merged.len(), 5);
    for (a, b) in rep.iter().zip(&merged) {
        for k in ["job", "name", "key", "status", "frames"] {
            assert_eq!(a[k], b[k], "{k}");
        }
        assert_eq!(a["error"]["code"], b["error"]["code"]);
    }
    for v in &videos {
        let a = std::fs::read(full.join(v)).expect("full-run video");
        let b = std::fs::read(sharded.join(v)).expect("shard video");
        assert!(a == b, "{v} differs between the full and the sharded run");
    }
}

#[test]
fn batch_refuses_unusable_job_lists() {
    let dir = TempDir::new().expect("tempdir");
    let csv = dir.path().join("jobs.csv");
    std::fs::write(&csv, "image,audoi\na.png,a.wav\n").expect("write");
    let o = batch(&csv, &dir.path().join("o"), &[], &dir.path().join("home"));
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert!(text(&o).contains("audoi"), "{}", text(&o));
    let o = batch(
        &csv,
        &dir.path().join("o"),
        &["--shard", "2/2"],
        &dir.path().join("home"),
    );
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}

/// A two-file manifest (feature `256`) with the files installed in the store under `home`.
fn tiny_store(home: &Path) -> (PathBuf, Vec<PathBuf>) {
    use sha2::{Digest, Sha256};
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for (name, body) in [
        ("model_a.safetensors", &b"alpha weights"[..]),
        ("model_b.pth", &b"beta weights"[..]),
    ] {
        let rel = format!("checkpoints/{name}");
        let path = home.join(&rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, body).expect("write");
        entries.push(serde_json::json!({
            "name": name, "path": rel, "size": body.len(),
            "sha256": format!("{:x}", Sha256::digest(body)), "features": ["256"],
        }));
        files.push(path);
    }
    let manifest = home.join("manifest.json");
    std::fs::write(&manifest, serde_json::json!({ "files": entries }).to_string()).expect("write");
    (manifest, files)
}

fn doctor(manifest: &Path, results: &Path, home: &Path) -> Output {
    sadtalker(
        &args(&[
            "doctor",
            "--manifest",
            &s(manifest),
            "--result-dir",
            &s(results),
            "--no-self-test",
        ]),
        home,
    )
}

#[test]
fn doctor_names_a_deleted_model_a_corrupt_model_and_an_unwritable_folder() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let (manifest, files) = tiny_store(&home);
    let results = dir.path().join("results");

    let o = doctor(&manifest, &results, &home);
    assert!(o.status.success(), "{}", text(&o));

    // Corrupt (same size, other bytes: only the hash tells).
    std::fs::write(&files[0], b"alpha weightz").expect("write");
    let o = doctor(&manifest, &results, &home);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("damaged") && t.contains("model_a.safetensors"), "{t}");
    assert!(t.contains("sadtalker models fetch model_a.safetensors"), "{t}");

    // Deleted.
    std::fs::remove_file(&files[0]).expect("rm");
    let o = doctor(&manifest, &results, &home);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("missing: model_a.safetensors"), "{t}");
    assert!(t.contains("sadtalker models fetch --for 256"), "{t}");
    assert!(t.contains("sadtalker models import"), "{t}");

    // A result folder that cannot be written: under a file (fails for root too), and one without write
    // permission (fails for other users; root is told it is read-only).
    let blocker = dir.path().join("a_file");
    std::fs::write(&blocker, b"x").expect("write");
    let o = sadtalker(
        &args(&[
            "doctor",
            "--manifest",
            &s(&manifest),
            "--result-dir",
            &s(&blocker.join("results")),
            "--no-self-test",
            "--json",
        ]),
        &home,
    );
    assert_ne!(o.status.code(), Some(0), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let check = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "result folder")
        .expect("a result folder check")
        .clone();
    assert_eq!(check["status"], "fail", "{check}");
    assert!(check["detail"].as_str().expect("detail").contains("a_file"), "{check}");
    assert!(check["fix"].as_str().expect("fix").contains("--result-dir"), "{check}");

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let ro = dir.path().join("readonly");
        std::fs::create_dir_all(&ro).expect("mkdir");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        let o = doctor(&manifest, &ro, &home);
        let t = text(&o);
        assert!(t.contains("read-only") || t.contains("not writable"), "{t}");
        assert!(t.contains("chmod u+w") || t.contains("--result-dir"), "{t}");
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755)).expect("chmod back");
    }
}

#[test]
fn doctor_self_test_passes_every_stage() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let (manifest, _) = tiny_store(&home);
    let o = sadtalker(
        &args(&[
            "doctor",
            "--manifest",
            &s(&manifest),
            "--result-dir",
            &s(&dir.path().join("r")),
            "--json",
        ]),
        &home,
    );
    assert!(o.status.success(), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let t = &r["self_test"];
    assert_eq!(t["passed"], true, "{t}");
    let stages = t["stages"].as_array().expect("stages");
    assert_eq!(stages.len(), 9);
    for st in stages {
        let expected = if st["stage"] == "enhance" { "skipped" } else { "pass" };
        assert_eq!(st["status"], expected, "{st}");
    }
    let names: Vec<&str> = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    for n in ["models 256", "store folder", "result folder", "cpu", "gpu", "codecs"] {
        assert!(names.contains(&n), "{n} not in {names:?}");
    }
}

/// Result names are the local time, as the reference's `time.strftime`: two runs under time zones
/// 5 h 30 min apart (POSIX TZ strings, no time-zone database needed) are named 330 minutes apart.
#[test]
fn result_names_use_local_time() {
    let dir = TempDir::new().expect("tempdir");
    let minutes_of_day = |tz: &str| -> i64 {
        let results = dir.path().join(format!("results-{}", tz.len()));
        let o = generate_env(
            dir.path(),
            &["--quiet", "--landmarks", &s(&landmarks()), "--result-dir", &s(&results)],
            &[("TZ", tz)],
        );
        assert!(o.status.success(), "{}", text(&o));
        let names: Vec<String> = std::fs::read_dir(&results)
            .expect("result dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // YYYY_MM_DD_HH.MM.SS.mp4
        let time = names[0].split('_').nth(3).expect("time part");
        let hm: Vec<i64> = time.split('.').take(2).map(|v| v.parse().expect("number")).collect();
        hm[0] * 60 + hm[1]
    };
    let utc = minutes_of_day("UTC0");
    let ahead = minutes_of_day("XYZ-05:30");
    let diff = (ahead - utc).rem_euclid(24 * 60);
    assert!(
        (330..=331).contains(&diff),
        "UTC {utc} min, UTC+5:30 {ahead} min: {diff} apart"
    );
}

/// An output that is one of the inputs (by identity, also through a link) or a device node is refused
/// before any work, the input untouched; so are options out of range, NaN included. (Unix: links and
/// sockets.)
#[cfg(unix)]
#[test]
fn outputs_never_replace_inputs_and_option_ranges_are_checked() {
    let dir = TempDir::new().expect("tempdir");
    let image = dir.path().join("face.png");
    std::fs::copy(astronaut(), &image).expect("copy");
    let before = std::fs::read(&image).expect("read");
    let link = dir.path().join("link.mp4");
    std::os::unix::fs::symlink(&image, &link).expect("symlink");
    // A node that is not a regular file (a socket here; a device node such as /dev/null is the same
    // case, but a test must not risk replacing one).
    let node = dir.path().join("node.mp4");
    let _listener = std::os::unix::net::UnixListener::bind(&node).expect("socket");
    let run = |extra: &[&str]| {
        let mut a = vec!["--landmarks".to_owned(), s(&landmarks())];
        a.extend(extra.iter().map(|x| (*x).to_owned()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        generate_portrait(dir.path(), &image, &a, &[])
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (args(&["-o", &s(&image)]), "is the --source-image file"),
        (args(&["-o", &s(&speech())]), "is the --driven-audio file"),
        (args(&["-o", &s(&node)]), "not a regular file"),
        (args(&["--batch-size", "1000000000"]), "--batch-size"),
        (args(&["--max-seconds", "NaN"]), "--max-seconds"),
        (args(&["--expression-scale=-1e9"]), "--expression-scale"),
        (args(&["-o", &s(&link)]), "is the --source-image file"),
    ];
    for (extra, want) in cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let o = run(&extra);
        assert_eq!(o.status.code(), Some(3), "{extra:?}: {}", text(&o));
        assert!(text(&o).contains(want), "{extra:?}: {}", text(&o));
    }
    assert_eq!(
        std::fs::read(&image).expect("read"),
        before,
        "the portrait is untouched"
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(&node).expect("node").file_type().is_socket());
}

/// PSNR (dB) between two 8-bit frame folders of the same frames.
fn folder_psnr(a: &Path, b: &Path) -> f64 {
    let mut names: Vec<PathBuf> = std::fs::read_dir(a)
        .expect("frames")
        .map(|e| e.expect("entry").path())
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no frames in {}", a.display());
    let (mut se, mut n) = (0f64, 0usize);
    for pa in names {
        let pb = b.join(pa.file_name().expect("name"));
        let (x, y) = (
            image::open(&pa).expect("png").to_rgb8(),
            image::open(&pb).expect("png").to_rgb8(),
        );
        assert_eq!(x.dimensions(), y.dimensions());
        for (p, q) in x.as_raw().iter().zip(y.as_raw()) {
            se += (f64::from(*p) - f64::from(*q)).powi(2);
            n += 1;
        }
    }
    10.0 * (255f64.powi(2) / (se / n as f64).max(1e-12)).log10()
}

/// `generate --json` with `extra`, its frames written to `dir/frames_<tag>`: the frames folder and the
/// report.
fn generate_frames(dir: &Path, tag: &str, extra: &[&str]) -> (PathBuf, Value) {
    let frames = dir.join(format!("frames_{tag}"));
    let out = dir.join(format!("{tag}.mp4"));
    let mut a = vec![
        "--landmarks".to_owned(),
        s(&landmarks()),
        "-o".to_owned(),
        s(&out),
        "--frames-dir".to_owned(),
        s(&frames),
        "--json".to_owned(),
    ];
    a.extend(extra.iter().map(|x| (*x).to_owned()));
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let o = generate(dir, &a);
    assert!(o.status.success(), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    (frames, r)
}

#[test]
fn precision_bf16_renders_near_fp32_and_the_report_says_which_ran() {
    let dir = TempDir::new().expect("tempdir");
    let run = |p: &str| generate_frames(dir.path(), p, &["--precision", p]);
    let (fp32, r32) = run("fp32");
    assert_eq!(r32["precision"], "fp32");
    let (bf16, r16) = run("bf16");
    let amx = sadtalker_pipeline::precision_used(sadtalker_pipeline::Precision::Bf16)
        .warning
        .is_none();
    let warned = r16["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .any(|w| w.as_str().is_some_and(|w| w.contains("--precision bf16")));
    if amx {
        assert_eq!(r16["precision"], "bf16");
        assert!(!warned, "{r16}");
        // bf16 ran in the frame loop: the frames differ from fp32's. (Fidelity is tested where it means
        // something, on the full-size renderer and a real portrait: crates/render/tests/bf16.rs. The
        // self-test networks' random weights amplify any difference.)
        let db = folder_psnr(&fp32, &bf16);
        assert!(db < 90.0, "bf16 frames equal fp32's ({db:.1} dB): did bf16 run?");
    } else {
        // Never passed off as bf16: fp32 ran, and the report says so.
        assert_eq!(r16["precision"], "fp32");
        assert!(warned, "no warning that bf16 did not run: {r16}");
        assert!(folder_psnr(&fp32, &bf16) > 90.0);
    }
    let o = generate(dir.path(), &["--precision", "fp16"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("fp32 or bf16"),
        "{}",
        text(&o)
    );
}

/// Whether a Vulkan device opens here; under `CI=true` (which installs lavapipe) it must.
fn vulkan_present() -> bool {
    sadtalker_gpu::context::device_for_test(sadtalker_gpu::DeviceKind::Vulkan).is_some()
}

#[test]
fn device_vulkan_renders_the_cpus_frames_and_the_report_says_where() {
    if !vulkan_present() {
        return;
    }
    let dir = TempDir::new().expect("tempdir");
    let run = |d: &str| generate_frames(dir.path(), d, &["--device", d]);
    let (cpu, rc) = run("cpu");
    assert_eq!(rc["device"], "cpu", "{rc}");
    let (gpu, rg) = run("vulkan");
    assert_eq!(rg["device"], "vulkan", "{rg}");
    assert!(!rg["device_name"].as_str().expect("device_name").is_empty(), "{rg}");
    let db = folder_psnr(&cpu, &gpu);
    eprintln!(
        "--device vulkan ({}): {db:.1} dB against --device cpu",
        rg["device_name"]
    );
    assert!(db >= 45.0, "GPU frames {db:.1} dB from the CPU's");
}

#[test]
fn a_named_device_that_is_missing_fails_with_what_to_do() {
    let dir = TempDir::new().expect("tempdir");
    // CUDA is not in this build: refused before any work, with the alternative.
    let o = generate(dir.path(), &["--device", "cuda", "--json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("cuda") && t.contains("--device vulkan") && t.contains("--device cpu"),
        "{t}"
    );
    assert!(
        !dir.path().join("results").exists()
            || std::fs::read_dir(dir.path().join("results"))
                .expect("dir")
                .next()
                .is_none()
    );
    // Metal exists on Apple platforms only.
    if !cfg!(target_vendor = "apple") {
        let o = generate(dir.path(), &["--device", "metal"]);
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        assert!(text(&o).contains("Metal"), "{}", text(&o));
    }
    let o = generate(dir.path(), &["--device", "tpu"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("vulkan"), "{}", text(&o));
}

/// On a headless machine (no Wayland display, no `XDG_RUNTIME_DIR`) a device probe prints nothing
/// of libwayland's: Mesa 22's device-select layer used to connect to Wayland and print
/// "error: XDG_RUNTIME_DIR is invalid or not set" on every run.
#[test]
fn a_device_probe_on_a_headless_machine_prints_no_wayland_error() {
    let dir = TempDir::new().expect("tempdir");
    let o = doctor_json(
        dir.path(),
        &[
            "XDG_RUNTIME_DIR",
            "WAYLAND_DISPLAY",
            "WAYLAND_SOCKET",
            "NODEVICE_SELECT",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("XDG_RUNTIME_DIR"), "{err}");
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    if vulkan_present() {
        let devices = r["devices"].as_array().expect("a devices list");
        assert!(!devices.is_empty(), "the device is still found: {r}");
    }
}

/// `doctor --no-self-test --json` on a tiny store under `dir`, without the environment variables
/// in `unset`.
fn doctor_json(dir: &Path, unset: &[&str]) -> Output {
    let home = dir.join("home");
    let (manifest, _) = tiny_store(&home);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sadtalker"));
    cmd.args(args(&[
        "doctor",
        "--manifest",
        &s(&manifest),
        "--result-dir",
        &s(&dir.join("results")),
        "--no-self-test",
        "--json",
    ]))
    .env("SADTALKER_HOME", &home)
    .env_remove("SADTALKER_MIRROR");
    for v in unset {
        cmd.env_remove(v);
    }
    cmd.output().expect("run sadtalker")
}

#[test]
fn doctor_json_lists_the_devices_it_found() {
    let dir = TempDir::new().expect("tempdir");
    let o = doctor_json(dir.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let devices = r["devices"].as_array().expect("a devices list");
    let gpu = r["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "gpu")
        .expect("a gpu check")
        .clone();
    assert!(
        gpu["detail"].as_str().expect("detail").contains("--device auto"),
        "{gpu}"
    );
    if vulkan_present() {
        let d = devices.first().expect("the Vulkan device is listed");
        assert_eq!(d["backend"], "vulkan", "{d}");
        assert_eq!(d["self_test"], "pass", "{d}");
        assert!(d["name"].as_str().is_some_and(|n| !n.is_empty()), "{d}");
        assert!(d["max_binding_bytes"].as_u64().is_some_and(|b| b > 0), "{d}");
    }
}
