//! Issue #17, hardening, through the binary: SIGINT/SIGTERM leave no temporary files and keep a
//! batch's finished records (exit 130/143); concurrent batches share one report in whole lines and a
//! torn last line is repaired; time-stamped names are reserved atomically; output locations blocked by
//! a file are refused before any model is loaded (exit 2).
//!
//! Networks: the hidden `--builtin-weights self-test` (a reduced 64-pixel renderer, about a second per
//! short clip), with the astronaut's 68 landmarks (random weights find no face). Unix only: signals.
#![cfg(unix)]

mod common;
use common::{astronaut, batch_args, landmarks, s, speech, strings, text};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

/// `seconds` of a tone as 16 kHz WAV: long enough a render to be interrupted in the frame loop.
fn long_speech(dir: &Path, seconds: f64) -> PathBuf {
    let path = dir.join("long.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&path, spec).expect("wav");
    for i in 0..(seconds * 16_000.0) as usize {
        let t = i as f64 / 16_000.0;
        // A vowel-like buzz with a slow envelope, so the networks see varying input.
        let v = (t * 220.0 * std::f64::consts::TAU).sin() * (0.5 + 0.5 * (t * 3.0).sin()) * 8000.0;
        w.write_sample(v as i16).expect("sample");
    }
    w.finalize().expect("finish wav");
    path
}

fn command(args: &[String], home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sadtalker"));
    c.args(args).env("SADTALKER_HOME", home).env_remove("SADTALKER_MIRROR");
    c
}

fn run(args: &[String], home: &Path) -> Output {
    command(args, home).output().expect("run sadtalker")
}

/// `generate` on the test networks with the astronaut and its landmarks, plus `extra`.
fn generate_args(audio: &Path, extra: &[&str]) -> Vec<String> {
    let mut a = strings(&[
        "generate",
        "--builtin-weights",
        "self-test",
        "--size",
        "64",
        "--source-image",
        &s(&astronaut()),
        "--driven-audio",
        &s(audio),
        "--landmarks",
        &s(&landmarks()),
    ]);
    a.extend(extra.iter().map(|x| (*x).to_owned()));
    a
}

/// Names in `dir` (recursively) that are temporary files or empty placeholders.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries {
        let p = e.expect("entry").path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if p.is_dir() {
            out.extend(leftovers(&p));
        } else if name.ends_with(".partial")
            || name.starts_with('.')
            || std::fs::metadata(&p).map(|m| m.len() == 0).unwrap_or(false)
        {
            out.push(p);
        }
    }
    out
}

fn has_partial(dir: &Path, prefix: &str) -> bool {
    std::fs::read_dir(dir).is_ok_and(|d| {
        d.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(prefix) && n.ends_with(".partial")
        })
    })
}

/// Waits (at most `limit`) until `ready()`; panics with the child's output if it ended first.
fn wait_for(child: &mut Child, limit: Duration, what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("sadtalker ended ({status}) before {what}");
        }
        assert!(start.elapsed() < limit, "no {what} after {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let st = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
}

fn spawn(args: &[String], home: &Path, log: &Path) -> Child {
    command(args, home)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("log"))
        .spawn()
        .expect("spawn sadtalker")
}

