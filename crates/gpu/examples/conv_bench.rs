//! The device conv kernel on the renderer's and enhancers' typical layer shapes: milliseconds and
//! GFLOP/s per layer, median of `--repeat` runs after one warm-up, with a read-back of one value to
//! wait for the device. For tuning the kernel on real GPUs (`tools/gpu/run-on-gpu.sh` runs it).
//!
//!   cargo run --release -p sadtalker-gpu --example conv_bench -- [--device vulkan] [--repeat 5] [--json]

use std::time::Instant;

use sadtalker_gpu::{ConvParams, Device, DeviceKind, GpuTensor};

/// (name, batch, cin, cout, spatial input dims, kernel, stride, padding).
type Shape = (
    &'static str,
    usize,
    usize,
    usize,
    &'static [usize],
    &'static [usize],
    usize,
    usize,
);

const SHAPES: &[Shape] = &[
    ("decoder 3x3 64->64 @256²", 1, 64, 64, &[256, 256], &[3, 3], 1, 1),
    ("decoder 3x3 256->256 @64²", 1, 256, 256, &[64, 64], &[3, 3], 1, 1),
    ("encoder 3x3 128->256 s2 @128²", 1, 128, 256, &[128, 128], &[3, 3], 2, 1),
    ("1x1 512->512 @64²", 1, 512, 512, &[64, 64], &[1, 1], 1, 0),
    (
        "hourglass 3x3x3 32->64 @16x64²",
        1,
        32,
        64,
        &[16, 64, 64],
        &[3, 3, 3],
        1,
        1,
    ),
    (
        "hourglass 3x3x3 512->256 @2x8²",
        1,
        512,
        256,
        &[2, 8, 8],
        &[3, 3, 3],
        1,
        1,
    ),
    ("stylegan 3x3 64->64 @512²", 1, 64, 64, &[512, 512], &[3, 3], 1, 1),
];

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: first thing in main, before any thread exists.
    unsafe { sadtalker_gpu::quiet_headless_vulkan() };
    let kind: DeviceKind = arg("--device").unwrap_or_else(|| "vulkan".into()).parse()?;
    let repeat: usize = arg("--repeat").map_or(Ok(5), |r| r.parse())?;
    let json = std::env::args().any(|a| a == "--json");
    let dev = Device::open(kind)?;
    if !json {
        println!("device: {}", dev.info());
    }
    let mut rows = Vec::new();
    for &(name, n, cin, cout, sp, k, s, p) in SHAPES {
        let mut xd = vec![n, cin];
        xd.extend_from_slice(sp);
        let mut wd = vec![cout, cin];
        wd.extend_from_slice(k);
        let fill = |len: usize, seed: u32| -> Vec<f32> {
            (0..len)
                .map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 8) as f32 / 16777216.0 - 0.5)
                .collect()
        };
        let x = GpuTensor::from_slice(&dev, &fill(xd.iter().product(), 1), &xd)?;
        let w = GpuTensor::from_slice(&dev, &fill(wd.iter().product(), 2), &wd)?;
        let run = || -> sadtalker_gpu::Result<GpuTensor> {
            match sp.len() {
                2 => sadtalker_gpu::conv2d(&x, &w, None, ConvParams::padding(p).with_stride(s)),
                _ => sadtalker_gpu::conv3d(&x, &w, None, ConvParams::padding(p).with_stride(s)),
            }
        };
        let y = run()?;
        dev.synchronize()?;
        let mut times = Vec::with_capacity(repeat);
        for _ in 0..repeat {
            let t = Instant::now();
            let y = run()?;
            dev.synchronize()?;
            times.push(t.elapsed().as_secs_f64());
            drop(y);
        }
        times.sort_by(f64::total_cmp);
        let ms = times[times.len() / 2] * 1e3;
        let out: usize = y.dims().iter().product();
        let flops = 2.0 * out as f64 * (cin * k.iter().product::<usize>()) as f64;
        let gflops = flops / (ms * 1e-3) / 1e9;
        if !json {
            println!("{name:<34} {ms:9.2} ms {gflops:8.1} GFLOP/s");
        }
        rows.push(format!(r#"{{"layer":"{name}","ms":{ms:.3},"gflops":{gflops:.1}}}"#));
    }
    if json {
        println!(r#"{{"device":"{}","layers":[{}]}}"#, dev.info().name, rows.join(","));
    }
    Ok(())
}
