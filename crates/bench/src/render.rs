//! The renderer benchmark: ms per frame at 256 or 512, ours vs the reference's
//! `make_animation` loop in the same run, and where our time goes per op.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::Context;
use candle_core::{Device, Tensor};
use sadtalker_checkpoint::{Checkpoint, InMemory, Layered, Recipe, Weights};
use sadtalker_ops::Resize;
use sadtalker_render::{DrivingFrame, FaceRenderConfig, FaceRenderer};
use serde_json::{Value, json};

use crate::{Common, repo_path};

/// Options of `sadtalker-bench render`.
#[derive(clap::Args, Clone)]
pub struct RenderArgs {
    #[command(flatten)]
    pub common: Common,
    /// Image size: 256 or 512.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Frames to render (after one warm-up batch).
    #[arg(long, default_value_t = 4)]
    pub frames: usize,
    /// Frames per generator call (the reference's default is 2).
    #[arg(long, default_value_t = 2)]
    pub batch_size: usize,
}

/// Inputs from the committed full-size golden: a real portrait crop, coefficient windows,
/// and the exact tensors recipe weights lack (spectral-norm vectors, the blur kernel).
struct Inputs {
    weights: Weights,
    image: Tensor,
    source: Tensor,
    driving: Tensor,
}

fn inputs(size: usize) -> anyhow::Result<Inputs> {
    let ck = Checkpoint::open(repo_path("fixtures/goldens/render/full_256.safetensors"))?;
    let t = |n: &str| -> anyhow::Result<Tensor> {
        let (v, s) = ck.read_f32(&format!("full_256.{n}"))?;
        Ok(Tensor::from_vec(v, s, &Device::Cpu)?)
    };
    let mut extra = HashMap::new();
    for info in ck.tensors() {
        if let Some(k) = info.name.strip_prefix("full_256.weights.") {
            extra.insert(k.to_owned(), ck.read_f32(&info.name)?);
        }
    }
    let layered = Layered::new(vec![
        Arc::new(InMemory::new("golden extras", extra)),
        Arc::new(Recipe::default().with_gain(3f64.sqrt())),
    ]);
    let mut image = t("source_image")?;
    if size != 256 {
        image = sadtalker_ops::interpolate_bilinear(&image, &Resize::Size(vec![size, size]), false)?;
    }
    Ok(Inputs {
        weights: Weights::new(Arc::new(layered), &Device::Cpu),
        image,
        source: t("source_semantics")?,
        driving: t("driving_semantics")?.get(0)?,
    })
}

/// Our renderer: seconds to prepare the source, and per frame.
fn time_ours(a: &RenderArgs) -> anyhow::Result<(f64, f64)> {
    let inp = inputs(a.size)?;
    let cfg = FaceRenderConfig::official(false);
    let renderer = FaceRenderer::load(&inp.weights, &inp.weights, &cfg)?;
    let clock = a.common.clock;
    let s = clock.now();
    let src = renderer.prepare(&inp.image, &inp.source)?;
    let prepare = clock.now() - s;
    let frame = DrivingFrame {
        semantics: inp.driving.clone(),
        yaw: None,
        pitch: None,
        roll: None,
    };
    let batch = vec![frame; a.batch_size.max(1)];
    // Warm-up: layers build their cached weight layouts (packed panels, Winograd transforms).
    renderer.render(&src, &batch)?;
    sadtalker_ops::profile::enable(match clock {
        crate::Clock::Wall => || crate::Clock::Wall.now(),
        crate::Clock::Cpu => || crate::Clock::Cpu.now(),
    });
    let s = clock.now();
    let calls = a.frames.div_ceil(batch.len());
    for _ in 0..calls {
        renderer.render(&src, &batch)?;
    }
    Ok((prepare, (clock.now() - s) / (calls * batch.len()) as f64))
}

fn time_reference(a: &RenderArgs) -> Option<Value> {
    let py = a.common.python()?;
    let script = repo_path("tools/reference/bench_render.py");
    let threads = a.common.threads.unwrap_or_else(rayon::current_num_threads);
    let req = json!({"size": a.size, "frames": a.frames, "batch_size": a.batch_size, "threads": threads, "clock": a.common.clock});
    let mut child = Command::new(&py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| eprintln!("note: cannot run {}: {e}; reference timings skipped", py.display()))
        .ok()?;
    child.stdin.take()?.write_all(req.to_string().as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        eprintln!("note: {} failed; reference timings skipped", script.display());
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

pub fn run(a: &RenderArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.size == 256 || a.size == 512, "--size must be 256 or 512");
    let threads = a.common.threads.unwrap_or_else(rayon::current_num_threads);
    println!(
        "renderer at {0}x{0}, {1} frames, batch {2}, {threads} threads",
        a.size, a.frames, a.batch_size
    );
    let (prepare, per_frame) = time_ours(a).context("running our renderer")?;
    let profile = sadtalker_ops::profile::report();
    let reference = time_reference(a);
    let rf = reference.as_ref().and_then(|r| r["per_frame_s"].as_f64());
    let rp = reference.as_ref().and_then(|r| r["prepare_s"].as_f64());
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}", v * 1e3));
    let ratio = |r: Option<f64>, o: f64| r.map_or("-".to_string(), |r| format!("{:.2}", r / o));
    println!("{:<34} {:>10} {:>10} {:>11}", "", "ours ms", "torch ms", "torch/ours");
    println!(
        "{:<34} {:>10.0} {:>10} {:>11}",
        "per frame",
        per_frame * 1e3,
        fmt(rf),
        ratio(rf, per_frame)
    );
    println!(
        "{:<34} {:>10.0} {:>10} {:>11}",
        "source preparation (once)",
        prepare * 1e3,
        fmt(rp),
        ratio(rp, prepare)
    );
    let calls_frames = a.frames.div_ceil(a.batch_size.max(1)) * a.batch_size.max(1);
    let total: f64 = per_frame * calls_frames as f64;
    println!("where our per-frame time goes (ms per frame, share):");
    let mut accounted = 0.0;
    for (op, calls, secs) in &profile {
        accounted += secs;
        println!(
            "  {op:<28} {:>8.1} {:>6.1}%  ({} calls)",
            secs / calls_frames as f64 * 1e3,
            secs / total * 100.0,
            calls / calls_frames as u64
        );
    }
    println!(
        "  {:<28} {:>8.1} {:>6.1}%",
        "other (candle element-wise, copies)",
        (total - accounted) / calls_frames as f64 * 1e3,
        (total - accounted) / total * 100.0
    );
    Ok(())
}
