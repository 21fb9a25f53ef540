//! End-to-end seconds and peak memory of `generate`, ours and the reference's `inference.py` chain
//! (PyTorch, tools/reference/bench_pipeline.py), on the same portrait, the same clip of speech and the
//! same recipe weights, in the same run:
//!
//! ```text
//! cargo run --release -p sadtalker-pipeline --example bench_generate -- [--seconds S] [--preprocess MODE] [--size N] [--precision fp32|bf16] [--python PATH] [--json]
//! ```
//!
//! The clip is the first S seconds (default 1) of examples/speech.wav. Both sides get the astronaut
//! (fixtures/preprocess/astronaut.png) with its 68 landmarks given (recipe weights find no face), build
//! their networks from the recipe (reported apart as `load`: writing recipe values is not what reading the
//! model files costs), then run extract → audio2coeff → face renderer → MP4 with audio (`run`). Peak RSS
//! is each process's high-water mark (ours: VmHWM; the reference: ru_maxrss). Ratio = reference / ours
//! (> 1: we are faster). Without a reference Python only our figures are printed. `--json` prints one
//! JSON object on stdout (the human lines go to stderr).

use std::path::{Path, PathBuf};
use std::process::Command;

use sadtalker_pipeline::{GenerateOptions, Hooks, Models, NoProgress, Precision, generate_with};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The first `seconds` of a 16-bit PCM WAV, as a new WAV (the bytes themselves: both sides read the
/// same samples).
fn cut_wav(src: &Path, dst: &Path, seconds: f64) -> Result<(), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(src)?;
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(format!("{}: not a WAV file", src.display()).into());
    }
    let mut pos = 12;
    let mut fmt: Option<&[u8]> = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes([bytes[pos + 4], bytes[pos + 5], bytes[pos + 6], bytes[pos + 7]]) as usize;
        let body = &bytes[pos + 8..(pos + 8 + len).min(bytes.len())];
        if id == b"fmt " {
            fmt = Some(body);
        } else if id == b"data" {
            let fmt = fmt.ok_or("no fmt chunk before data")?;
            let rate = u32::from_le_bytes([fmt[4], fmt[5], fmt[6], fmt[7]]);
            let block = u16::from_le_bytes([fmt[12], fmt[13]]) as usize;
            let n = ((seconds * f64::from(rate)) as usize * block).min(body.len());
            let mut out = Vec::with_capacity(44 + n);
            out.extend_from_slice(b"RIFF");
            out.extend_from_slice(&(36 + n as u32).to_le_bytes());
            out.extend_from_slice(b"WAVEfmt ");
            out.extend_from_slice(&16u32.to_le_bytes());
            out.extend_from_slice(&fmt[..16]);
            out.extend_from_slice(b"data");
            out.extend_from_slice(&(n as u32).to_le_bytes());
            out.extend_from_slice(&body[..n]);
            std::fs::write(dst, out)?;
            return Ok(());
        }
        pos += 8 + len + (len & 1);
    }
    Err(format!("{}: no data chunk", src.display()).into())
}