fn finish(mut child: Child, log: &Path) -> (Option<i32>, String) {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().expect("wait") {
            return (st.code(), std::fs::read_to_string(log).unwrap_or_default());
        }
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!(
                "sadtalker did not stop after the signal: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---- 1. SIGINT / SIGTERM ----

/// An interrupt in the frame loop: exit 130 (SIGINT) / 143 (SIGTERM), no `.partial` and no video left,
/// the inputs untouched; a second SIGINT stops at once, also cleanly.
#[test]
fn an_interrupted_generate_leaves_no_temporary_files() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let audio = long_speech(dir.path(), 10.0);
    let audio_before = std::fs::read(&audio).expect("read");
    for (sig, code, twice) in [("INT", 130, false), ("TERM", 143, false), ("INT", 130, true)] {
        let out_dir = dir.path().join(format!("out-{sig}-{twice}"));
        let out = out_dir.join("talk.mp4");
        let log = dir.path().join(format!("log-{sig}-{twice}"));
        let mut child = spawn(&generate_args(&audio, &["-o", &s(&out)]), &home, &log);
        // The render stage has begun once the video's temporary file exists.
        wait_for(&mut child, Duration::from_secs(300), "a .partial file", || {
            has_partial(&out_dir, ".talk.mp4.")
        });
        signal(&child, sig);
        if twice {
            std::thread::sleep(Duration::from_millis(5));
            signal(&child, sig);
        }
        let (status, err) = finish(child, &log);
        assert_eq!(status, Some(code), "SIG{sig} (twice: {twice}): {err}");
        assert!(err.contains(&format!("SIG{sig}")), "{err}");
        assert!(!out.exists(), "no video after an interrupt");
        assert_eq!(leftovers(&out_dir), Vec::<PathBuf>::new(), "SIG{sig}: {err}");
    }
    assert_eq!(
        std::fs::read(&audio).expect("read"),
        audio_before,
        "the speech is untouched"
    );
}

/// A batch stopped during its third job: exit 143, the report holds exactly the two finished jobs as
/// whole valid lines, nothing half-written is left, the inputs are untouched.
#[test]
fn a_terminated_batch_keeps_the_finished_records() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let inputs = dir.path().join("in");
    std::fs::create_dir_all(&inputs).expect("mkdir");
    std::fs::copy(astronaut(), inputs.join("astro.png")).expect("copy");
    std::fs::copy(landmarks(), inputs.join("lm.txt")).expect("copy");
    std::fs::copy(speech(), inputs.join("short.wav")).expect("copy");
    long_speech(&inputs, 10.0);
    let csv = inputs.join("jobs.csv");
    std::fs::write(
        &csv,
        "image,audio,landmarks,name\n\
         astro.png,short.wav,lm.txt,one\n\
         astro.png,short.wav,lm.txt,two\n\
         astro.png,long.wav,lm.txt,long\n\
         astro.png,short.wav,lm.txt,four\n",
    )
    .expect("write");
    let out = dir.path().join("out");
    let args = strings(&[
        "batch",
        &s(&csv),
        "--out",
        &s(&out),
        "--builtin-weights",
        "self-test",
        "--size",
        "64",
    ]);
    let log = dir.path().join("log");
    let mut child = spawn(&args, &home, &log);
    wait_for(&mut child, Duration::from_secs(300), "the long job's .partial", || {
        has_partial(&out, ".long.mp4.")
    });
    signal(&child, "TERM");
    let (status, err) = finish(child, &log);
    assert_eq!(status, Some(143), "{err}");
    assert!(err.contains("--resume"), "{err}");
    let report = std::fs::read_to_string(out.join("report.jsonl")).expect("report");
    assert!(report.ends_with('\n'), "{report}");
    let names: Vec<String> = report
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            assert_eq!(v["status"], "ok", "{l}");
            v["name"].as_str().expect("name").to_owned()
        })
        .collect();
    assert_eq!(names, ["one", "two"]);
    assert!(!out.join("long.mp4").exists() && !out.join("four.mp4").exists());
    assert_eq!(leftovers(&out), Vec::<PathBuf>::new());
    for f in ["astro.png", "lm.txt", "short.wav"] {
        let a = std::fs::read(inputs.join(f)).expect("input");
        let b = std::fs::read(if f == "astro.png" {
            astronaut()
        } else if f == "lm.txt" {
            landmarks()
        } else {
            speech()
        })
        .expect("fixture");
        assert!(a == b, "{f} changed");
    }
}

// ---- 2. report.jsonl: concurrent batches, torn lines ----

/// Three good jobs named `<prefix>1..3` in `dir/<prefix>.csv`.
fn good_jobs(dir: &Path, prefix: &str) -> PathBuf {
    std::fs::create_dir_all(dir).expect("mkdir");
    for (from, to) in [
        (astronaut(), "astro.png"),
        (landmarks(), "lm.txt"),
        (speech(), "speech.wav"),
    ] {
        if !dir.join(to).exists() {
            std::fs::copy(from, dir.join(to)).expect("copy");
        }
    }
    let csv = dir.join(format!("{prefix}.csv"));
    let mut text = "image,audio,landmarks,name,seed\n".to_owned();
    for i in 1..=3 {
        text.push_str(&format!("astro.png,speech.wav,lm.txt,{prefix}{i},{i}\n"));
    }
    std::fs::write(&csv, text).expect("write");
    csv
}

