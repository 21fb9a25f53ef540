//! The OpenCV calls of the enhancer against `cv2` 5.0 (`tools/reference/gen_enhance_goldens.py`, cv.safetensors).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{RawGolden, image_diff};
use sadtalker_enhance::cv::{self, GrayF64};

fn golden() -> RawGolden {
    RawGolden::open("goldens/enhance/cv.safetensors")
}

fn case_names(g: &RawGolden, op: &str) -> Vec<String> {
    let names: Vec<String> = g
        .cases
        .iter()
        .filter(|c| c["op"] == op)
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    assert!(!names.is_empty(), "no {op} cases");
    names
}

fn dsize(c: &serde_json::Value) -> (usize, usize) {
    let d = c["dsize"].as_array().unwrap();
    (d[0].as_u64().unwrap() as usize, d[1].as_u64().unwrap() as usize)
}

#[test]
fn warp_affine_u8_is_bit_exact() {
    let g = golden();
    for name in case_names(&g, "warp_u8") {
        let c = g.case(&name);
        let (w, h) = dsize(c);
        let b: Vec<u8> = c["border"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        // The golden's source and output are BGR as cv2 saw them; the warp is per channel, so only the
        // border colour's order matters, and it is given in the same order.
        let ours = cv::warp_affine_u8c3(
            &g.image(&format!("{name}.src")),
            &g.affines(&format!("{name}.m"))[0],
            w as u32,
            h as u32,
            [b[0], b[1], b[2]],
        );
        let (n, max) = image_diff(&ours, &g.image(&format!("{name}.out")));
        assert_eq!((n, max), (0, 0), "{name}: {n} values differ, by up to {max}");
    }
}

#[test]
fn warp_affine_f64_is_bit_exact() {
    let g = golden();
    for name in case_names(&g, "warp_f64") {
        let c = g.case(&name);
        let (w, h) = dsize(c);
        let ours = cv::warp_affine_f64(
            &g.gray(&format!("{name}.src")),
            &g.affines(&format!("{name}.m"))[0],
            w,
            h,
        );
        let reference = g.gray(&format!("{name}.out"));
        assert_eq!((ours.width, ours.height), (reference.width, reference.height));
        let bad = ours.data.iter().zip(&reference.data).filter(|(a, b)| a != b).count();
        assert_eq!(bad, 0, "{name}: {bad} values differ");
    }
}

#[test]
fn lanczos_resize_is_bit_exact() {
    let g = golden();
    for name in case_names(&g, "lanczos") {
        let (w, h) = dsize(g.case(&name));
        let ours = cv::resize_lanczos4_u8c3(&g.image(&format!("{name}.src")), w as u32, h as u32);
        let (n, max) = image_diff(&ours, &g.image(&format!("{name}.out")));
        assert_eq!((n, max), (0, 0), "{name}: {n} values differ, by up to {max}");
    }
}

#[test]
fn gaussian_blur_is_bit_exact() {
    let g = golden();
    let (_, kernel) = g.f64("gaussian_blur.kernel");
    assert_eq!(cv::gaussian_kernel_101_11().to_vec(), kernel, "kernel constants");
    let c = g.case("gaussian_blur");
    let (h, w) = (
        c["height"].as_u64().unwrap() as usize,
        c["width"].as_u64().unwrap() as usize,
    );
    // The script's formula blob: 255 inside the ellipse ((x - 50) / 35)^2 + ((y - 60) / 45)^2 < 1.
    let mut src = GrayF64::zeros(w, h);
    for y in 0..h {
        for x in 0..w {
            let (a, b) = ((x as f64 - 50.0) / 35.0, (y as f64 - 60.0) / 45.0);
            if a * a + b * b < 1.0 {
                src.data[y * w + x] = 255.0;
            }
        }
    }
    let once = cv::gaussian_blur_101_11(&src);
    let reference = g.gray("gaussian_blur.once");
    let bad = once.data.iter().zip(&reference.data).filter(|(a, b)| a != b).count();
    assert_eq!(bad, 0, "first blur: {bad} values differ");
    let twice = cv::gaussian_blur_101_11(&once);
    let reference = g.gray("gaussian_blur.twice");
    let bad = twice.data.iter().zip(&reference.data).filter(|(a, b)| a != b).count();
    assert_eq!(bad, 0, "second blur: {bad} values differ");
}

#[test]
fn invert_affine_is_bit_exact() {
    let g = golden();
    let ms = g.affines("invert_affine.m");
    let inv = g.affines("invert_affine.inverse");
    for (m, i) in ms.iter().zip(&inv) {
        assert_eq!(&cv::invert_affine_transform(m), i);
    }
}

#[test]
fn lmeds_similarity_matches_opencv() {
    let g = golden();
    let (_, lm) = g.f32("lmeds.landmarks");
    let (_, template) = g.f64("lmeds.template");
    let to: Vec<[f32; 2]> = template.chunks_exact(2).map(|p| [p[0] as f32, p[1] as f32]).collect();
    let reference = g.affines("lmeds.affine");
    let (_, inliers) = g.u8("lmeds.inliers");
    let mut worst = [0f64; 2];
    for (k, want) in reference.iter().enumerate() {
        let from: Vec<[f32; 2]> = lm[k * 10..(k + 1) * 10].chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        let (m, inl) = cv::estimate_affine_partial_2d(&from, &to).unwrap();
        let want_inl: Vec<bool> = inliers[k * 5..(k + 1) * 5].iter().map(|&v| v != 0).collect();
        assert_eq!(inl, want_inl, "set {k}: inliers");
        for r in 0..2 {
            for c in 0..2 {
                worst[0] = worst[0].max((m[r][c] - want[r][c]).abs() / want[r][c].abs().max(1e-3));
            }
            worst[1] = worst[1].max((m[r][2] - want[r][2]).abs());
        }
    }
    println!(
        "LMedS similarity vs cv2: linear part rel {:.2e}, translation abs {:.2e} px",
        worst[0], worst[1]
    );
    // See `estimate_affine_partial_2d`: OpenCV's refinement stops early and is noisy in its last digits.
    assert!(worst[0] < 1e-4 && worst[1] < 1e-2, "{worst:?}");
}