/// This process's peak resident memory (VmHWM), MB.
fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: the first thing `main` does; no other thread exists yet.
    unsafe { sadtalker_pipeline::quiet_headless_vulkan() };
    sadtalker_pipeline::memory::retain_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let seconds: f64 = opt("--seconds").map_or(Ok(1.0), |v| v.parse())?;
    let preprocess = opt("--preprocess").unwrap_or_else(|| "crop".into());
    let size: u32 = opt("--size").map_or(Ok(256), |v| v.parse())?;
    let precision: Precision = opt("--precision").map_or(Ok(Precision::Fp32), |v| v.parse())?;
    let json = args.iter().any(|a| a == "--json");
    // With --json, stdout carries only the JSON object.
    let say = |line: String| {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    let python = sadtalker_parity::reference_python(opt("--python").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("(no reference venv)"));
    let tmp = tempfile::tempdir()?;
    let clip = tmp.path().join("clip.wav");
    cut_wav(&root().join("examples/speech.wav"), &clip, seconds)?;
    say(format!(
        "clip: {seconds} s of examples/speech.wav, preprocess {preprocess}, size {size}, recipe weights"
    ));

    // The reference first (a child process: its memory is not ours).
    let reference: Option<serde_json::Value> = if python.exists() {
        let out = Command::new(&python)
            // The same instruction set on both sides when SADTALKER_ISA lowers ours.
            .envs(sadtalker_ops::isa::torch_pin_env().iter().copied())
            .arg(root().join("tools/reference/bench_pipeline.py"))
            .arg("--audio")
            .arg(&clip)
            .arg("--out")
            .arg(tmp.path().join("ref"))
            .arg("--preprocess")
            .arg(&preprocess)
            .arg("--size")
            .arg(size.to_string())
            .current_dir(root())
            .output()?;
        if !out.status.success() {
            return Err(format!("reference failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().ok_or("no output from the reference")?;
        Some(serde_json::from_str(last)?)
    } else {
        say(format!("no reference Python at {}: our figures only", python.display()));
        None
    };

    let models = Models::recipe();
    let opts = GenerateOptions {
        source_image: root().join("fixtures/preprocess/astronaut.png"),
        driven_audio: clip.clone(),
        landmarks: Some(root().join("fixtures/pipeline/astronaut_lm.txt")),
        output: Some(tmp.path().join("ours.mp4")),
        preprocess: preprocess.parse()?,
        size,
        precision,
        ..GenerateOptions::default()
    };
    let mut frames_seen: Vec<Vec<u8>> = Vec::new();
    let mut keep = |_: usize, f: &image::RgbImage| frames_seen.push(f.as_raw().clone());
    let hooks = Hooks {
        on_frame: (precision != Precision::Fp32).then_some(&mut keep as &mut dyn FnMut(usize, &image::RgbImage)),
        ..Hooks::default()
    };
    let report = generate_with(&models, &opts, &mut NoProgress, hooks)?;
    for w in &report.warnings {
        say(format!("warning: {w}"));
    }
    let load = report.seconds.get("models").copied().unwrap_or(0.0);
    let total = report.seconds.get("total").copied().unwrap_or(0.0);
    let run = total - load;
    let rss = peak_rss_mb().unwrap_or(f64::NAN);
    let frames = report.frames.max(1) as f64;
    // The same job in fp32 after the timed run and the memory reading: PSNR of the video frames.
    let psnr = if precision == Precision::Fp32 {
        None
    } else {
        let (mut se, mut n) = (0f64, 0usize);
        let mut compare = |i: usize, f: &image::RgbImage| {
            if let Some(ours) = frames_seen.get(i) {
                for (a, b) in ours.iter().zip(f.as_raw()) {
                    se += (f64::from(*a) - f64::from(*b)).powi(2);
                    n += 1;
                }
            }
        };
        let fp32 = GenerateOptions {
            precision: Precision::Fp32,
            output: Some(tmp.path().join("fp32.mp4")),
            ..opts.clone()
        };
        let hooks = Hooks {
            on_frame: Some(&mut compare),
            ..Hooks::default()
        };
        generate_with(&models, &fp32, &mut NoProgress, hooks)?;
        let db = 10.0 * (255f64.powi(2) / (se / n.max(1) as f64).max(1e-12)).log10();
        say(format!(
            "{} frames vs the same job in fp32: {db:.1} dB PSNR",
            report.precision
        ));
        Some(db)
    };
    say(format!(
        "ours:      {} frames, load {load:.1} s, run {run:.1} s ({:.2} s/frame), peak RSS {rss:.0} MB",
        report.frames,
        run / frames
    ));
    let stages: Vec<String> = report
        .seconds
        .iter()
        .filter(|(k, _)| !["total", "models"].contains(&k.as_str()))
        .map(|(k, v)| format!("{k} {v:.2}"))
        .collect();
    say(format!("  stages (s): {}", stages.join(", ")));
    let mut figures = serde_json::json!({
        "seconds": seconds,
        "preprocess": preprocess,
        "size": size,
        "frames": report.frames,
        "threads": rayon::current_num_threads(),
        "precision": report.precision.name(),
        "psnr_vs_fp32_db": psnr,
        "isa": sadtalker_ops::isa::active().name(),
        "load_s": load,
        "run_s": run,
        "per_frame_s": run / frames,
        "peak_rss_mb": rss,
        "stages_s": report.seconds,
        "reference_per_frame_s": null,
        "ratio": null,
        "reference_peak_rss_mb": null,
    });
    if let Some(r) = reference {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        let (rload, rrun, rrss) = (f("load"), f("run"), f("peak_rss_mb"));
        let rper = rrun / r["frames"].as_f64().unwrap_or(1.0);
        say(format!(
            "reference: {} frames, load {rload:.1} s, run {rrun:.1} s ({rper:.2} s/frame), peak RSS {rrss:.0} MB, {} \
             torch threads",
            r["frames"], r["threads"]
        ));
        say(format!("  stages (s): {}", r["stages"]));
        say(format!(
            "ratio (reference / ours): run {:.2}x, run+load {:.2}x, peak RSS {:.2}x",
            rrun / run,
            (rrun + rload) / total,
            rrss / rss
        ));
        figures["reference_load_s"] = rload.into();
        figures["reference_run_s"] = rrun.into();
        figures["reference_per_frame_s"] = rper.into();
        figures["ratio"] = (rper / (run / frames)).into();
        figures["reference_peak_rss_mb"] = rrss.into();
        figures["peak_rss_ratio"] = (rss / rrss).into();
        figures["reference_stages_s"] = r["stages"].clone();
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    }
    Ok(())
}
