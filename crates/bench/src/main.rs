//! `sadtalker-bench`: times our kernels and, when the reference venv is present, the same
//! operations in PyTorch in the same run, and prints `torch / ours` (> 1: we are faster).
//!
//! ```text
//! cargo run --release -p sadtalker-bench -- ops [--python PATH] [--repeat 7] [--filter conv]
//! cargo run --release -p sadtalker-bench -- render [--size 256] [--device vulkan] [--json]
//! cargo run --release -p sadtalker-bench -- enhance [--device vulkan] [--reference-device cuda] [--json]
//! ```
//!
//! Speed targets live here, never as timed assertions in tests.

mod enhance;
mod ops;
mod render;

use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};
use sadtalker_ops::precision::{self, Precision};

#[derive(Parser)]
#[command(name = "sadtalker-bench", about = "Time our kernels against PyTorch in the same run")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Single tensor operations (conv2d/conv3d, grid_sample, interpolate, norms, pooling).
    Ops(Common),
    /// The face renderer per frame (256 or 512), with a per-op breakdown of our time.
    Render(render::RenderArgs),
    /// The face enhancer (GFPGAN + ParseNet + paste) per 512 frame, with its stages.
    Enhance(enhance::EnhanceArgs),
}

/// Options shared by every benchmark.
#[derive(clap::Args, Clone)]
pub struct Common {
    /// Python of the reference venv (tools/reference/bench_ops.py runs in it).
    /// Default: $SADTALKER_REF_PYTHON, else ~/.cache/sadtalker-reference/bin/python; without one, only
    /// our timings are printed.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Timed runs per case (the median is reported), after 2 warm-up runs.
    #[arg(long, default_value_t = 7)]
    repeat: usize,
    /// Run only cases whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Threads for both sides (default: all cores, as rayon and torch choose).
    #[arg(long)]
    threads: Option<usize>,
    /// Statistic reported: the median, or the minimum (steadier on a busy machine).
    #[arg(long, value_enum, default_value_t = Stat::Median)]
    stat: Stat,
    /// What is timed: wall-clock time, or the process's CPU time (steadier when other
    /// processes share the machine; compare with `--threads 1`, since idle threads that
    /// spin count as busy).
    #[arg(long, value_enum, default_value_t = Clock::Wall)]
    clock: Clock,
    /// Convolution precision: fp32, or bf16 (bf16 operands, fp32 accumulation on AMX tiles;
    /// where the CPU has none, a notice and fp32). The reference always runs fp32.
    #[arg(long, value_parser = parse_precision, default_value = "fp32")]
    precision: Precision,
}

fn parse_precision(s: &str) -> Result<Precision, String> {
    Precision::parse(s).ok_or_else(|| format!("unknown precision {s:?}: use fp32 or bf16"))
}

/// The clock timings are read from.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// Elapsed real time.
    Wall,
    /// CPU time of the whole process (all threads).
    Cpu,
}

impl Clock {
    /// Seconds on this clock (from an arbitrary origin).
    pub fn now(self) -> f64 {
        match self {
            Clock::Wall => {
                static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
                START.get_or_init(Instant::now).elapsed().as_secs_f64()
            }
            Clock::Cpu => {
                let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                // SAFETY: clock_gettime writes into the timespec we pass.
                unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
                ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
            }
        }
    }
}

/// Which statistic of the timed runs is reported.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stat {
    /// The middle run.
    Median,
    /// The fastest run.
    Min,
}

impl Common {
    /// The precision that runs for the requested one (with a notice when bf16 cannot run here).
    pub fn precision(&self) -> Precision {
        let got = precision::effective(self.precision);
        if got != self.precision
            && let Some(why) = precision::bf16_unavailable()
        {
            eprintln!("note: --precision {}: {why}; running fp32", self.precision);
        }
        got
    }

    /// The reference interpreter, if one can be found.
    pub fn python(&self) -> Option<PathBuf> {
        if let Some(p) = &self.python {
            return Some(p.clone());
        }
        sadtalker_parity::reference_python(None).filter(|p| p.exists())
    }
}

/// A file of the repository: relative to the working directory when run from the repository
/// root (also on another machine), else where the crate was built.
pub fn repo_path(rel: &str) -> PathBuf {
    let here = PathBuf::from(rel);
    if here.exists() {
        here
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
    }
}

/// Seconds of `repeat` runs of `f` (median or minimum) on `clock`, after two warm-ups.
pub fn time_runs(repeat: usize, stat: Stat, clock: Clock, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..repeat.max(1))
        .map(|_| {
            let s = clock.now();
            f();
            clock.now() - s
        })
        .collect();
    t.sort_by(f64::total_cmp);
    match stat {
        Stat::Median => t[t.len() / 2],
        Stat::Min => t[0],
    }
}

fn main() -> anyhow::Result<()> {
    // SAFETY: the first thing `main` does; no other thread exists yet.
    unsafe { sadtalker_gpu::quiet_headless_vulkan() };
    let cli = Cli::parse();
    sadtalker_ops::memory::retain_freed_memory();
    let threads = match &cli.command {
        Cmd::Ops(c) => c.threads,
        Cmd::Render(r) => r.common.threads,
        Cmd::Enhance(e) => e.common.threads,
    };
    if let Some(n) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(n).build_global()?;
    }
    match cli.command {
        Cmd::Ops(c) => ops::run(&c),
        Cmd::Render(r) => render::run(&r),
        Cmd::Enhance(e) => enhance::run(&e),
    }
}
