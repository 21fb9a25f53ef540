//! The prepared-portrait cache: a second job on the same portrait skips the preprocessing and the
//! renderer's source work, and writes exactly the frames a job without the cache writes.

#![allow(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::Path;

use image::RgbImage;
use sadtalker_parity::fixtures_dir;
use sadtalker_pipeline::{GenerateOptions, Hooks, Models, NoProgress, Report, generate_with};
use sadtalker_preprocess::PreprocessMode;

fn job(dir: &Path, name: &str, image: &Path, f: impl FnOnce(&mut GenerateOptions)) -> GenerateOptions {
    let mut o = GenerateOptions {
        source_image: image.to_owned(),
        driven_audio: fixtures_dir().join("pipeline/speech_3f.wav"),
        landmarks: Some(fixtures_dir().join("pipeline/astronaut_lm.txt")),
        output: Some(dir.join(format!("{name}.mp4"))),
        size: 64,
        ..GenerateOptions::default()
    };
    f(&mut o);
    o
}

fn run(models: &Models, opts: &GenerateOptions) -> (Report, Vec<RgbImage>) {
    let mut frames = Vec::new();
    let mut on_frame = |_: usize, f: &RgbImage| frames.push(f.clone());
    let report = generate_with(
        models,
        opts,
        &mut NoProgress,
        Hooks {
            on_frame: Some(&mut on_frame),
            ..Hooks::default()
        },
    )
    .unwrap();
    assert!(report.degraded.is_none(), "{:?}", report.degraded);
    (report, frames)
}

#[test]
fn a_second_recording_for_the_same_portrait_reuses_its_preparation() {
    let dir = tempfile::tempdir().unwrap();
    let astronaut = fixtures_dir().join("preprocess/astronaut.png");
    let cached = Models::self_test();

    let (first, _) = run(&cached, &job(dir.path(), "a", &astronaut, |_| {}));
    assert!(!first.source_cached, "nothing prepared yet");

    // Another job on the same portrait (other seed and pose style: they act after the preparation).
    let second_opts = job(dir.path(), "b", &astronaut, |o| {
        o.seed = 7;
        o.pose_style = 5;
    });
    let (second, second_frames) = run(&cached, &second_opts);
    assert!(second.source_cached, "same pixels, same preparation options");
    println!(
        "preprocess: {:.3} s first, {:.3} s from the cache; render {:.3} s / {:.3} s",
        first.seconds["preprocess"], second.seconds["preprocess"], first.seconds["render"], second.seconds["render"]
    );

    // The cached job's frames are the frames of a process that never saw the portrait.
    let uncached = Models::self_test().with_source_cache(0);
    let (control, control_frames) = run(
        &uncached,
        &job(dir.path(), "c", &astronaut, |o| {
            o.seed = 7;
            o.pose_style = 5;
        }),
    );
    assert!(!control.source_cached);
    assert_eq!(second_frames.len(), control_frames.len());
    assert!(second_frames == control_frames, "cached and uncached frames differ");
    let (again, _) = run(&uncached, &second_opts);
    assert!(!again.source_cached, "--source-cache 0 keeps nothing");

    // The key is the content: the same picture under another name (and format) is a hit.
    let copy = dir.path().join("same-face.bmp");
    image::open(&astronaut).unwrap().to_rgb8().save(&copy).unwrap();
    let (renamed, _) = run(&cached, &job(dir.path(), "d", &copy, |_| {}));
    assert!(renamed.source_cached, "same pixels in a BMP");

    // An option that shapes the crop is another entry.
    let (full, _) = run(
        &cached,
        &job(dir.path(), "e", &astronaut, |o| o.preprocess = PreprocessMode::Full),
    );
    assert!(!full.source_cached, "--preprocess full cuts another picture");
    // Still mode changes only the driving poses: the `full` preparation is reused.
    let (full_still, _) = run(
        &cached,
        &job(dir.path(), "f", &astronaut, |o| {
            o.preprocess = PreprocessMode::Full;
            o.still = true;
        }),
    );
    assert!(full_still.source_cached);

    let stats = cached.source_cache().stats();
    assert_eq!((stats.hits, stats.misses, stats.entries), (3, 2, 2), "{stats:?}");
}
