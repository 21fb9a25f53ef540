//! Running a target: the parent (the `#[test]`) re-runs the test binary for that one test in a child
//! process, which mutates and executes inputs until its time is up. Crashes are the child dying:
//! a panic, the memory cap's abort (see [`crate::alloc`]), a hang past the deadline. The input being
//! executed is always on disk (the targets read files anyway), so the parent can name and keep it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::mutate::{Rng, mutate};
use crate::targets::Target;

/// Set in the child: the target it runs.
pub const CHILD_ENV: &str = "SADTALKER_FUZZ_CHILD";
/// Set in the child: the folder its input file lives in.
pub const DIR_ENV: &str = "SADTALKER_FUZZ_DIR";
/// Overrides the time budget per target, in seconds.
pub const SECONDS_ENV: &str = "SADTALKER_FUZZ_SECONDS";
/// The mutation seed: a number, or `random` for a new one each run (printed, to reproduce it).
/// Unset, each target has a fixed seed: `cargo test` explores the same inputs on every run, so a
/// test run never fails by chance; longer and random runs are for looking for new defects.
pub const SEED_ENV: &str = "SADTALKER_FUZZ_SEED";

/// The seed of `target`'s run (see [`SEED_ENV`]).
pub fn run_seed(target: &str) -> u64 {
    match std::env::var(SEED_ENV).ok().as_deref() {
        Some("random") => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
        Some(s) if s.parse::<u64>().is_ok() => s.parse().unwrap_or(1),
        // FNV-1a of the name: fixed, and different per target.
        _ => target.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        }),
    }
}
/// The child's live-heap cap: far above what any of the inputs needs (they are ≤ 64 KiB and every
/// decoder bounds its output by pixel, duration or size limits), far below an allocation bomb.
pub const CHILD_MEMORY_LIMIT: usize = 1 << 30;

/// The time each target runs: `SADTALKER_FUZZ_SECONDS`, else 15 s under `CI=true` (ten targets,
/// two at a time on a 2-core runner: about 75 s of wall time), else 3 s.
pub fn budget() -> Duration {
    let secs = std::env::var(SECONDS_ENV)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or_else(|| {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                15.0
            } else {
                3.0
            }
        });
    Duration::from_secs_f64(secs)
}

/// The seed corpus of a target (`corpus/<name>/`) and its past crashes (`regressions/<name>/`).
pub fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(bytes) = std::fs::read(&p) {
                out.push((p, bytes));
            }
        }
    }
    out
}

/// Writes `data` where the target reads it, and runs the target on it.
pub fn execute(target: &Target, dir: &Path, data: &[u8]) {
    let path = dir.join(target.file_name);
    if let Err(e) = std::fs::write(&path, data) {
        panic!("cannot write the fuzz input {}: {e}", path.display());
    }
    (target.run)(&path, data);
}

/// The child's loop: every seed once, then mutations of them until the budget is spent.
pub fn child_loop(target: &Target, dir: &Path) {
    crate::alloc::set_limit(CHILD_MEMORY_LIMIT);
    let seed = run_seed(target.name);
    let seeds: Vec<Vec<u8>> = seeds(target.name).into_iter().map(|(_, b)| b).collect();
    assert!(!seeds.is_empty(), "target {} has no seed corpus", target.name);
    let mut rng = Rng::new(seed);
    let start = Instant::now();
    let budget = budget();
    for s in &seeds {
        execute(target, dir, s);
    }
    let mut runs = seeds.len();
    while start.elapsed() < budget {
        let mut input = seeds[rng.below(seeds.len())].clone();
        mutate(&mut rng, &mut input, &seeds, target.max_len);
        execute(target, dir, &input);
        runs += 1;
    }
    println!(
        "fuzz {}: {runs} inputs in {:.1} s (seed {seed}: {SEED_ENV}={seed} repeats the run)",
        target.name,
        start.elapsed().as_secs_f64()
    );
}

/// The parent's side: runs the child for `test_name` (this test, re-entered) and fails with the
/// crashing input's location when the child does not end cleanly.
pub fn fuzz(target: &Target, test_name: &str, crash_dir: &Path) {
    let dir = match tempfile_dir(target.name) {
        Ok(d) => d,
        Err(e) => panic!("cannot make a folder for fuzz target {}: {e}", target.name),
    };
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => panic!("cannot find the test binary to re-run: {e}"),
    };
    let log_path = dir.join("child.log");
    let log = match std::fs::File::create(&log_path) {
        Ok(f) => f,
        Err(e) => panic!("cannot create {}: {e}", log_path.display()),
    };
    let err_log = match log.try_clone() {
        Ok(f) => f,
        Err(e) => panic!("cannot share {}: {e}", log_path.display()),
    };
    let mut child = match Command::new(exe)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, target.name)
        .env(DIR_ENV, &dir)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("cannot start the fuzz child: {e}"),
    };
    // The budget, plus generous time for the seeds and the slowest single input of a debug build.
    let deadline = Instant::now() + budget() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("waiting for the fuzz child: {e}"),
        }
    };
    let mut log_text = String::new();
    if let Ok(mut f) = std::fs::File::open(&log_path) {
        let _ = f.read_to_string(&mut log_text);
    }
    // libtest prints `test NAME ... ` on the same line, before the child's own output.
    let marker = format!("fuzz {}: ", target.name);
    let summary = log_text
        .lines()
        .filter_map(|l| l.find(&marker).map(|at| &l[at..]))
        .collect::<Vec<_>>()
        .join("\n");
    match status {
        Some(s) if s.success() && !summary.is_empty() => {
            println!("{summary}");
            let _ = std::fs::remove_dir_all(&dir);
        }
        other => {
            let input = std::fs::read(dir.join(target.file_name)).unwrap_or_default();
            let _ = std::fs::create_dir_all(crash_dir);
            let saved = crash_dir.join(format!("{}-{:016x}-{}", target.name, fnv(&input), target.file_name));
            let _ = std::fs::write(&saved, &input);
            let tail: String = {
                let lines: Vec<&str> = log_text.lines().collect();
                lines[lines.len().saturating_sub(40)..].join("\n")
            };
            let what = match other {
                None => "hung (killed at the deadline)".to_string(),
                Some(s) => format!("crashed ({s})"),
            };
            panic!(
                "fuzz target {} {what} on the input saved as {} ({} bytes). Fix the decoder, then keep the input \
                 as a regression: copy it to crates/fuzz/regressions/{}/.\n--- child output ---\n{tail}",
                target.name,
                saved.display(),
                input.len(),
                target.name
            );
        }
    }
}

fn tempfile_dir(name: &str) -> std::io::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("sadtalker-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&base)?;
    Ok(base)
}

/// FNV-1a, to name saved inputs by content.
pub fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
