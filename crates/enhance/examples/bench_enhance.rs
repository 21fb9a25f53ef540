//! Milliseconds per frame of the face enhancer, ours and the reference's (gfpgan's `GFPGANer.enhance`,
//! PyTorch) in the same run, with the official-size networks on the same recipe weights and the same input:
//! the 256×256 astronaut (`fixtures/preprocess/astronaut.png`) in, a 512×512 frame out, one face restored.
//!
//! ```text
//! cargo run --release -p sadtalker-enhance --example bench_enhance -- [--repeat N] [--threads T] [--python PATH]
//! ```
//!
//! RetinaFace with recipe weights finds no face, so on both sides it runs on the frame and its result is
//! then replaced by one fixed face (`BENCH_LANDMARKS`, the same as `tools/reference/bench_enhance.py`):
//! the timing covers detection, alignment, GFPGAN, ParseNet and pasting. Both the best wall time and the
//! best process CPU time (all threads) of N runs are printed; on a shared machine the CPU time is the
//! steadier figure. Ratio = reference / ours (> 1: we are faster). The reference side runs with the
//! reference venv's Python (`--python`, else `$SADTALKER_REF_PYTHON`, else `~/.cache/sadtalker-reference/bin/python`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_enhance::gfpganer::enhance_with;
use sadtalker_enhance::{GFPGANer, GFPGANv1Clean, GfpganConfig, ParseNet, ParseNetConfig};
use sadtalker_preprocess::detect::{Detection, RetinaFace};

const BENCH_LANDMARKS: [[f32; 2]; 5] = [
    [108.07, 76.8],
    [144.73, 74.27],
    [127.93, 94.93],
    [112.47, 114.53],
    [142.47, 112.53],
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Process CPU time (user + system, all threads) in ms, from `/proc/self/stat` (Linux; clock ticks of
/// 10 ms); `None` elsewhere.
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 10.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let repeat: usize = opt("--repeat").map_or(Ok(3), |v| v.parse())?;
    let threads: Option<usize> = opt("--threads").map(|v| v.parse()).transpose()?;
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    let python = sadtalker_parity::reference_python(opt("--python").map(std::path::PathBuf::from));

    let dev = Device::Cpu;
    let frame = image::open(root().join("fixtures/preprocess/astronaut.png"))?.to_rgb8();
    let gfpgan = GFPGANv1Clean::load(
        &Weights::from_recipe(Recipe::new(0).with_gain(3f64.sqrt()), &dev),
        &GfpganConfig::v1_4(),
    )?;
    let parser = ParseNet::load(
        &Weights::from_recipe(Recipe::new(0).with_gain(2f64.sqrt()), &dev),
        &ParseNetConfig::facexlib(),
    )?;
    let detector = RetinaFace::load_from_checkpoint(&Weights::from_recipe(Recipe::default(), &dev))?;
    let enhancer = GFPGANer::new(gfpgan, parser, detector, &dev, 0);
    let lm = BENCH_LANDMARKS;
    let (xs, ys) = (lm.map(|p| p[0]), lm.map(|p| p[1]));
    let fixed = [Detection {
        bbox: [
            xs.iter().copied().fold(f32::MAX, f32::min) - 8.0,
            ys.iter().copied().fold(f32::MAX, f32::min) - 8.0,
            xs.iter().copied().fold(f32::MIN, f32::max) + 8.0,
            ys.iter().copied().fold(f32::MIN, f32::max) + 8.0,
        ],
        score: 0.999,
        landmarks: lm.as_flattened().try_into()?,
    }];
    let once = || -> Result<(), Box<dyn std::error::Error>> {
        let _ = enhancer.detect(&frame)?;
        let out = enhance_with(
            &enhancer.face_helper,
            &frame,
            &fixed,
            &mut |k, crop| enhancer.restore_face(crop, 0, k),
            &mut |face| enhancer.parse_face(face),
        )?;
        assert_eq!((out.faces_restored, out.image.dimensions()), (1, (512, 512)));
        Ok(())
    };
    once()?;
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    for _ in 0..repeat {
        let (t, c) = (Instant::now(), cpu_ms());
        once()?;
        wall = wall.min(t.elapsed().as_secs_f64() * 1000.0);
        if let (Some(c0), Some(c1)) = (c, cpu_ms()) {
            cpu = cpu.min(c1 - c0);
        }
    }

    // Where our time goes (one run each, wall ms).
    let crop = enhancer.face_helper.align_warp_face(
        &frame,
        &enhancer
            .face_helper
            .affine_matrix(&[lm[0], lm[1], lm[2], lm[3], lm[4]])
            .ok_or("no affine")?,
    );
    let t = Instant::now();
    let _ = enhancer.detect(&frame)?;
    let detect_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let restored = enhancer.restore_face(&crop, 0, 0)?;
    let gfpgan_ms = t.elapsed().as_secs_f64() * 1000.0;
    let t = Instant::now();
    let labels = enhancer.parse_face(&restored)?;
    let parse_ms = t.elapsed().as_secs_f64() * 1000.0;
    let helper = &enhancer.face_helper;
    let affine = helper
        .affine_matrix(&[lm[0], lm[1], lm[2], lm[3], lm[4]])
        .ok_or("no affine")?;
    let t = Instant::now();
    let _ = helper.align_warp_face(&frame, &affine);
    let paste = [sadtalker_enhance::face_restoration_helper::PasteFace {
        restored: &restored,
        inverse_affine: helper.get_inverse_affine(&affine),
        parse: &labels,
    }];
    let _ = helper.paste_faces_to_input_image(&frame, &paste)?;
    let warp_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "ours by stage (ms, one run each): detect {detect_ms:.0}, GFPGAN {gfpgan_ms:.0}, ParseNet {parse_ms:.0}, \
         align + paste {warp_ms:.0}"
    );

    let reference = match &python {
        Some(py) => sadtalker_parity::reference_bench(py, "bench_enhance.py", repeat, threads),
        None => {
            eprintln!("no reference venv (--python, $SADTALKER_REF_PYTHON or ~/.cache/sadtalker-reference); ours only");
            None
        }
    };
    println!(
        "GFPGANer.enhance, 256x256 frame -> 512x512, one face, best of {repeat} (threads: ours {}, reference {})",
        rayon::current_num_threads(),
        reference.as_ref().map_or("-".into(), |r| r["threads"].to_string())
    );
    println!(
        "{:<14} {:>10} {:>14} {:>8}",
        "ms per frame", "ours", "reference", "ratio"
    );
    for (label, ours, key) in [("wall", wall, "wall_ms"), ("cpu", cpu, "cpu_ms")] {
        match reference.as_ref().and_then(|r| r[key].as_f64()) {
            Some(r) => println!("{label:<14} {ours:>10.0} {r:>14.0} {:>8.2}", r / ours),
            None => println!("{label:<14} {ours:>10.0} {:>14} {:>8}", "-", "-"),
        }
    }
    Ok(())
}
