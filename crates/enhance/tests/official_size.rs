//! The official-size networks (GFPGAN v1.4 and facexlib's ParseNet at their real widths, recipe weights)
//! against the reference. Their goldens are too large to commit; make them with
//! `tools/reference/gen_enhance_goldens.py --local DIR` and run
//! `SADTALKER_ENHANCE_GOLDENS=DIR cargo test -p sadtalker-enhance --test official_size -- --ignored`.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use std::path::PathBuf;

use candle_core::Device;
use common::{RawGolden, RecipeNoise, image_diff};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_enhance::gfpganer::{enhance_with, face_to_parse_tensor, face_to_tensor, tensor_to_face};
use sadtalker_enhance::{FaceRestoreHelper, GFPGANv1Clean, GfpganConfig, ParseNet, ParseNetConfig};
use sadtalker_parity::{Golden, assert_close};
use sadtalker_preprocess::detect::Detection;

fn local_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("SADTALKER_ENHANCE_GOLDENS").unwrap_or_else(|| {
        panic!("set SADTALKER_ENHANCE_GOLDENS to the folder of `gen_enhance_goldens.py --local DIR`")
    }))
}

fn gfpgan(dev: &Device) -> GFPGANv1Clean {
    let w = Weights::from_recipe(Recipe::new(0).with_gain(3f64.sqrt()), dev);
    GFPGANv1Clean::load(&w, &GfpganConfig::v1_4()).unwrap()
}

fn parsenet(dev: &Device) -> ParseNet {
    let w = Weights::from_recipe(Recipe::new(0).with_gain(2f64.sqrt()), dev);
    ParseNet::load(&w, &ParseNetConfig::facexlib()).unwrap()
}

#[test]
#[ignore = "needs SADTALKER_ENHANCE_GOLDENS (gen_enhance_goldens.py --local)"]
fn official_size_networks_match_reference() {
    let path = local_dir().join("full.safetensors");
    let g = Golden::open(path.to_str().unwrap());
    let dev = Device::Cpu;
    let case = g.cases().find(|c| c.name() == "gfpgan_512").unwrap();
    let y = gfpgan(&dev).forward(&case.tensor("input"), &mut RecipeNoise).unwrap();
    assert_close("gfpgan_512 output", &y, &case.tensor("output"), 1e-4);
    let case = g.cases().find(|c| c.name() == "parsenet_512").unwrap();
    let (mask, img) = parsenet(&dev).forward(&case.tensor("input")).unwrap();
    assert_close("parsenet_512 out_mask", &mask, &case.tensor("out_mask"), 1e-4);
    assert_close("parsenet_512 out_img", &img, &case.tensor("out_img"), 1e-4);
}

#[test]
#[ignore = "needs SADTALKER_ENHANCE_GOLDENS (gen_enhance_goldens.py --local)"]
fn official_size_two_faces_frame_matches_reference() {
    let g = RawGolden::open_path(&local_dir().join("full_pipeline.safetensors"));
    let dev = Device::Cpu;
    let (net, parser) = (gfpgan(&dev), parsenet(&dev));
    let (_, rows) = g.f32("two_faces_full.dets");
    let dets: Vec<Detection> = rows
        .chunks_exact(15)
        .map(|r| Detection {
            bbox: [r[0], r[1], r[2], r[3]],
            score: r[4],
            landmarks: r[5..15].try_into().unwrap(),
        })
        .collect();
    let frame = g.image("two_faces_full.frame");
    let out = enhance_with(
        &FaceRestoreHelper::new(2),
        &frame,
        &dets,
        // The reference's noise is the same recipe noise for every face.
        &mut |_, crop| tensor_to_face(&net.forward(&face_to_tensor(crop, &dev)?, &mut RecipeNoise)?),
        &mut |face| parser.parse(&face_to_parse_tensor(face, &dev)?),
    )
    .unwrap();
    assert_eq!(out.faces_restored, 2);
    let (n, max) = image_diff(&out.image, &g.image("two_faces_full.output"));
    println!(
        "two_faces_full: {n} of {} values differ, by up to {max} levels",
        out.image.as_raw().len()
    );
    assert!(
        max <= 2 && n * 100 <= out.image.as_raw().len(),
        "{n} values differ, by up to {max}"
    );
}
