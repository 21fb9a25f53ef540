//! `--enhancer RestoreFormer` against the reference (gfpgan's `archs/restoreformer_arch.py` inside
//! `GFPGANer.enhance`), on recipe weights (`tools/reference/gen_restoreformer_goldens.py`,
//! restoreformer.safetensors):
//! - `rf_32`: a reduced RestoreFormer on a 32 × 32 face: the quantiser's input, the codebook entries it
//!   picks and the output;
//! - `e2e_rf`: GFPGANer.enhance on a frame with one (injected) face, RestoreFormer at 512 (reduced width)
//!   with the reduced ParseNet: the restored face and the pasted frame.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use candle_core::{Device, Tensor};
use common::{RawGolden, image_diff};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_enhance::gfpganer::{enhance_with, face_to_parse_tensor, face_to_tensor, tensor_to_face};
use sadtalker_enhance::{FaceRestoreHelper, ParseNet, ParseNetConfig, RestoreFormer, RestoreFormerConfig};
use sadtalker_gpu::GpuTensor;
use sadtalker_parity::assert_close;
use sadtalker_preprocess::detect::Detection;
use serde_json::Value;

fn golden() -> RawGolden {
    RawGolden::open("goldens/enhance/restoreformer.safetensors")
}

fn config(c: &Value) -> RestoreFormerConfig {
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let list = |k: &str| {
        c[k].as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect()
    };
    RestoreFormerConfig {
        n_embed: n("n_embed"),
        embed_dim: n("embed_dim"),
        ch: n("ch"),
        out_ch: 3,
        ch_mult: list("ch_mult"),
        num_res_blocks: n("num_res_blocks"),
        attn_resolutions: list("attn_resolutions"),
        in_channels: 3,
        resolution: n("resolution"),
        z_channels: n("z_channels"),
        head_size: n("head_size"),
    }
}

