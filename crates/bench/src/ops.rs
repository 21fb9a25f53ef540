//! The op benchmark: the shapes SadTalker's renderer runs, ours vs PyTorch.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::Context;
use candle_core::{Device, Tensor};
use sadtalker_ops::*;
use serde_json::{Value, json};

use crate::{Clock, Common, Stat, time_runs};

/// One benchmark case: a spec both sides understand, and how we run it.
struct Case {
    name: &'static str,
    /// What the case is, for the table.
    what: &'static str,
    /// Handed to tools/reference/bench_ops.py: `op` plus shapes and parameters.
    spec: Value,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "conv2d_64_256",
            what: "conv2d 3x3 64->64 @1x64x256x256",
            spec: json!({"op": "conv2d", "input": [1, 64, 256, 256], "weight": [64, 64, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv2d_512_64",
            what: "conv2d 3x3 512->512 @1x512x64x64",
            spec: json!({"op": "conv2d", "input": [1, 512, 64, 64], "weight": [512, 512, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv2d_7x7_s2",
            what: "conv2d 7x7/2 3->64 @1x3x224x224",
            spec: json!({"op": "conv2d", "input": [1, 3, 224, 224], "weight": [64, 3, 7, 7], "padding": 3, "stride": 2}),
        },
        Case {
            name: "conv2d_1x1_256",
            what: "conv2d 1x1 256->64 @1x256x128x128",
            spec: json!({"op": "conv2d", "input": [1, 256, 128, 128], "weight": [64, 256, 1, 1], "padding": 0}),
        },
        Case {
            name: "conv3d_32_16x64",
            what: "conv3d 3x3x3 32->32 @1x32x16x64x64",
            spec: json!({"op": "conv3d", "input": [1, 32, 16, 64, 64], "weight": [32, 32, 3, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv3d_64_16x32",
            what: "conv3d 3x3x3 64->64 @1x64x16x32x32",
            spec: json!({"op": "conv3d", "input": [1, 64, 16, 32, 32], "weight": [64, 64, 3, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv3d_mask_k7",
            what: "conv3d 7x7x7 112->16 @1x112x16x64x64",
            spec: json!({"op": "conv3d", "input": [1, 112, 16, 64, 64], "weight": [16, 112, 7, 7, 7], "padding": 3}),
        },
        Case {
            name: "conv3d_112",
            what: "conv3d 3x3x3 112->112 @1x112x16x64x64",
            spec: json!({"op": "conv3d", "input": [1, 112, 16, 64, 64], "weight": [112, 112, 3, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv3d_80_64",
            what: "conv3d 3x3x3 80->64 @1x80x16x64x64",
            spec: json!({"op": "conv3d", "input": [1, 80, 16, 64, 64], "weight": [64, 80, 3, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv3d_256_64_16x32",
            what: "conv3d 3x3x3 256->64 @1x256x16x32x32",
            spec: json!({"op": "conv3d", "input": [1, 256, 16, 32, 32], "weight": [64, 256, 3, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv3d_64_128_16x32",
            what: "conv3d 3x3x3 64->128 @1x64x16x32x32",
            spec: json!({"op": "conv3d", "input": [1, 64, 16, 32, 32], "weight": [128, 64, 3, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv3d_128_32_16x64",
            what: "conv3d 3x3x3 128->32 @1x128x16x64x64",
            spec: json!({"op": "conv3d", "input": [1, 128, 16, 64, 64], "weight": [32, 128, 3, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv3d_1024_256",
            what: "conv3d 3x3x3 1024->256 @1x1024x16x8x8",
            spec: json!({"op": "conv3d", "input": [1, 1024, 16, 8, 8], "weight": [256, 1024, 3, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv2d_occlusion_7x7",
            what: "conv2d 7x7 1792->1 @1x1792x64x64 (occlusion)",
            spec: json!({"op": "conv2d", "input": [1, 1792, 64, 64], "weight": [1, 1792, 7, 7], "padding": 3}),
        },
        Case {
            name: "conv2d_spade_128_512",
            what: "conv2d 3x3 128->512 @1x128x64x64 (SPADE)",
            spec: json!({"op": "conv2d", "input": [1, 128, 64, 64], "weight": [512, 128, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv2d_spade_128_1024",
            what: "conv2d 3x3 128->1024 @1x128x64x64 (SPADE γ|β)",
            spec: json!({"op": "conv2d", "input": [1, 128, 64, 64], "weight": [1024, 128, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv2d_spade_128_512_256",
            what: "conv2d 3x3 128->512 @1x128x256x256 (SPADE)",
            spec: json!({"op": "conv2d", "input": [1, 128, 256, 256], "weight": [512, 128, 3, 3], "padding": 1}),
        },
        Case {
            name: "conv2d_spade_256_128",
            what: "conv2d 3x3 256->128 @1x256x256x256 (SPADE)",
            spec: json!({"op": "conv2d", "input": [1, 256, 256, 256], "weight": [128, 256, 3, 3], "padding": 1}),
        },
        Case {
            name: "grid_sample3d",
            what: "grid_sample 3-D (1,32,16,64,64), grid 16x64x64",
            spec: json!({"op": "grid_sample", "input": [1, 32, 16, 64, 64], "grid": [1, 16, 64, 64, 3]}),
        },
        Case {
            name: "grid_sample2d",
            what: "grid_sample 2-D (1,64,256,256), grid 256x256",
            spec: json!({"op": "grid_sample", "input": [1, 64, 256, 256], "grid": [1, 256, 256, 2]}),
        },
        Case {
            name: "upsample3d_122",
            what: "interpolate nearest (1,2,2) @1x64x16x32x32",
            spec: json!({"op": "upsample_nearest", "input": [1, 64, 16, 32, 32], "scale": [1, 2, 2]}),
        },
        Case {
            name: "batch_norm3d",
            what: "batch_norm eval @1x64x16x64x64",
            spec: json!({"op": "batch_norm", "input": [1, 64, 16, 64, 64]}),
        },
        Case {
            name: "instance_norm2d",
            what: "instance_norm @1x256x64x64",
            spec: json!({"op": "instance_norm", "input": [1, 256, 64, 64]}),
        },
        Case {
            name: "avg_pool3d_122",
            what: "avg_pool3d (1,2,2) @1x64x16x64x64",
            spec: json!({"op": "avg_pool3d", "input": [1, 64, 16, 64, 64], "kernel": [1, 2, 2]}),
        },
        Case {
            name: "softmax_heatmap",
            what: "softmax over 15x(16x64x64) heatmaps",
            spec: json!({"op": "softmax", "input": [1, 15, 65536]}),
        },
    ]
}

fn dims(v: &Value, key: &str) -> Vec<usize> {
    v[key]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_u64()).map(|x| x as usize).collect())
        .unwrap_or_default()
}

fn randn(shape: &[usize]) -> candle_core::Result<Tensor> {
    Tensor::randn(0f32, 1f32, shape, &Device::Cpu)
}

/// Times our implementation of one case.
fn time_ours(spec: &Value, repeat: usize, stat: Stat, clock: Clock) -> anyhow::Result<f64> {
    let x = randn(&dims(spec, "input"))?;
    let pad = spec["padding"].as_u64().unwrap_or(0) as usize;
    let stride = spec["stride"].as_u64().unwrap_or(1) as usize;
    let op = spec["op"].as_str().unwrap_or_default();
    let run: Box<dyn Fn() -> sadtalker_ops::Result<Tensor>> = match op {
        "conv2d" => {
            let w = (randn(&dims(spec, "weight"))? * 0.05)?;
            let b = randn(&[w.dims()[0]])?;
            let p = ConvParams::<2>::padding(pad).with_stride(stride);
            // As a layer runs it: weight layouts built once, reused by every call.
            let cache = ConvCache::default();
            Box::new(move || conv_cached(&x, &w, Some(&b), p, &cache))
        }
        "conv3d" => {
            let w = (randn(&dims(spec, "weight"))? * 0.05)?;
            let b = randn(&[w.dims()[0]])?;
            let cache = ConvCache::default();
            Box::new(move || conv_cached(&x, &w, Some(&b), ConvParams::<3>::padding(pad), &cache))
        }
        "grid_sample" => {
            let g = Tensor::rand(0f32, 1f32, dims(spec, "grid"), &Device::Cpu)?.affine(2.2, -1.1)?;
            Box::new(move || grid_sample(&x, &g, false))
        }
        "upsample_nearest" => {
            let r = Resize::Scale(
                spec["scale"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_f64())
                    .collect(),
            );
            Box::new(move || interpolate_nearest(&x, &r))
        }
        "batch_norm" => {
            let c = x.dims()[1];
            let stats = BatchNormStats {
                running_mean: randn(&[c])?,
                running_var: (randn(&[c])?.abs()? + 0.5)?,
                weight: Some(randn(&[c])?),
                bias: Some(randn(&[c])?),
            };
            Box::new(move || batch_norm(&x, &stats, 1e-5))
        }
        "instance_norm" => Box::new(move || instance_norm(&x, None, None, 1e-5)),
        "avg_pool3d" => {
            let k: [usize; 3] = dims(spec, "kernel").try_into().map_err(|_| anyhow::anyhow!("kernel"))?;
            Box::new(move || avg_pool3d(&x, k, k, [0; 3], true))
        }
        "softmax" => Box::new(move || softmax_last_dim(&x)),
        other => anyhow::bail!("unknown op {other}"),
    };
    run().with_context(|| format!("running {op}"))?;
    Ok(time_runs(repeat, stat, clock, || {
        let _ = run();
    }))
}

/// candle's own conv2d on the first case, for the backend decision in the README.
fn time_candle_conv2d(spec: &Value, repeat: usize, stat: Stat, clock: Clock) -> anyhow::Result<f64> {
    let x = randn(&dims(spec, "input"))?;
    let w = randn(&dims(spec, "weight"))?;
    let pad = spec["padding"].as_u64().unwrap_or(0) as usize;
    Ok(time_runs(repeat, stat, clock, || {
        let _ = x.conv2d(&w, pad, 1, 1, 1);
    }))
}

/// Runs tools/reference/bench_ops.py in the reference venv; `None` (with a notice) if it
/// cannot.
fn time_reference(c: &Common, specs: &[(&str, Value)]) -> Option<serde_json::Map<String, Value>> {
    let py = c.python()?;
    let script = crate::repo_path("tools/reference/bench_ops.py");
    let threads = c.threads.unwrap_or_else(rayon::current_num_threads);
    let input = json!({"repeat": c.repeat, "threads": threads, "stat": c.stat, "clock": c.clock, "cases": specs.iter().map(|(n, s)| json!({"name": n, "spec": s})).collect::<Vec<_>>()});
    let mut child = Command::new(&py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| eprintln!("note: cannot run {}: {e}; PyTorch timings skipped", py.display()))
        .ok()?;
    child.stdin.take()?.write_all(input.to_string().as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        eprintln!(
            "note: {} {} failed; PyTorch timings skipped",
            py.display(),
            script.display()
        );
        return None;
    }
    serde_json::from_slice::<Value>(&out.stdout).ok()?.as_object().cloned()
}

pub fn run(c: &Common) -> anyhow::Result<()> {
    let cases: Vec<Case> = cases()
        .into_iter()
        .filter(|k| c.filter.as_deref().is_none_or(|f| k.name.contains(f)))
        .collect();
    // Process-wide: the cases time the op alone, on this thread and no other.
    let precision = sadtalker_ops::precision::set(c.precision());
    println!(
        "threads: {} (ours: rayon; torch: set_num_threads); {:?} of {} runs; {:?} clock; ours {precision}, torch fp32",
        c.threads.unwrap_or_else(rayon::current_num_threads),
        c.stat,
        c.repeat,
        c.clock
    );
    let mut ours = Vec::new();
    for k in &cases {
        ours.push(time_ours(&k.spec, c.repeat, c.stat, c.clock)?);
    }
    let candle = match cases.iter().find(|k| k.name == "conv2d_64_256") {
        Some(k) => Some(time_candle_conv2d(&k.spec, c.repeat, c.stat, c.clock)?),
        None => None,
    };
    let specs: Vec<(&str, Value)> = cases.iter().map(|k| (k.name, k.spec.clone())).collect();
    let torch = time_reference(c, &specs);
    if torch.is_none() {
        println!("(no reference venv: PyTorch column empty; see tools/reference/README.md)");
    }
    println!("{:<48} {:>10} {:>10} {:>11}", "op", "ours ms", "torch ms", "torch/ours");
    for (k, t) in cases.iter().zip(&ours) {
        let r = torch.as_ref().and_then(|m| m.get(k.name)).and_then(Value::as_f64);
        let (tm, ratio) = match r {
            Some(r) => (format!("{:.2}", r * 1e3), format!("{:.2}", r / t)),
            None => ("-".into(), "-".into()),
        };
        println!("{:<48} {:>10.2} {:>10} {:>11}", k.what, t * 1e3, tm, ratio);
    }
    if let Some(cd) = candle {
        let r = torch
            .as_ref()
            .and_then(|m| m.get("conv2d_64_256"))
            .and_then(Value::as_f64);
        let ratio = r.map_or("-".into(), |r| format!("{:.2}", r / cd));
        println!(
            "{:<48} {:>10.2} {:>10} {:>11}",
            "  (candle's conv2d, same case)",
            cd * 1e3,
            "",
            ratio
        );
    }
    Ok(())
}
