//! Mel front end speed: 60 s of speech through `melspectrogram` + the per-frame windows, ours vs
//! the reference (`sadtalker.utils.audio.melspectrogram` and `get_data`'s window loop) measured
//! in the same run on the same samples.
//!
//! Run: `cargo run --release -p sadtalker-audio --example bench_mel`
//! The reference side needs the reference venv: `$SADTALKER_REF_PYTHON`, else
//! `~/.cache/sadtalker-reference/bin/python` if it exists; without it only our time is printed.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use sadtalker_audio::frames::{frame_aligned, mel_windows};
use sadtalker_audio::{HPARAMS, LoadOptions, MelSpectrogram, load_speech};

const SECONDS: usize = 60;
const REPEATS: usize = 5;

const PY: &str = r#"
import sys, time, numpy as np
import sadtalker.utils.audio as audio
wav = np.fromfile(sys.argv[1], dtype='<f4')
reps = int(sys.argv[2])
def run():
    mel = audio.melspectrogram(wav).T
    n = int(len(wav) / 640)
    out = []
    for i in range(n):
        s = int(80. * ((i - 2) / 25.))
        seq = [min(max(t, 0), mel.shape[0] - 1) for t in range(s, s + 16)]
        out.append(mel[seq, :].T)
    return np.asarray(out)
run()  # warm-up (builds librosa's caches)
best = float('inf')
for _ in range(reps):
    t = time.perf_counter(); run(); best = min(best, time.perf_counter() - t)
print(best)
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/audio/speech_16k.wav");
    let clip = load_speech(&fixture, &LoadOptions::default())?.samples;
    let wav: Vec<f32> = clip.iter().copied().cycle().take(SECONDS * 16_000).collect();
    let (wav, frames) = frame_aligned(&wav);

    let front = MelSpectrogram::new(&HPARAMS);
    let mut best = f64::INFINITY;
    let mut windows = 0;
    for _ in 0..REPEATS + 1 {
        let t = Instant::now();
        let mel = front.compute(&wav);
        windows = mel_windows(&mel, frames).num_frames;
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "mel + windows for {SECONDS} s of 16 kHz audio ({windows} video frames): ours {:.1} ms",
        best * 1e3
    );

    let python = sadtalker_parity::reference_python(None);
    let Some(python) = python else {
        println!("reference: no Python venv found (set SADTALKER_REF_PYTHON); ours only");
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let raw = dir.path().join("wav.f32");
    std::fs::write(&raw, wav.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>())?;
    let out = Command::new(&python)
        .args(["-c", PY])
        .arg(&raw)
        .arg(REPEATS.to_string())
        .output()?;
    if !out.status.success() {
        println!("reference failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        return Ok(());
    }
    let theirs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    println!(
        "reference (librosa/numpy, same samples): {:.1} ms; ours is {:.1}× faster",
        theirs * 1e3,
        theirs / best
    );
    Ok(())
}
