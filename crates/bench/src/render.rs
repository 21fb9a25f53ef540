//! The renderer benchmark: ms per frame at 256 or 512, ours vs the reference's
//! `make_animation` loop in the same run, and where our time goes per op.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;

use anyhow::Context;
use candle_core::{Device, Tensor};
use sadtalker_checkpoint::{Checkpoint, InMemory, Layered, Recipe, Weights};
use sadtalker_gpu::{DeviceKind, context};
use sadtalker_ops::Precision;
use sadtalker_ops::Resize;
use sadtalker_ops::isa::{self, Isa};
use sadtalker_render::{DrivingFrame, FaceRenderConfig, FaceRenderer, PreparedSource};
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
    /// Cap our kernels at this level (as `SADTALKER_ISA` does); the reference is pinned to the
    /// same level (`ATEN_CPU_CAPABILITY`, `ONEDNN_MAX_CPU_ISA`) whenever ours is below the CPU's.
    #[arg(long, value_parser = parse_isa)]
    pub isa: Option<Isa>,
    /// Where our convolutions run: cpu, or a GPU (auto, vulkan, metal; see `sadtalker doctor`).
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: BenchDevice,
    /// Where the reference runs: cpu, or cuda (torch CUDA, for the GPU comparison).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub reference_device: String,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// `--device`: the CPU kernels or a GPU of the wgpu backend.
#[derive(Clone, Copy, Debug)]
pub enum BenchDevice {
    Cpu,
    Gpu(DeviceKind),
}

impl BenchDevice {
    /// The GPU, opened (once per process), or `None` for the CPU.
    pub fn open(self) -> anyhow::Result<Option<sadtalker_gpu::Device>> {
        match self {
            BenchDevice::Cpu => Ok(None),
            BenchDevice::Gpu(kind) => Ok(Some(context::shared(kind).with_context(|| format!("--device {kind}"))?)),
        }
    }
}

pub(crate) fn parse_device(s: &str) -> Result<BenchDevice, String> {
    match s {
        "cpu" => Ok(BenchDevice::Cpu),
        other => other.parse().map(BenchDevice::Gpu),
    }
}

fn parse_isa(s: &str) -> Result<Isa, String> {
    Isa::parse(s).ok_or_else(|| format!("unknown level {s:?}: use avx512, avx2 or generic"))
}

/// What one run measured (seconds; `ratio` = reference / ours, > 1: we are faster).
#[derive(serde::Serialize)]
struct Figures {
    size: usize,
    frames: usize,
    batch_size: usize,
    threads: usize,
    clock: crate::Clock,
    precision: &'static str,
    /// PSNR of our frames against our own fp32 frames, when `precision` is not fp32.
    #[serde(skip_serializing_if = "Option::is_none")]
    psnr_vs_fp32_db: Option<f64>,
    isa: &'static str,
    /// `cpu`, or the GPU's API (`vulkan`, `metal`).
    device: &'static str,
    /// The CPU's kernel level or the GPU adapter's name.
    device_name: String,
    /// Where the reference ran (`cpu`, `cuda`).
    reference_device: String,
    /// PSNR of our frames on the GPU against our CPU fp32 frames, when `device` is not the CPU.
    #[serde(skip_serializing_if = "Option::is_none")]
    psnr_vs_cpu_db: Option<f64>,
    per_frame_s: f64,
    reference_per_frame_s: Option<f64>,
    ratio: Option<f64>,
    prepare_s: f64,
    prepare_cold_s: f64,
    reference_prepare_s: Option<f64>,
    prepare_ratio: Option<f64>,
    profile: Vec<ProfileRow>,
    /// The warm source preparation's breakdown (`ms_per_frame`: ms in the one preparation).
    prepare_profile: Vec<ProfileRow>,
    /// The frames' convolutions by shape and kernel, slowest first.
    conv_shapes: Vec<ProfileRow>,
}

