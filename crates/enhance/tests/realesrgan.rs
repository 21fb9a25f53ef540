//! `--background_enhancer realesrgan` against the reference (basicsr's RRDBNet in realesrgan's
//! RealESRGANer, and GFPGANer with it as `bg_upsampler`), on recipe weights
//! (`tools/reference/gen_realesrgan_goldens.py`, realesrgan.safetensors):
//! - `rrdb_net`: a reduced RRDBNet ×2 on a 24 × 20 input;
//! - `tiled` / `untiled`: RealESRGANer.enhance on a 45 × 37 frame (odd sides) with 16-pixel tiles and
//!   4 of context (3 × 3 tiles) and with SadTalker's 400 / 10 (one tile): the stitched network output
//!   (clamped to [0, 1]) and the 8-bit frame;
//! - `e2e_bg`: GFPGANer.enhance on a frame with one injected face, its face pasted over the tiled
//!   RealESRGANer's background.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use candle_core::{Device, Tensor};
use common::{RawGolden, RecipeNoise, image_diff};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_enhance::gfpganer::{face_to_parse_tensor, face_to_tensor, tensor_to_face};
use sadtalker_enhance::{
    FaceRestoreHelper, GFPGANv1Clean, GfpganConfig, ParseNet, ParseNetConfig, RRDBNet, RealESRGANer, RrdbConfig,
};
use sadtalker_parity::assert_close;
use sadtalker_preprocess::detect::Detection;
use serde_json::Value;

fn golden() -> RawGolden {
    RawGolden::open("goldens/enhance/realesrgan.safetensors")
}

fn net(case: &Value) -> RRDBNet {
    let n = |k: &str| case[k].as_u64().unwrap() as usize;
    let cfg = RrdbConfig {
        num_in_ch: n("num_in_ch"),
        num_out_ch: n("num_out_ch"),
        scale: n("scale"),
        num_feat: n("num_feat"),
        num_block: n("num_block"),
        num_grow_ch: n("num_grow_ch"),
    };
    let w = Weights::from_recipe(Recipe::new(0).with_gain(case["gain"].as_f64().unwrap()), &Device::Cpu);
    RRDBNet::load(&w, &cfg).unwrap()
}

#[test]
fn reduced_rrdbnet_matches_reference() {
    let g = golden();
    let case = g.case("rrdb_net");
    let (shape, x) = g.f32("rrdb_net.input");
    let x = Tensor::from_vec(x, shape, &Device::Cpu).unwrap();
    let (shape, y) = g.f32("rrdb_net.output");
    let y = Tensor::from_vec(y, shape, &Device::Cpu).unwrap();
    let ours = net(case).forward(&x).unwrap();
    let d = assert_close("rrdb_net ×2 output", &ours, &y, 1e-5);
    println!(
        "rrdb_net: max abs {:.2e}, rel {:.2e} (reference f32 vs f64 {:.2e})",
        d.max_abs,
        d.rel,
        case["f64_rel_diff"].as_f64().unwrap()
    );
}

#[test]
fn tiled_and_untiled_upsampling_match_reference() {
    let g = golden();
    for name in ["tiled", "untiled"] {
        let case = g.case(name);
        let tile = case["tile"].as_u64().unwrap() as usize;
        let pad = case["tile_pad"].as_u64().unwrap() as usize;
        let up = RealESRGANer::with_tiles(net(case), tile, pad, &Device::Cpu);
        let frame = g.image(&format!("{name}.frame"));
        let (w, h, raw) = up.enhance_raw(&frame).unwrap();
        assert_eq!((w, h), (90, 74), "{name}");
        let (shape, theirs) = g.f32(&format!("{name}.raw"));
        // The reference's `output` is clamped in place by `enhance` (`.float().cpu().clamp_(0, 1)` returns
        // the same tensor); clamp ours too.
        let raw: Vec<f32> = raw.iter().map(|v| v.clamp(0.0, 1.0)).collect();
        let a = Tensor::from_vec(raw, (3, h, w), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(theirs, shape, &Device::Cpu).unwrap();
        let d = assert_close(&format!("{name} stitched output"), &a, &b, 1e-5);
        println!(
            "{name} ({tile}/{pad}) stitched output: max abs {:.2e}, rel {:.2e}",
            d.max_abs, d.rel
        );
        let out = up.enhance(&frame).unwrap();
        let (n, max) = image_diff(&out, &g.image(&format!("{name}.output")));
        println!("{name}: {n} of {} values differ, by up to {max}", out.as_raw().len());
        assert!(
            max <= 1 && n * 200 <= out.as_raw().len(),
            "{name}: {n} values differ, by up to {max}"
        );
    }
    // The tile bound: the same frame through 16-pixel tiles and in one piece differs only near the
    // seams (the network sees 4 pixels of context there instead of all).
    let case = g.case("tiled");
    let frame = g.image("tiled.frame");
    let whole = RealESRGANer::with_tiles(net(case), 0, 0, &Device::Cpu)
        .enhance(&frame)
        .unwrap();
    let one = RealESRGANer::with_tiles(net(case), 400, 10, &Device::Cpu)
        .enhance(&frame)
        .unwrap();
    assert_eq!(image_diff(&whole, &one), (0, 0), "a single tile is the whole frame");
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
fn gfpganer_pastes_faces_over_the_realesrgan_background_as_the_reference() {
    let g = golden();
    let case = g.case("e2e_bg");
    let dev = Device::Cpu;
    // gen_enhance_goldens.reduced_e2e_models: GFPGAN out 512, narrow 1/32, style 64, gain √3; ParseNet
    // 512, base 4, 1 block, channels 4..16, gain √2.
    let gfpgan = GFPGANv1Clean::load(
        &Weights::from_recipe(Recipe::new(0).with_gain(3f64.sqrt()), &dev),
        &GfpganConfig {
            out_size: 512,
            num_style_feat: 64,
            channel_multiplier: 2,
            narrow: 1.0 / 32.0,
        },
    )
    .unwrap();
    let parser = ParseNet::load(
        &Weights::from_recipe(Recipe::new(0).with_gain(2f64.sqrt()), &dev),
        &ParseNetConfig {
            in_size: 512,
            out_size: 512,
            min_feat_size: 32,
            base_ch: 4,
            parsing_ch: 19,
            res_depth: 1,
            ch_range: [4, 16],
        },
    )
    .unwrap();
    let up = RealESRGANer::with_tiles(
        net(case),
        case["tile"].as_u64().unwrap() as usize,
        case["tile_pad"].as_u64().unwrap() as usize,
        &dev,
    );
    let frame = g.image("e2e_bg.frame");
    let helper = FaceRestoreHelper::new(2);
    let bg = up.enhance(&frame).unwrap();
    let out = sadtalker_enhance::gfpganer::enhance_with_background(
        &helper,
        &frame,
        &detections(&g, "e2e_bg.dets"),
        Some(&bg),
        &mut |_, crop| tensor_to_face(&gfpgan.forward(&face_to_tensor(crop, &dev)?, &mut RecipeNoise)?),
        &mut |face| parser.parse(&face_to_parse_tensor(face, &dev)?),
    )
    .unwrap();
    assert_eq!(out.faces_restored, 1);
    let (n, max) = image_diff(&out.image, &g.image("e2e_bg.output"));
    println!(
        "e2e_bg: {n} of {} values differ, by up to {max}",
        out.image.as_raw().len()
    );
    assert!(
        max <= 1 && n * 100 <= out.image.as_raw().len(),
        "{n} values differ, by up to {max}"
    );
}
