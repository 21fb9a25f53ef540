//! The fuzz run of `cargo test`: one test per target (each fuzzes in a child process, see
//! `sadtalker_fuzz::runner`), and the replay of every committed input with a memory check.

use std::path::{Path, PathBuf};

use sadtalker_fuzz::alloc::{self, CountingAlloc};
use sadtalker_fuzz::runner::{self, CHILD_ENV, DIR_ENV};
use sadtalker_fuzz::targets::{self, TARGETS};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// A committed input (corpus or regression) may use at most this much heap: they are all tiny, and
/// every one that once blew up (an edit list, a zlib element, a sample table) must now be refused
/// before allocating.
const REPLAY_MEMORY: usize = 64 << 20;

fn crash_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes")
}

/// Panic reports without a backtrace: symbolising one parses the binary's debug info (~140 MiB),
/// which would count against the memory checks whenever a decoder panic is caught (symphonia's
/// are, see `sadtalker_audio::decode`). The message and location still name a real crash.
fn light_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| std::panic::set_hook(Box::new(|info| eprintln!("{info}"))));
}

/// In the child: fuzz `name`. In the parent: run the child and judge it.
fn fuzz(name: &str) {
    let Some(target) = targets::find(name) else {
        panic!("no fuzz target {name}");
    };
    match (std::env::var(CHILD_ENV), std::env::var_os(DIR_ENV)) {
        (Ok(child), Some(dir)) if child == name => {
            light_panic_hook();
            runner::child_loop(target, Path::new(&dir));
        }
        // A child for another target runs only its own test.
        (Ok(_), _) => {}
        _ => runner::fuzz(target, &format!("fuzz_{name}"), &crash_dir()),
    }
}

#[test]
fn fuzz_image() {
    fuzz("image");
}

#[test]
fn fuzz_audio_wav() {
    fuzz("audio_wav");
}

#[test]
fn fuzz_audio_m4a() {
    fuzz("audio_m4a");
}

#[test]
fn fuzz_video_mp4() {
    fuzz("video_mp4");
}

#[test]
fn fuzz_mat() {
    fuzz("mat");
}

#[test]
fn fuzz_safetensors() {
    fuzz("safetensors");
}

#[test]
fn fuzz_pickle() {
    fuzz("pickle");
}

#[test]
fn fuzz_landmarks() {
    fuzz("landmarks");
}

#[test]
fn fuzz_jobs_csv() {
    fuzz("jobs_csv");
}

#[test]
fn fuzz_jobs_json() {
    fuzz("jobs_json");
}

/// Every target has a test above and a seed corpus.
#[test]
fn every_target_is_run_and_seeded() {
    let src = include_str!("fuzz.rs");
    for t in TARGETS {
        assert!(src.contains(&format!("fn fuzz_{}()", t.name)), "no test for {}", t.name);
        assert!(!runner::seeds(t.name).is_empty(), "no corpus for {}", t.name);
    }
}

/// Every committed input runs without a crash and with little memory: a regression of a fixed
/// allocation bomb fails here, on its input, in a second.
#[test]
fn regressions_and_corpus_stay_small() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("sadtalker-fuzz-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    light_panic_hook();
    // A bomb that is back must fail this test, not take the machine's memory.
    alloc::set_limit(4 << 30);
    let mut report = Vec::new();
    for t in TARGETS {
        for (path, bytes) in runner::seeds(t.name) {
            let base = alloc::reset_peak();
            runner::execute(t, &dir, &bytes);
            let used = alloc::peak().saturating_sub(base);
            report.push(format!("{}: {} KiB", path.display(), used >> 10));
            assert!(
                used < REPLAY_MEMORY,
                "{} ({}) took {} MiB of heap, over {} MiB",
                path.display(),
                t.name,
                used >> 20,
                REPLAY_MEMORY >> 20
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{}", report.join("\n"));
}
