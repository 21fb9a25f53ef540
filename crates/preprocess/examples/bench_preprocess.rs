//! Milliseconds per image for detection, landmarks and 3DMM reconstruction, ours and the reference's
//! (PyTorch, same recipe weights, same inputs) in the same run:
//!
//! ```text
//! cargo run --release -p sadtalker-preprocess --example bench_preprocess -- [--repeat N] [--threads T] [--python PATH]
//! ```
//!
//! The reference side runs `tools/reference/bench_preprocess.py` with the reference venv's Python
//! (`--python`, else `$SADTALKER_REF_PYTHON`, else `~/.cache/sadtalker-reference/bin/python`); without one only our
//! timings are printed. Ratio = reference / ours (> 1: we are faster).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_preprocess::detect::RetinaFace;
use sadtalker_preprocess::landmarks::Fan;
use sadtalker_preprocess::recon::ReconNet;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn median_ms(repeat: usize, mut f: impl FnMut()) -> f64 {
    f();
    f();
    let mut t: Vec<f64> = (0..repeat)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let repeat: usize = opt("--repeat").map_or(Ok(5), |v| v.parse())?;
    let threads: Option<usize> = opt("--threads").map(|v| v.parse()).transpose()?;
    if let Some(t) = threads {
        rayon::ThreadPoolBuilder::new().num_threads(t).build_global()?;
    }
    let python = sadtalker_parity::reference_python(opt("--python").map(std::path::PathBuf::from));

    let dev = Device::Cpu;
    let astro = image::open(root().join("fixtures/preprocess/astronaut.png"))?.to_rgb8();
    let crop = image::imageops::crop_imm(&astro, 58, 20, 92, 98).to_image();
    let aligned = image::open(root().join("fixtures/preprocess/align_astronaut.png"))?.to_rgb8();
    let w0 = Weights::from_recipe(Recipe::default(), &dev);
    let det = RetinaFace::load_from_checkpoint(&w0)?;
    let fan = Fan::load_from_checkpoint(&Weights::from_recipe(Recipe::new(1), &dev))?;
    let rec = ReconNet::load_from_checkpoint(&w0)?;
    let mut ours = Vec::new();
    ours.push((
        "detect",
        median_ms(repeat, || {
            let _ = det.detect_faces(&astro, false, 0.97, &dev);
        }),
    ));
    ours.push((
        "landmarks",
        median_ms(repeat, || {
            let _ = fan.get_landmarks(&crop, &dev);
        }),
    ));
    let x: Vec<f32> = (0..3)
        .flat_map(|c| {
            aligned
                .pixels()
                .map(move |p| (f64::from(p.0[c]) / 255.0) as f32)
                .collect::<Vec<_>>()
        })
        .collect();
    let x = Tensor::from_vec(x, (1, 3, 224, 224), &dev)?;
    ours.push((
        "recon",
        median_ms(repeat, || {
            let _ = rec.forward(&x);
        }),
    ));

    let reference = match &python {
        Some(py) => sadtalker_parity::reference_bench(py, "bench_preprocess.py", repeat, threads, &[]),
        None => {
            eprintln!("no reference venv (--python, $SADTALKER_REF_PYTHON or ~/.cache/sadtalker-reference); ours only");
            None
        }
    };
    println!(
        "{:<10} {:>10} {:>14} {:>8}",
        "stage", "ours ms", "reference ms", "ratio"
    );
    for (name, ms) in ours {
        match reference.as_ref().and_then(|r| r[name].as_f64()) {
            Some(r) => println!("{name:<10} {ms:>10.1} {r:>14.1} {:>8.2}", r / ms),
            None => println!("{name:<10} {ms:>10.1} {:>14} {:>8}", "-", "-"),
        }
    }
    Ok(())
}
