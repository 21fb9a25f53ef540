//! The face-enhancer benchmark: ms per frame of `GFPGANer.enhance` as SadTalker calls it (upscale
//! 2, arch 'clean', paste back, ParseNet mask), ours against gfpgan's in the same run, with the
//! official-size GFPGANv1Clean, ParseNet and RetinaFace on the same recipe weights and the same
//! input: the 256×256 astronaut (`fixtures/preprocess/astronaut.png`) in, a 512×512 frame out,
//! one face restored. The reference side is `tools/reference/bench_enhance.py`.
//!
//! RetinaFace with recipe weights finds no face, so on both sides it runs on the frame and its
//! result is then replaced by one fixed face (`BENCH_LANDMARKS`, the same in the script): the
//! timing covers detection, alignment, GFPGAN, ParseNet and pasting.

use anyhow::Context;
use candle_core::Device;
use image::RgbImage;
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_enhance::face_restoration_helper::PasteFace;
use sadtalker_enhance::gfpganer::enhance_with;
use sadtalker_enhance::{GFPGANer, GFPGANv1Clean, GfpganConfig, ParseNet, ParseNetConfig};
use sadtalker_gpu::context;
use sadtalker_preprocess::detect::{Detection, RetinaFace};
use serde_json::Value;

use crate::render::BenchDevice;
use crate::{Clock, Common, Stat, repo_path};

/// The five landmarks of the one face both sides restore (as `bench_enhance.py`'s).
const BENCH_LANDMARKS: [[f32; 2]; 5] = [
    [108.07, 76.8],
    [144.73, 74.27],
    [127.93, 94.93],
    [112.47, 114.53],
    [142.47, 112.53],
];

/// Options of `sadtalker-bench enhance`.
#[derive(clap::Args, Clone)]
pub struct EnhanceArgs {
    #[command(flatten)]
    pub common: Common,
    /// Where our networks run: cpu, or a GPU (auto, vulkan, metal; see `sadtalker doctor`).
    #[arg(long, default_value = "cpu", value_parser = crate::render::parse_device)]
    pub device: BenchDevice,
    /// Where the reference runs: cpu, or cuda (torch CUDA, for the GPU comparison).
    #[arg(long, default_value = "cpu", value_parser = ["cpu", "cuda"])]
    pub reference_device: String,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// What `--json` prints.
#[derive(serde::Serialize)]
struct Figures {
    threads: usize,
    clock: Clock,
    stat: Stat,
    device: &'static str,
    device_name: String,
    reference_device: String,
    /// Seconds per 512×512 output frame, ours.
    per_frame_s: f64,
    reference_per_frame_s: Option<f64>,
    /// reference / ours (> 1: we are faster).
    ratio: Option<f64>,
    /// PSNR of the frame made on the GPU against the CPU's (device ≠ cpu).
    psnr_vs_cpu_db: Option<f64>,
    /// One run of each stage.
    stages: Stages,
}

/// Milliseconds of one run of each stage of a frame.
#[derive(serde::Serialize, Clone, Copy)]
struct Stages {
    detect_ms: f64,
    gfpgan_ms: f64,
    parsenet_ms: f64,
    align_paste_ms: f64,
}

/// Our enhancer on recipe weights, with the fixed face.
struct Bench {
    enhancer: GFPGANer,
    frame: RgbImage,
    face: [Detection; 1],
}

impl Bench {
    fn load() -> anyhow::Result<Self> {
        let dev = Device::Cpu;
        let path = repo_path("fixtures/preprocess/astronaut.png");
        let frame = image::open(&path)
            .with_context(|| format!("reading {} (run from the repository root)", path.display()))?
            .to_rgb8();
        // The gains of tools/reference/gen_enhance_goldens.py (GAIN_GFPGAN, GAIN_PARSE).
        let gfpgan = GFPGANv1Clean::load(
            &Weights::from_recipe(Recipe::new(0).with_gain(3f64.sqrt()), &dev),
            &GfpganConfig::v1_4(),
        )?;
        let parser = ParseNet::load(
            &Weights::from_recipe(Recipe::new(0).with_gain(2f64.sqrt()), &dev),
            &ParseNetConfig::facexlib(),
        )?;
        let detector = RetinaFace::load_from_checkpoint(&Weights::from_recipe(Recipe::default(), &dev))?;
        let (xs, ys) = (BENCH_LANDMARKS.map(|p| p[0]), BENCH_LANDMARKS.map(|p| p[1]));
        let (lo, hi) = (
            |v: [f32; 5]| v.into_iter().fold(f32::MAX, f32::min),
            |v: [f32; 5]| v.into_iter().fold(f32::MIN, f32::max),
        );
        let face = [Detection {
            bbox: [lo(xs) - 8.0, lo(ys) - 8.0, hi(xs) + 8.0, hi(ys) + 8.0],
            score: 0.999,
            landmarks: BENCH_LANDMARKS.as_flattened().try_into()?,
        }];
        Ok(Self {
            enhancer: GFPGANer::new(gfpgan, parser, detector, &dev, 0),
            frame,
            face,
        })
    }