/// One op of our per-frame time.
#[derive(serde::Serialize)]
struct ProfileRow {
    op: String,
    calls_per_frame: u64,
    ms_per_frame: f64,
    share: f64,
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

/// Our side of one run.
struct Ours {
    /// The first source preparation (it also builds the encoder layers' weight layouts).
    prepare_cold: f64,
    /// A second, warm preparation.
    prepare: f64,
    /// Per frame, warm.
    per_frame: f64,
    /// Where the warm preparation's time went.
    prepare_profile: Vec<ProfileRow>,
    /// Where the frames' time went, per frame.
    frame_profile: Vec<ProfileRow>,
    /// The frames' convolutions by shape and kernel, per frame.
    conv_shapes: Vec<ProfileRow>,
    /// PSNR of the last batch against the same batch on the CPU (device ≠ cpu).
    psnr_vs_cpu_db: Option<f64>,
    /// PSNR of the last batch against the same batch rendered in fp32 (precision ≠ fp32).
    psnr_vs_fp32_db: Option<f64>,
}

/// PSNR in dB of two `[0, 1]` image tensors of one shape (values clamped to [0, 1], peak 1).
fn psnr(a: &Tensor, b: &Tensor) -> anyhow::Result<f64> {
    let clamp = |t: &Tensor| -> anyhow::Result<Vec<f32>> { Ok(t.clamp(0f32, 1f32)?.flatten_all()?.to_vec1::<f32>()?) };
    let (a, b) = (clamp(a)?, clamp(b)?);
    anyhow::ensure!(a.len() == b.len() && !a.is_empty(), "frames of different sizes");
    let mse = a.iter().zip(&b).map(|(x, y)| ((x - y) as f64).powi(2)).sum::<f64>() / a.len() as f64;
    Ok(10.0 * (1.0 / mse.max(1e-20)).log10())
}

fn profile_clock(clock: crate::Clock) {
    sadtalker_ops::profile::enable(match clock {
        crate::Clock::Wall => || crate::Clock::Wall.now(),
        crate::Clock::Cpu => || crate::Clock::Cpu.now(),
    });
}

/// The profile collected since [`profile_clock`], per unit (`units` frames, or 1 preparation)
/// of `total` seconds, with the unaccounted rest as a last row.
fn profile_rows(total: f64, units: usize) -> Vec<ProfileRow> {
    let profile = sadtalker_ops::profile::report();
    let per = units.max(1) as f64;
    let mut rows: Vec<ProfileRow> = profile
        .iter()
        .map(|(op, calls, secs)| ProfileRow {
            op: op.to_string(),
            calls_per_frame: calls / units.max(1) as u64,
            ms_per_frame: secs / per * 1e3,
            share: secs / total,
        })
        .collect();
    let accounted: f64 = profile.iter().map(|(_, _, s)| s).sum();
    rows.push(ProfileRow {
        op: "other (candle element-wise, copies)".into(),
        calls_per_frame: 0,
        ms_per_frame: (total - accounted) / per * 1e3,
        share: (total - accounted) / total,
    });
    rows
}

/// The convolutions' share of the profile since [`profile_clock`], by shape and kernel, per
/// unit as [`profile_rows`].
fn conv_shape_rows(total: f64, units: usize) -> Vec<ProfileRow> {
    let per = units.max(1);
    sadtalker_ops::profile::report_detail()
        .into_iter()
        .map(|(op, calls, secs)| ProfileRow {
            op,
            calls_per_frame: calls / per as u64,
            ms_per_frame: secs / per as f64 * 1e3,
            share: secs / total,
        })
        .collect()
}

fn time_ours(a: &RenderArgs, precision: Precision, gpu: Option<&sadtalker_gpu::Device>) -> anyhow::Result<Ours> {
    let inp = inputs(a.size)?;
    let cfg = FaceRenderConfig::official(false);
    let renderer = FaceRenderer::load(&inp.weights, &inp.weights, &cfg)?;
    let clock = a.common.clock;
    let frame = DrivingFrame {
        semantics: inp.driving.clone(),
        yaw: None,
        pitch: None,
        roll: None,
    };
    let batch = vec![frame; a.batch_size.max(1)];
    // As `sadtalker_pipeline::frames::render_frames` runs them: the source preparation in fp32,
    // the frames at `precision`.
    // On `gpu` when given, as `sadtalker_pipeline::Compute::run` does.
    let render = |src: &PreparedSource| {
        context::with(gpu, || {
            sadtalker_ops::precision::with(precision, || renderer.render(src, &batch))
        })
    };
    let s = clock.now();
    context::with(gpu, || renderer.prepare(&inp.image, &inp.source))?;
    let prepare_cold = clock.now() - s;
    profile_clock(clock);
    let s = clock.now();
    let src = context::with(gpu, || renderer.prepare(&inp.image, &inp.source))?;
    let prepare = clock.now() - s;
    let prepare_profile = profile_rows(prepare, 1);
    // The fp32 CPU frames a reduced precision or another device is compared with (this also
    // builds the fp32 layouts, as a bf16 run's GFPGAN or source preparation would).
    let reference_frames = match (precision, gpu) {
        (Precision::Fp32, None) => None,
        _ => Some(renderer.render(&src, &batch)?),
    };
    // Warm-up: layers build their cached weight layouts (packed panels, Winograd transforms).
    let mut last = render(&src)?;
    profile_clock(clock);
    let s = clock.now();
    let calls = a.frames.div_ceil(batch.len());
    for _ in 0..calls {
        last = render(&src)?;
    }
    let elapsed = clock.now() - s;
    let frames = calls * batch.len();
    let psnr_ref = reference_frames.map(|f| psnr(&last, &f)).transpose()?;
    Ok(Ours {
        psnr_vs_fp32_db: psnr_ref.filter(|_| precision != Precision::Fp32),
        psnr_vs_cpu_db: psnr_ref.filter(|_| gpu.is_some()),
        prepare_cold,
        prepare,
        per_frame: elapsed / frames as f64,
        prepare_profile,
        frame_profile: profile_rows(elapsed, frames),
        conv_shapes: conv_shape_rows(elapsed, frames),
    })
}

fn time_reference(a: &RenderArgs) -> Option<Value> {
    let py = a.common.python()?;
    let script = repo_path("tools/reference/bench_render.py");
    let threads = a.common.threads.unwrap_or_else(rayon::current_num_threads);
    let req = json!({"size": a.size, "frames": a.frames, "batch_size": a.batch_size, "threads": threads,
                     "clock": a.common.clock, "device": a.reference_device});
    let mut cmd = Command::new(&py);
    // The same instruction set on both sides.
    cmd.envs(isa::torch_pin_env().iter().copied());
    let mut child = cmd
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
    if let Some(level) = a.isa {
        isa::set_ceiling(level);
    }
    let threads = a.common.threads.unwrap_or_else(rayon::current_num_threads);
    let precision = a.common.precision();
    let gpu = a.device.open()?;
    if gpu.is_some() && precision != Precision::Fp32 {
        anyhow::bail!("--precision {precision} runs on the CPU only: the GPU kernels are fp32");
    }
    let ours = time_ours(a, precision, gpu.as_ref()).context("running our renderer")?;
    let reference = time_reference(a);
    let rf = reference.as_ref().and_then(|r| r["per_frame_s"].as_f64());
    let rp = reference.as_ref().and_then(|r| r["prepare_s"].as_f64());
    let (per_frame, prepare) = (ours.per_frame, ours.prepare);
    let fig = Figures {
        size: a.size,
        frames: a.frames,
        batch_size: a.batch_size,
        threads,
        clock: a.common.clock,
        precision: precision.name(),
        psnr_vs_fp32_db: ours.psnr_vs_fp32_db,
        isa: isa::active().name(),
        device: gpu.as_ref().map_or("cpu", |g| g.info().backend),
        device_name: gpu
            .as_ref()
            .map_or_else(|| format!("cpu ({})", isa::active().name()), |g| g.info().name.clone()),
        reference_device: a.reference_device.clone(),
        psnr_vs_cpu_db: ours.psnr_vs_cpu_db,
        per_frame_s: per_frame,
        reference_per_frame_s: rf,
        ratio: rf.map(|r| r / per_frame),
        prepare_s: prepare,
        prepare_cold_s: ours.prepare_cold,
        reference_prepare_s: rp,
        prepare_ratio: rp.map(|r| r / prepare),
        profile: ours.frame_profile,
        prepare_profile: ours.prepare_profile,
        conv_shapes: ours.conv_shapes,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&fig)?);
    } else {
        print_tables(&fig);
    }
    Ok(())
}

