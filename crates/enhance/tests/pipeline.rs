//! `GFPGANer.enhance` on whole frames against the reference (gfpgan + facexlib + cv2), with the detector's
//! output injected (`tools/reference/gen_enhance_goldens.py`, pipeline.safetensors).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use candle_core::Device;
use common::{RawGolden, RecipeNoise, image_diff};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_enhance::cv::Affine;
use sadtalker_enhance::face_restoration_helper::PasteFace;
use sadtalker_enhance::gfpganer::{enhance_with, face_to_parse_tensor, face_to_tensor, tensor_to_face};
use sadtalker_enhance::{FaceRestoreHelper, GFPGANv1Clean, GfpganConfig, ParseNet, ParseNetConfig, RgbImage};
use sadtalker_preprocess::detect::Detection;

fn golden() -> RawGolden {
    RawGolden::open("goldens/enhance/pipeline.safetensors")
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

/// The script's stand-in parser: `formula_labels(512)`.
fn formula_labels(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size * size);
    for y in 0..size {
        for x in 0..size {
            let xf = (x as f64 - 256.0) / 200.0;
            let yf = (y as f64 - 270.0) / 240.0;
            let d = xf * xf + yf * yf;
            let mut cls = 1 + (x / 64 + y / 64) % 13;
            if y < 120 {
                cls = 17;
            }
            if y > 460 {
                cls = 14;
            }
            if d > 1.0 {
                cls = 0;
            }
            out.push(cls as u8);
        }
    }
    out
}

fn assert_affines(label: &str, ours: &[Affine], reference: &[Affine]) {
    assert_eq!(ours.len(), reference.len(), "{label}: number of faces");
    let mut worst = 0f64;
    for (a, b) in ours.iter().zip(reference) {
        for r in 0..2 {
            for c in 0..3 {
                worst = worst.max((a[r][c] - b[r][c]).abs() / b[r][c].abs().max(1.0));
            }
        }
    }
    println!("{label}: affine max rel diff {worst:.2e}");
    // As in the cv test: OpenCV's LMedS refinement stops early and is noisy in its last digits.
    assert!(worst < 1e-4, "{label}: affine differs by {worst:e}");
}

fn report(label: &str, ours: &RgbImage, reference: &RgbImage) -> (usize, u8) {
    let (n, max) = image_diff(ours, reference);
    println!(
        "{label}: {n} of {} values differ, by up to {max} levels",
        reference.as_raw().len()
    );
    (n, max)
}

#[test]
fn two_faces_opencv_chain_matches_reference() {
    let g = golden();
    let frame = g.image("two_faces.frame");
    let dets = detections(&g, "two_faces.dets");
    let helper = FaceRestoreHelper::new(2);
    let labels = formula_labels(512);
    let out = enhance_with(
        &helper,
        &frame,
        &dets,
        &mut |_, crop| {
            let mut face = crop.clone();
            face.as_mut().iter_mut().for_each(|v| *v = 255 - *v);
            Ok(face)
        },
        &mut |_| Ok(labels.clone()),
    )
    .unwrap();
    assert_eq!(out.faces_detected, 3);
    assert_eq!(out.faces_restored, 2, "the face with eyes 3 px apart is skipped");
    assert_affines("two_faces", &out.affines, &g.affines("two_faces.affine"));
    // The reference's `inverse_affine_matrices` end up with paste's offset (it adds it in place).
    let inv: Vec<Affine> = out
        .affines
        .iter()
        .map(|a| helper.paste_affine(&helper.get_inverse_affine(a)))
        .collect();
    assert_affines("two_faces inverse", &inv, &g.affines("two_faces.inverse_affine"));
    let (n, max) = report("two_faces", &out.image, &g.image("two_faces.output"));
    // The chain itself is bit-exact (next test); what is left comes from the LMedS matrices, whose last
    // digits differ from OpenCV's (see `cv::estimate_affine_partial_2d`): a warped value may round the
    // other way. Allow one level on at most 0.1% of the values.
    assert!(
        max <= 1 && n * 1000 <= out.image.as_raw().len(),
        "{n} values differ, by up to {max}"
    );
}

#[test]
fn no_face_frame_comes_back_upscaled() {
    let g = golden();
    let frame = g.image("no_face.frame");
    let out = enhance_with(
        &FaceRestoreHelper::new(2),
        &frame,
        &detections(&g, "no_face.dets"),
        &mut |_, _| panic!("no face to restore"),
        &mut |_| panic!("no face to parse"),
    )
    .unwrap();
    assert_eq!((out.faces_detected, out.faces_restored), (0, 0));
    assert_eq!(out.image.dimensions(), (2 * frame.width(), 2 * frame.height()));
    let (n, max) = report("no_face", &out.image, &g.image("no_face.output"));
    assert_eq!((n, max), (0, 0));
}