/// Every line of a report, parsed; panics on a line that is not JSON or a missing final newline.
fn valid_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).expect("report");
    assert!(text.is_empty() || text.ends_with('\n'), "no final newline: {text:?}");
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

fn names_of(records: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = records
        .iter()
        .map(|r| r["name"].as_str().expect("name").to_owned())
        .collect();
    n.sort();
    n
}

/// Two batches running at once into one `--out`: every line of report.jsonl is a whole record and
/// both runs' records are there. (`--resume` so that the test does not depend on the two overlapping:
/// a fresh run empties the report only when no other batch is running there.)
#[test]
fn concurrent_batches_into_one_folder_write_whole_lines() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let inputs = dir.path().join("in");
    let (a, b) = (good_jobs(&inputs, "a"), good_jobs(&inputs, "b"));
    let out = dir.path().join("out");
    let (la, lb) = (dir.path().join("la"), dir.path().join("lb"));
    let ca = spawn(&batch_args(&a, &out, &["--resume"]), &home, &la);
    let cb = spawn(&batch_args(&b, &out, &["--resume"]), &home, &lb);
    let (sa, ea) = finish(ca, &la);
    let (sb, eb) = finish(cb, &lb);
    assert_eq!(sa, Some(0), "{ea}");
    assert_eq!(sb, Some(0), "{eb}");
    let records = valid_lines(&out.join("report.jsonl"));
    assert_eq!(names_of(&records), ["a1", "a2", "a3", "b1", "b2", "b3"]);
    assert_eq!(leftovers(&out), Vec::<PathBuf>::new());
}

/// A report whose last line was cut (a crash mid-write): `--resume` warns, removes the torn tail, runs
/// that job again and leaves only whole lines; `batch merge` of a shard report with a torn line warns and
/// writes a valid merged report.
#[test]
fn a_torn_last_line_is_ignored_and_repaired() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let csv = good_jobs(&dir.path().join("in"), "j");
    let out = dir.path().join("out");
    let o = run(&batch_args(&csv, &out, &["--quiet"]), &home);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let report = out.join("report.jsonl");
    let full = std::fs::read_to_string(&report).expect("report");
    let lines: Vec<&str> = full.lines().collect();
    assert_eq!(lines.len(), 3);
    // Cut inside the last record, as a crash during its write would.
    let cut = full.len() - lines[2].len() / 2;
    std::fs::write(&report, &full.as_bytes()[..cut]).expect("cut");
    std::fs::remove_file(out.join("j3.mp4")).expect("rm");

    let o = run(&batch_args(&csv, &out, &["--resume", "--json"]), &home);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("warning") && err.contains("line 3"), "{err}");
    assert!(err.contains("cut"), "{err}");
    let summary: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(summary["skipped"], 2, "{summary}");
    assert_eq!(summary["ok"], 1, "{summary}");
    let records = valid_lines(&report);
    assert_eq!(names_of(&records), ["j1", "j2", "j3"]);
    assert!(out.join("j3.mp4").is_file());

    // A resume with nothing to do still repairs a torn tail (here: a record that lost only its newline
    // is kept, garbage after it is not).
    let text_now = std::fs::read_to_string(&report).expect("report");
    std::fs::write(&report, text_now.trim_end()).expect("write");
    let o = run(&batch_args(&csv, &out, &["--resume", "--quiet"]), &home);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(names_of(&valid_lines(&report)), ["j1", "j2", "j3"]);

    // Shards, one report torn: merge warns, skips the torn record, writes whole lines.
    let sharded = dir.path().join("sharded");
    for shard in ["0/2", "1/2"] {
        let o = run(&batch_args(&csv, &sharded, &["--shard", shard, "--quiet"]), &home);
        assert_eq!(o.status.code(), Some(0), "{shard}: {}", text(&o));
    }
    let shard0 = sharded.join("report.shard-0-of-2.jsonl");
    let t = std::fs::read_to_string(&shard0).expect("shard report");
    assert_eq!(t.lines().count(), 2, "{t}");
    std::fs::write(&shard0, &t.as_bytes()[..t.len() - 40]).expect("cut");
    let o = run(&strings(&["batch", "merge", &s(&sharded)]), &home);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("warning") && err.contains("report.shard-0-of-2.jsonl line 2"),
        "{err}"
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let merged = valid_lines(&sharded.join("report.jsonl"));
    // Shard 0 had j1 and j3; j3's record was cut.
    assert_eq!(names_of(&merged), ["j1", "j2"]);
}