fn print_tables(f: &Figures) {
    println!(
        "renderer at {0}x{0}, {1} frames, batch {2}, {3} threads, {4} kernels, {5}, on {6}; reference on {7}",
        f.size, f.frames, f.batch_size, f.threads, f.isa, f.precision, f.device_name, f.reference_device
    );
    if let Some(db) = f.psnr_vs_cpu_db {
        println!("frames {db:.1} dB PSNR against our CPU fp32 frames");
    }
    let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.0}", v * 1e3));
    let ratio = |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{r:.2}"));
    println!("{:<34} {:>10} {:>10} {:>11}", "", "ours ms", "torch ms", "torch/ours");
    println!(
        "{:<34} {:>10.0} {:>10} {:>11}",
        "per frame",
        f.per_frame_s * 1e3,
        ms(f.reference_per_frame_s),
        ratio(f.ratio)
    );
    println!(
        "{:<34} {:>10.0} {:>10} {:>11}",
        "source preparation (once, warm)",
        f.prepare_s * 1e3,
        ms(f.reference_prepare_s),
        ratio(f.prepare_ratio)
    );
    println!(
        "{:<34} {:>10.0}",
        "  first call (builds weight layouts)",
        f.prepare_cold_s * 1e3
    );
    if let Some(db) = f.psnr_vs_fp32_db {
        println!("{:<34} {:>10.1} dB", "frames vs our fp32 frames (PSNR)", db);
    }
    println!("where our per-frame time goes (ms per frame, share):");
    print_profile(&f.profile);
    println!("where the warm source preparation's time goes (ms, share):");
    print_profile(&f.prepare_profile);
    println!("the per-frame convolutions by shape and kernel (ms per frame, share):");
    print_profile(&f.conv_shapes);
}

fn print_profile(rows: &[ProfileRow]) {
    for r in rows {
        let calls = if r.calls_per_frame > 0 {
            format!("  ({} calls)", r.calls_per_frame)
        } else {
            String::new()
        };
        println!(
            "  {:<28} {:>8.1} {:>6.1}%{calls}",
            r.op,
            r.ms_per_frame,
            r.share * 100.0
        );
    }
}
