//! Audio2Coeff speed: seconds per 10 s of audio, ours vs the reference's `Audio2Coeff.generate`
//! measured in the same run (tools/reference/bench_audio2coeff.py in the reference venv), both on
//! full-size networks with recipe weights and random mel windows. The mel front end is not timed
//! (it belongs to `sadtalker-audio`).
//!
//! ```text
//! cargo run --release -p sadtalker-audio2coeff --example bench -- [--seconds 10] [--repeat 3]
//!     [--python PATH] [--threads N] [--no-reference]
//! ```
//!
//! Also prints our peak resident memory, to show how it grows with the audio length.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use candle_core::Device;
use clap::Parser;
use sadtalker_audio::mel::Mel;
use sadtalker_audio2coeff::speech::SpectrogramWindows;
use sadtalker_audio2coeff::*;
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_coeffs::MotionCoeff;

#[derive(Parser)]
struct Args {
    /// Audio length to simulate, in seconds (25 video frames per second).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Timed runs per side (the median is reported), after one warm-up run.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Python of the reference venv. Default: $SADTALKER_REF_PYTHON, else ~/.cache/sadtalker-reference/bin/python.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Threads for both sides (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Only time our side.
    #[arg(long)]
    no_reference: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Peak resident set size in MiB (Linux), if known.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn ours(frames: usize, repeat: usize) -> anyhow::Result<Vec<f64>> {
    let w = Weights::from_recipe(Recipe::default(), &Device::Cpu);
    let net = Audio2Coeff::from_weights(&w.pp("audio2exp"), &w.pp("audio2pose"), Audio2PoseConfig::default())?;
    // A random spectrogram long enough for `frames` video frames (80 mel frames per second).
    let mel_frames = frames * 80 / 25 + 1;
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let data = (0..mel_frames * 80)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 8.0 - 4.0
        })
        .collect();
    let windows = SpectrogramWindows::new(
        Mel {
            frames: mel_frames,
            bands: 80,
            data,
        },
        frames,
    );
    let ratio = vec![0f32; frames];
    let input = Audio2CoeffInput {
        mels: &windows,
        first_frame: MotionCoeff([0.0; 70]),
        blink_ratio: &ratio,
        ref_eyeblink: None,
    };
    let mut runs = Vec::new();
    let mut exp_share = Vec::new();
    for i in 0..=repeat {
        let t = Instant::now();
        let mut exp_done = 0.0;
        let out = net.generate(
            &input,
            &Audio2CoeffOptions::default(),
            &mut SeededNoise::new(0),
            &mut |stage, done, total| {
                if stage == Stage::Expression && done == total {
                    exp_done = t.elapsed().as_secs_f64();
                }
            },
        )?;
        assert_eq!(out.coeffs.len(), frames);
        if i > 0 {
            let total = t.elapsed().as_secs_f64();
            runs.push(total);
            exp_share.push(exp_done / total);
        }
    }
    println!(
        "  (ours: Audio2Exp {:.0} % of the time, Audio2Pose the rest)",
        100.0 * median(exp_share)
    );
    Ok(runs)
}

fn reference(python: &PathBuf, frames: usize, repeat: usize, threads: Option<usize>) -> anyhow::Result<Vec<f64>> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tools/reference/bench_audio2coeff.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script).arg(frames.to_string()).arg(repeat.to_string());
    if let Some(t) = threads {
        cmd.arg(t.to_string());
    }
    let out = cmd.output().with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("reference bench failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line).with_context(|| format!("reading {line:?}"))?;
    Ok(v["runs"]
        .as_array()
        .context("no runs")?
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .collect())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(t) = args.threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    let frames = (args.seconds * 25.0).round() as usize;
    let repeat = args.repeat.max(1);
    let per10 = |s: f64| s * 10.0 / args.seconds;
    let ours = median(ours(frames, repeat)?);
    println!(
        "audio2coeff  {:.1} s of audio ({frames} frames), {} threads",
        args.seconds,
        args.threads.unwrap_or_else(rayon::current_num_threads)
    );
    println!("  ours:      {ours:.3} s  ({:.3} s per 10 s of audio)", per10(ours));
    if let Some(rss) = peak_rss_mib() {
        println!("  ours peak RSS: {rss:.0} MiB");
    }
    if !args.no_reference {
        let python = sadtalker_parity::reference_python(args.python);
        if let Some(python) = python.filter(|p| p.exists()) {
            let theirs = median(reference(&python, frames, repeat, args.threads)?);
            println!("  reference: {theirs:.3} s  ({:.3} s per 10 s of audio)", per10(theirs));
            println!("  ratio reference / ours: {:.2}x", theirs / ours);
        } else {
            println!("  reference: skipped (no venv: --python, $SADTALKER_REF_PYTHON or ~/.cache/sadtalker-reference)");
        }
    }
    Ok(())
}