// ---- 3. time-stamped names reserved atomically ----

/// Four generates at once into one result folder: four distinct names, each a valid MP4 of 3 frames,
/// no empty file and no temporary left.
#[test]
fn concurrent_generates_get_distinct_time_stamped_names() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let results = dir.path().join("results");
    let children: Vec<(Child, PathBuf, PathBuf)> = (0..4)
        .map(|i| {
            let log = dir.path().join(format!("log{i}"));
            let json = dir.path().join(format!("out{i}.json"));
            let child = command(
                &generate_args(&speech(), &["--result-dir", &s(&results), "--json"]),
                &home,
            )
            .stdout(std::fs::File::create(&json).expect("json"))
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("spawn");
            (child, log, json)
        })
        .collect();
    let mut outputs = Vec::new();
    for (child, log, json) in children {
        let (status, err) = finish(child, &log);
        assert_eq!(status, Some(0), "{err}");
        let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
        outputs.push(PathBuf::from(r["output"].as_str().expect("output")));
    }
    let mut unique = outputs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4, "names shared: {outputs:?}");
    for o in &outputs {
        let video = sadtalker_video::read_video(o).unwrap_or_else(|e| panic!("{}: {e}", o.display()));
        assert_eq!(video.frames.len(), 3, "{}", o.display());
    }
    let files = std::fs::read_dir(&results).expect("results").count();
    assert_eq!(files, 4, "only the four videos");
    assert_eq!(leftovers(&results), Vec::<PathBuf>::new());
}

/// A job that fails leaves no reserved name behind; with `--fallback still` the still video takes it.
#[test]
fn a_failing_job_leaves_no_reservation() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let results = dir.path().join("results");
    // Without landmarks the test networks find no face: the preprocess stage fails.
    let no_lm = |extra: &[&str]| {
        let mut a = generate_args(&speech(), &["--result-dir", &s(&results)]);
        let at = a.iter().position(|x| x == "--landmarks").expect("landmarks");
        a.drain(at..at + 2);
        a.extend(extra.iter().map(|x| (*x).to_owned()));
        run(&a, &home)
    };
    let o = no_lm(&[]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    assert_eq!(
        std::fs::read_dir(&results).expect("results").count(),
        0,
        "a placeholder was left"
    );
    let o = no_lm(&["--fallback", "still", "--json"]);
    assert_eq!(o.status.code(), Some(5), "{}", text(&o));
    let r: Value = serde_json::from_slice(&o.stdout).expect("JSON");
    let out = PathBuf::from(r["output"].as_str().expect("output"));
    let names: Vec<PathBuf> = std::fs::read_dir(&results)
        .expect("results")
        .map(|e| e.expect("e").path())
        .collect();
    assert_eq!(names, std::slice::from_ref(&out));
    assert!(sadtalker_video::read_video(&out).is_ok_and(|v| !v.frames.is_empty()));
}

// ---- 4. output locations blocked by a file ----