fn tensor(g: &RawGolden, name: &str) -> Tensor {
    let (shape, v) = g.f32(name);
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn reduced_restoreformer_matches_reference() {
    reduced_restoreformer(None);
}

/// The same network with every activation on a GPU (lavapipe in CI, which `.ci/run` installs; a
/// missing device fails under `CI=true`), at the CPU path's bars.
#[test]
fn reduced_restoreformer_matches_reference_on_the_gpu() {
    let Some(dev) = sadtalker_gpu::context::device_for_test(sadtalker_gpu::DeviceKind::Vulkan) else {
        return;
    };
    reduced_restoreformer(Some(&dev));
}

/// `rf_32` on the CPU, or with the face uploaded to `gpu` and the network run there.
fn reduced_restoreformer(gpu: Option<&sadtalker_gpu::Device>) {
    let g = golden();
    let case = g.case("rf_32");
    let cfg = config(case);
    let dev = Device::Cpu;
    let w = Weights::from_recipe(Recipe::new(0).with_gain(case["gain"].as_f64().unwrap()), &dev);
    let net = RestoreFormer::load(&w, &cfg).unwrap();
    // Every tensor the reference has is used (recipe weights: the ones asked for are the layout).
    let x = tensor(&g, "rf_32.input");

    // The quantiser's input, then the entries chosen: identical (the reference's nearest/second-nearest
    // gap is printed by the script, `min_gap`).
    let up = gpu.map(|dev| GpuTensor::from_tensor(dev, &x).unwrap());
    let quant_in = match &up {
        Some(up) => net
            .quant_conv(&net.encoder.forward(up).unwrap().out)
            .unwrap()
            .to_tensor()
            .unwrap(),
        None => net.quant_conv(&net.encoder.forward(&x).unwrap().out).unwrap(),
    };
    let d = assert_close(
        "rf_32 quant_conv output",
        &quant_in,
        &tensor(&g, "rf_32.quant_in"),
        2e-5,
    );
    println!("rf_32 quantiser input: max abs {:.2e}, rel {:.2e}", d.max_abs, d.rel);
    let ours = net.quantize.indices(&quant_in).unwrap();
    let (_, theirs) = g.f32("rf_32.indices");
    let theirs: Vec<u32> = theirs.iter().map(|&v| v as u32).collect();
    assert_eq!(ours, theirs, "codebook entries");

    let y = match (&up, gpu) {
        (Some(up), Some(dev)) => {
            net.forward(up).unwrap(); // uploads the decoder's weights
            let before = dev.transfers();
            let y = net.forward(up).unwrap().to_tensor().unwrap();
            // The latents down and the chosen codebook entries up (the lookup is the host's),
            // the face down.
            let moved = dev.transfers() - before;
            assert_eq!((moved.uploads, moved.downloads), (1, 2), "{moved:?}");
            y
        }
        _ => net.forward(&x).unwrap(),
    };
    let d = assert_close("rf_32 output", &y, &tensor(&g, "rf_32.output"), 2e-5);
    println!(
        "rf_32 output: max abs {:.2e}, rel {:.2e} (reference f32 vs f64: {:.2e}, min code gap {:.1e})",
        d.max_abs,
        d.rel,
        case["f64_rel_diff"].as_f64().unwrap(),
        case["min_gap"].as_f64().unwrap()
    );
}

/// The `(N, 15)` detection rows: box, score, five landmarks.
fn detections(g: &RawGolden, name: &str) -> Vec<Detection> {
    let (_, v) = g.f32(name);
    v.chunks_exact(15)
        .map(|r| Detection {
            bbox: [r[0], r[1], r[2], r[3]],
            score: r[4],
            landmarks: r[5..15].try_into().unwrap(),
        })
        .collect()
}

#[test]
fn gfpganer_with_reduced_restoreformer_matches_reference() {
    let g = golden();
    let case = g.case("e2e_rf");
    let cfg = config(&case["restoreformer"]);
    let pc = &case["parsenet"];
    let int = |k: &str| pc[k].as_u64().unwrap() as usize;
    let range = pc["ch_range"].as_array().unwrap();
    let parse_cfg = ParseNetConfig {
        in_size: int("in_size"),
        out_size: int("out_size"),
        min_feat_size: 32,
        base_ch: int("base_ch"),
        parsing_ch: 19,
        res_depth: int("res_depth"),
        ch_range: [range[0].as_u64().unwrap() as usize, range[1].as_u64().unwrap() as usize],
    };
    let dev = Device::Cpu;
    let recipe = |gain: &str| Weights::from_recipe(Recipe::new(0).with_gain(case[gain].as_f64().unwrap()), &dev);
    let net = RestoreFormer::load(&recipe("gain"), &cfg).unwrap();
    let parser = ParseNet::load(&recipe("parsenet_gain"), &parse_cfg).unwrap();
    let mut restored = Vec::new();
    let frame = g.image("e2e_rf.frame");
    let out = enhance_with(
        &FaceRestoreHelper::new(2),
        &frame,
        &detections(&g, "e2e_rf.dets"),
        &mut |_, crop| {
            let face = tensor_to_face(&net.forward(&face_to_tensor(crop, &dev)?)?)?;
            restored.push(face.clone());
            Ok(face)
        },
        &mut |face| parser.parse(&face_to_parse_tensor(face, &dev)?),
    )
    .unwrap();
    assert_eq!(out.faces_restored, 1);
    let (n, max) = image_diff(&restored[0], &g.image("e2e_rf.restored"));
    println!(
        "e2e_rf restored 512 face: {n} of {} values differ, by up to {max}",
        restored[0].as_raw().len()
    );
    // f32 networks (Winograd convolutions, ~1e-5 relative through the 512 encoder and decoder): a value
    // near a rounding boundary goes the other way, by one level; the codebook entries are the same (one
    // entry flipped would move a whole 32-pixel block by many levels).
    assert!(
        max <= 1 && n * 100 <= 3 * restored[0].as_raw().len(),
        "{n} values differ, by up to {max}"
    );
    let (n, max) = image_diff(&out.image, &g.image("e2e_rf.output"));
    println!(
        "e2e_rf pasted 240 frame: {n} of {} values differ, by up to {max}",
        out.image.as_raw().len()
    );
    // The restored face's one-level differences, warped back (bilinear) and blended (truncated), reach
    // two levels on a few per cent of the pasted frame's values.
    assert!(
        max <= 2 && n * 100 <= 6 * out.image.as_raw().len(),
        "{n} values differ, by up to {max}"
    );
}

#[test]
fn configs_the_reference_cannot_run_are_refused() {
    let w = Weights::from_recipe(Recipe::default(), &Device::Cpu);
    let mut cfg = RestoreFormerConfig::official();
    cfg.attn_resolutions = vec![32];
    let e = RestoreFormer::load(&w, &cfg).unwrap_err().to_string();
    assert!(e.contains("lowest resolution"), "{e}");
    let mut cfg = RestoreFormerConfig::official();
    cfg.ch = 40;
    let e = RestoreFormer::load(&w, &cfg).unwrap_err().to_string();
    assert!(e.contains("GroupNorm"), "{e}");
}
