//! Crop geometry (`Preprocesser.align_face`) and 3DMM alignment (`align_img`) against the reference,
//! from given landmarks (goldens: tools/reference/gen_preprocess_goldens.py, sections `crop`, `align`).

mod common;

use common::{checksum, f64s, i64s, png, points};
use sadtalker_coeffs::mat::MatFile;
use sadtalker_parity::{Golden, fixtures_dir};
use sadtalker_preprocess::Landmarks68;
use sadtalker_preprocess::align::{align_img, lm3d_rows, lm3d_std, pos};
use sadtalker_preprocess::crop::align_face;

#[test]
fn crop_boxes_match_align_face_exactly() {
    let g = Golden::open("goldens/preprocess/crop.safetensors");
    let mut n = 0;
    for case in g.cases() {
        let p = &case.params;
        let lm = Landmarks68::from_points(&points(p, "lm")).expect("68 points");
        let fb = align_face(
            p["width"].as_u64().expect("w") as u32,
            p["height"].as_u64().expect("h") as u32,
            &lm,
            p["xsize"].as_u64().expect("xsize") as u32,
        )
        .expect("a face box");
        let name = case.name();
        println!("{name}: rsize {:?} crop {:?} quad {:?}", fb.rsize, fb.crop, fb.quad);
        assert_eq!(fb.rsize.map(i64::from).to_vec(), i64s(p, "rsize"), "{name}: rsize");
        assert_eq!(fb.crop.to_vec(), i64s(p, "crop"), "{name}: crop box");
        let quad = f64s(p, "quad");
        for (a, b) in fb.quad.iter().zip(&quad) {
            // The quad is float64 arithmetic on float32 landmarks in the same order as numpy.
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{name}: quad {:?} vs {quad:?}",
                fb.quad
            );
            assert_eq!(a.trunc(), b.trunc(), "{name}: int(quad) differs");
        }
        n += 1;
    }
    assert_eq!(n, 6);
}

#[test]
fn standard_landmarks_are_the_mat_files() {
    let mat = MatFile::read(fixtures_dir().join("coeffs/matlab_similarity_Lm3D_all.mat")).expect("the .mat fixture");
    let (rows, cols, lm) = mat.array("lm").and_then(|a| a.to_rows_f32()).expect("lm: 68 x 3");
    assert_eq!((rows, cols), (68, 3));
    for (k, &i) in [30usize, 36, 39, 42, 45, 48, 54].iter().enumerate() {
        for c in 0..3 {
            assert_eq!(lm3d_rows()[k][c].to_bits(), lm[i * 3 + c].to_bits(), "lm[{i}][{c}]");
        }
    }
    let g = Golden::open("goldens/preprocess/align.safetensors");
    let reference = g
        .cases()
        .find(|c| c.name() == "lm3d_std")
        .expect("lm3d_std case")
        .tensor("lm3d");
    let reference = common::values(&reference);
    let ours: Vec<f32> = lm3d_std().iter().flatten().copied().collect();
    assert_eq!(ours, reference, "load_lm3d");
}

#[test]
fn align_img_matches_reference() {
    let g = Golden::open("goldens/preprocess/align.safetensors");
    let astro = png("preprocess/astronaut.png");
    let lm3d = lm3d_std();
    let mut n = 0;
    for case in g.cases().filter(|c| c.op() == "align_img") {
        let p = &case.params;
        let name = case.name();
        assert_eq!(p["size"].as_u64(), Some(256), "the cases use the 256 astronaut as is");
        let lm = points(p, "lm");
        let five = {
            let l = Landmarks68::from_points(&lm).expect("68");
            sadtalker_preprocess::align::extract_5p(&l)
        };
        let (t, s) = pos(&five, &lm3d);
        let (rt, rs) = (f64s(p, "pos_t"), p["pos_s"].as_f64().expect("s"));
        println!("{name}: t {t:?} vs {rt:?}, s {s} vs {rs}");
        assert!(
            (t[0] - rt[0]).abs() < 1e-9 && (t[1] - rt[1]).abs() < 1e-9 && (s - rs).abs() < 1e-12,
            "{name}: POS"
        );
        let a = align_img(&astro, &lm, &lm3d).expect("aligned");
        assert_eq!(a.resized.to_vec(), i64s(p, "resized"), "{name}: scaled size");
        assert_eq!(a.offset.to_vec(), i64s(p, "box"), "{name}: cut offset");
        for (x, y) in a.trans_params.iter().zip(f64s(p, "trans_params")) {
            assert!(
                (x - y).abs() <= 1e-10 * y.abs().max(1.0),
                "{name}: trans_params {:?}",
                a.trans_params
            );
        }
        let lm_new: Vec<[f32; 2]> = points(p, "lm_new");
        for (o, r) in a.landmarks.iter().zip(&lm_new) {
            assert!(
                (o[0] as f32 - r[0]).abs() < 1e-3 && (o[1] as f32 - r[1]).abs() < 1e-3,
                "{name}: lm_new"
            );
        }
        assert_eq!(
            checksum(&a.image).to_vec(),
            i64s(p, "aligned_checksum"),
            "{name}: aligned image"
        );
        if name == "astronaut" {
            common::assert_same_image(name, &a.image, &png("preprocess/align_astronaut.png"));
        }
        n += 1;
    }
    assert_eq!(n, 3);
}