#[test]
fn e2e_reduced_networks_match_reference() {
    let g = golden();
    let case = g.case("e2e_reduced");
    let gc = &case["gfpgan"];
    let gfpgan_cfg = GfpganConfig {
        out_size: gc["out_size"].as_u64().unwrap() as usize,
        num_style_feat: gc["num_style_feat"].as_u64().unwrap() as usize,
        channel_multiplier: 2,
        narrow: gc["narrow"].as_f64().unwrap(),
    };
    let pc = &case["parsenet"];
    let int = |k: &str| pc[k].as_u64().unwrap() as usize;
    let range = pc["ch_range"].as_array().unwrap();
    let parse_cfg = ParseNetConfig {
        in_size: int("in_size"),
        out_size: int("out_size"),
        // ParseNet's default.
        min_feat_size: 32,
        base_ch: int("base_ch"),
        parsing_ch: 19,
        res_depth: int("res_depth"),
        ch_range: [range[0].as_u64().unwrap() as usize, range[1].as_u64().unwrap() as usize],
    };
    let dev = Device::Cpu;
    let recipe = |gain: &str| Weights::from_recipe(Recipe::new(0).with_gain(case[gain].as_f64().unwrap()), &dev);
    let gfpgan = GFPGANv1Clean::load(&recipe("gfpgan_gain"), &gfpgan_cfg).unwrap();
    let parser = ParseNet::load(&recipe("parsenet_gain"), &parse_cfg).unwrap();

    let frame = g.image("e2e_reduced.frame");
    let out = enhance_with(
        &FaceRestoreHelper::new(2),
        &frame,
        &detections(&g, "e2e_reduced.dets"),
        &mut |_, crop| tensor_to_face(&gfpgan.forward(&face_to_tensor(crop, &dev)?, &mut RecipeNoise)?),
        &mut |face| parser.parse(&face_to_parse_tensor(face, &dev)?),
    )
    .unwrap();
    assert_eq!(out.faces_restored, 1);
    assert_affines("e2e_reduced", &out.affines, &g.affines("e2e_reduced.affine"));
    let (n, max) = report("e2e_reduced", &out.image, &g.image("e2e_reduced.output"));
    // f32 networks (output rel error ~1e-6): a restored pixel may round the other way, and the matrices'
    // last digits differ (see above); one level on at most 1% of the values.
    assert!(
        max <= 1 && n * 100 <= out.image.as_raw().len(),
        "{n} values differ, by up to {max}"
    );
}

#[test]
fn two_faces_with_reference_affines_is_bit_exact() {
    let g = golden();
    let frame = g.image("two_faces.frame");
    let helper = FaceRestoreHelper::new(2);
    let labels = formula_labels(512);
    let affines = g.affines("two_faces.affine");
    let faces: Vec<RgbImage> = affines
        .iter()
        .map(|a| {
            let mut face = helper.align_warp_face(&frame, a);
            face.as_mut().iter_mut().for_each(|v| *v = 255 - *v);
            face
        })
        .collect();
    let paste: Vec<PasteFace<'_>> = faces
        .iter()
        .zip(&affines)
        .map(|(f, a)| PasteFace {
            restored: f,
            inverse_affine: helper.get_inverse_affine(a),
            parse: &labels,
        })
        .collect();
    let out = helper.paste_faces_to_input_image(&frame, &paste).unwrap();
    let (n, max) = report("two_faces (reference affines)", &out, &g.image("two_faces.output"));
    assert_eq!((n, max), (0, 0));
}

#[test]
fn gfpganer_enhance_passes_a_faceless_frame_through() {
    // GFPGANer::enhance end to end with real (tiny) networks and the real detector on recipe weights,
    // which finds no face: the frame comes back as the reference returns it, Lanczos ×2, and is counted.
    let dev = Device::Cpu;
    let w = Weights::from_recipe(Recipe::default(), &dev);
    let gfpgan = GFPGANv1Clean::load(
        &w,
        &GfpganConfig {
            out_size: 32,
            num_style_feat: 16,
            channel_multiplier: 2,
            narrow: 1.0 / 64.0,
        },
    )
    .unwrap();
    let parser = ParseNet::load(
        &w,
        &ParseNetConfig {
            in_size: 32,
            out_size: 32,
            min_feat_size: 8,
            base_ch: 4,
            parsing_ch: 19,
            res_depth: 1,
            ch_range: [4, 8],
        },
    )
    .unwrap();
    let detector = sadtalker_preprocess::detect::RetinaFace::load_from_checkpoint(&w).unwrap();
    let mut enhancer = sadtalker_enhance::GFPGANer::new(gfpgan, parser, detector, &dev, 7);
    let g = golden();
    let frame = g.image("no_face.frame");
    assert!(
        enhancer.detect(&frame).unwrap().is_empty(),
        "recipe weights find no face"
    );
    let out = enhancer.enhance(&frame).unwrap();
    assert_eq!(
        (out.faces_detected, out.faces_restored, enhancer.frames_done()),
        (0, 0, 1)
    );
    let (n, max) = report("GFPGANer::enhance, no face", &out.image, &g.image("no_face.output"));
    assert_eq!((n, max), (0, 0));
    let empty = RgbImage::new(0, 0);
    assert!(enhancer.enhance(&empty).is_err(), "an empty frame is refused");
}