/// Each output location with a file in the way: exit 2 before any model is loaded (the store here is
/// empty and offline, which would be exit 4 had the run got that far), naming the path and the file.
#[test]
fn output_locations_blocked_by_a_file_exit_2_before_models_load() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("empty-home");
    let file = dir.path().join("file.png");
    std::fs::write(&file, b"in the way").expect("write");
    let f = s(&file);
    let inside = |rest: &str| s(&file.join(rest));
    let base = |extra: &[&str]| {
        let mut a = strings(&[
            "generate",
            "--offline",
            "--source-image",
            &s(&astronaut()),
            "--driven-audio",
            &s(&speech()),
        ]);
        a.extend(extra.iter().map(|x| (*x).to_owned()));
        a
    };
    let ok_out = s(&dir.path().join("ok.mp4"));
    let cases: Vec<(Vec<String>, String)> = vec![
        (base(&["-o", &inside("x.mp4")]), format!("{f} is a file")),
        (base(&["-o", &inside("deeper/x.mp4")]), format!("{f} is a file")),
        (base(&["--result-dir", &f]), "--result-dir".to_owned()),
        (base(&["--result-dir", &inside("sub")]), format!("{f} is a file")),
        (base(&["-o", &ok_out, "--frames-dir", &f]), "--frames-dir".to_owned()),
        (
            base(&["-o", &ok_out, "--frames-dir", &inside("frames")]),
            format!("{f} is a file"),
        ),
        (
            strings(&[
                "batch",
                &s(&good_jobs(&dir.path().join("in"), "j")),
                "--out",
                &f,
                "--offline",
            ]),
            "--out".to_owned(),
        ),
        (
            strings(&[
                "batch",
                &s(&dir.path().join("in/j.csv")),
                "--out",
                &inside("o"),
                "--offline",
            ]),
            format!("{f} is a file"),
        ),
    ];
    for (a, want) in cases {
        let o = run(&a, &home);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {t}");
        assert!(t.contains(&want) && t.contains(&f), "{a:?}: no `{want}` in {t}");
        assert!(!t.contains("os error"), "{a:?}: {t}");
    }
    assert_eq!(std::fs::read(&file).expect("read"), b"in the way");
    assert!(!dir.path().join("ok.mp4").exists());
}

/// In the paste-back modes the video has the portrait's size: one the encoder cannot take is refused
/// before the models (which an empty offline store would answer with exit 4), naming the portrait.
#[test]
fn a_portrait_too_large_for_the_video_in_full_mode_is_refused_up_front() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("empty-home");
    let big = dir.path().join("big.png");
    image::RgbImage::from_pixel(4000, 2400, image::Rgb([90, 90, 90]))
        .save(&big)
        .expect("write");
    let out = dir.path().join("talk.mp4");
    let args = |extra: &[&str]| {
        let mut a = strings(&[
            "generate",
            "--offline",
            "--source-image",
            &s(&big),
            "--driven-audio",
            &s(&speech()),
            "-o",
            &s(&out),
        ]);
        a.extend(extra.iter().map(|x| (*x).to_owned()));
        a
    };
    for extra in [
        &["--preprocess", "full"][..],
        &["--preprocess", "extfull", "--fallback", "still"][..],
    ] {
        let o = run(&args(extra), &home);
        let t = text(&o);
        assert_eq!(o.status.code(), Some(3), "{extra:?}: {t}");
        assert!(
            t.contains("big.png") && t.contains("3840x2160") && t.contains("--preprocess crop"),
            "{t}"
        );
        assert!(!out.exists(), "no video, no fallback");
    }
    // The crop mode's frames are --size wide: the same portrait gets past the inputs (to the models).
    let o = run(&args(&["--preprocess", "crop"]), &home);
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
}

/// A `--ref-pose` video in which no face is found is blamed on that video, not on the portrait.
#[test]
fn a_reference_video_without_a_face_is_named_as_the_culprit() {
    let dir = TempDir::new().expect("tempdir");
    let home = dir.path().join("home");
    let clip = dir.path().join("pose.mp4");
    let mut w =
        sadtalker_video::Mp4Writer::create(&clip, sadtalker_video::VideoSettings::default(), None).expect("create");
    let grey = image::RgbImage::from_pixel(64, 64, image::Rgb([128, 128, 128]));
    for _ in 0..3 {
        w.write_image(&grey).expect("frame");
    }
    w.finish().expect("finish");
    let out = dir.path().join("talk.mp4");
    let o = run(
        &generate_args(&speech(), &["--ref-pose", &s(&clip), "-o", &s(&out)]),
        &home,
    );
    let t = text(&o);
    assert_eq!(o.status.code(), Some(3), "{t}");
    assert!(t.contains("--ref-pose video") && t.contains(&s(&clip)), "{t}");
    assert!(!t.contains("in the source image"), "{t}");
    assert!(!out.exists());
}
