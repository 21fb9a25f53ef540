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

use candle_core::Device;
use common::realesrgan::{golden, net};
use common::{RawGolden, RecipeNoise, image_diff};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_enhance::gfpganer::{face_to_parse_tensor, face_to_tensor, tensor_to_face};
use sadtalker_enhance::{FaceRestoreHelper, GFPGANv1Clean, GfpganConfig, ParseNet, ParseNetConfig, RealESRGANer};
use sadtalker_preprocess::detect::Detection;

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
fn reduced_rrdbnet_matches_reference() {
    common::realesrgan::reduced_rrdbnet_matches_reference(None);
}

#[test]
fn tiled_and_untiled_upsampling_match_reference() {
    common::realesrgan::tiled_and_untiled_upsampling_match_reference(None);
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