    /// One frame as `GFPGANer.enhance` makes it: detection (its result replaced), then the face.
    fn frame(&self) -> anyhow::Result<RgbImage> {
        let _ = self.enhancer.detect(&self.frame)?;
        let out = enhance_with(
            &self.enhancer.face_helper,
            &self.frame,
            &self.face,
            &mut |k, crop| self.enhancer.restore_face(crop, 0, k),
            &mut |face| self.enhancer.parse_face(face),
        )?;
        anyhow::ensure!(
            (out.faces_restored, out.image.dimensions()) == (1, (512, 512)),
            "expected one face restored into a 512×512 frame"
        );
        Ok(out.image)
    }

    /// One run of each stage, ms on `clock`.
    fn stages(&self, clock: Clock) -> anyhow::Result<Stages> {
        let helper = &self.enhancer.face_helper;
        let affine = helper
            .affine_matrix(&BENCH_LANDMARKS)
            .context("no affine for the bench face")?;
        let crop = helper.align_warp_face(&self.frame, &affine);
        let ms = |s: f64| (clock.now() - s) * 1e3;
        let s = clock.now();
        let _ = self.enhancer.detect(&self.frame)?;
        let detect = ms(s);
        let s = clock.now();
        let restored = self.enhancer.restore_face(&crop, 0, 0)?;
        let gfpgan = ms(s);
        let s = clock.now();
        let labels = self.enhancer.parse_face(&restored)?;
        let parse = ms(s);
        let s = clock.now();
        let _ = helper.align_warp_face(&self.frame, &affine);
        let paste = [PasteFace {
            restored: &restored,
            inverse_affine: helper.get_inverse_affine(&affine),
            parse: &labels,
        }];
        let _ = helper.paste_faces_to_input_image(&self.frame, &paste)?;
        Ok(Stages {
            detect_ms: detect,
            gfpgan_ms: gfpgan,
            parsenet_ms: parse,
            align_paste_ms: ms(s),
        })
    }
}

/// PSNR of two 8-bit images (peak 255).
fn psnr_u8(a: &RgbImage, b: &RgbImage) -> anyhow::Result<f64> {
    anyhow::ensure!(a.dimensions() == b.dimensions(), "frames of different sizes");
    let n = a.as_raw().len().max(1) as f64;
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / n;
    Ok(10.0 * (255f64.powi(2) / mse.max(1e-20)).log10())
}

pub fn run(a: &EnhanceArgs) -> anyhow::Result<()> {
    let c = &a.common;
    anyhow::ensure!(
        c.precision == sadtalker_ops::Precision::Fp32 && c.filter.is_none(),
        "sadtalker-bench enhance runs fp32 and has no cases to filter: drop --precision and --filter"
    );
    let gpu = a.device.open()?;
    let bench = Bench::load().context("building the enhancer on recipe weights")?;
    let cpu_frame = gpu.is_some().then(|| bench.frame()).transpose()?;
    let on_device = || context::with(gpu.as_ref(), || bench.frame());
    // The first frame builds the weight layouts (and on a GPU uploads the weights).
    let frame = on_device()?;
    let psnr_vs_cpu_db = cpu_frame.map(|f| psnr_u8(&frame, &f)).transpose()?;
    let mut times = Vec::with_capacity(c.repeat.max(1));
    for _ in 0..c.repeat.max(1) {
        let s = c.clock.now();
        on_device()?;
        times.push(c.clock.now() - s);
    }
    times.sort_by(f64::total_cmp);
    let per_frame = match c.stat {
        Stat::Median => times[times.len() / 2],
        Stat::Min => times[0],
    };
    let stages = context::with(gpu.as_ref(), || bench.stages(c.clock))?;

    let python = c.python();
    if python.is_none() {
        eprintln!(
            "note: no reference venv (--python, $SADTALKER_REF_PYTHON or ~/.cache/sadtalker-reference); ours only"
        );
    }
    let reference = python.and_then(|py| {
        sadtalker_parity::reference_bench(
            &py,
            "bench_enhance.py",
            c.repeat.max(1),
            c.threads,
            &["--device", &a.reference_device],
        )
    });
    let key = match (c.clock, c.stat) {
        (Clock::Wall, Stat::Min) => "wall_ms",
        (Clock::Wall, Stat::Median) => "wall_ms_median",
        (Clock::Cpu, Stat::Min) => "cpu_ms",
        (Clock::Cpu, Stat::Median) => "cpu_ms_median",
    };
    let rf = reference
        .as_ref()
        .and_then(|r: &Value| r[key].as_f64())
        .map(|ms| ms / 1e3);
    let fig = Figures {
        threads: c.threads.unwrap_or_else(rayon::current_num_threads),
        clock: c.clock,
        stat: c.stat,
        device: gpu.as_ref().map_or("cpu", |g| g.info().backend),
        device_name: gpu
            .as_ref()
            .map_or_else(|| "cpu".to_string(), |g| g.info().name.clone()),
        reference_device: a.reference_device.clone(),
        per_frame_s: per_frame,
        reference_per_frame_s: rf,
        ratio: rf.map(|r| r / per_frame),
        psnr_vs_cpu_db,
        stages,
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&fig)?);
        return Ok(());
    }
    println!(
        "GFPGANer.enhance, 256x256 frame -> 512x512, one face, {} of {} ({:?} clock), {} threads, on {}; reference on {}",
        if c.stat == Stat::Min { "best" } else { "median" },
        c.repeat.max(1),
        c.clock,
        fig.threads,
        fig.device_name,
        fig.reference_device
    );
    if let Some(db) = fig.psnr_vs_cpu_db {
        println!("frame {db:.1} dB PSNR against our CPU frame");
    }
    println!(
        "{:<14} {:>10} {:>14} {:>8}",
        "ms per frame", "ours", "reference", "ratio"
    );
    let (ours, reference) = (fig.per_frame_s * 1e3, fig.reference_per_frame_s.map(|r| r * 1e3));
    match (reference, fig.ratio) {
        (Some(r), Some(q)) => println!("{:<14} {ours:>10.0} {r:>14.0} {q:>8.2}", "frame"),
        _ => println!("{:<14} {ours:>10.0} {:>14} {:>8}", "frame", "-", "-"),
    }
    let st = fig.stages;
    println!(
        "ours by stage (ms, one run each): detect {:.0}, GFPGAN {:.0}, ParseNet {:.0}, align + paste {:.0}",
        st.detect_ms, st.gfpgan_ms, st.parsenet_ms, st.align_paste_ms
    );
    Ok(())
}
