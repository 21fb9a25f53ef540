//! Paste-back: `cv2.seamlessClone(NORMAL_CLONE)` as `paste_pic` calls it, compared with OpenCV's
//! output by PSNR (goldens: tools/reference/gen_preprocess_goldens.py, section `paste`).

mod common;

use common::{i64s, png, tensor_image};
use image::RgbImage;
use sadtalker_parity::Golden;
use sadtalker_preprocess::paste::seamless_clone;

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

#[test]
fn seamless_clone_matches_opencv() {
    let g = Golden::open("goldens/preprocess/paste.safetensors");
    let full = png("preprocess/astronaut.png");
    let mut n = 0;
    for case in g.cases() {
        let name = case.name();
        let patch = tensor_image(&case.tensor("patch"));
        let c = i64s(&case.params, "center");
        let ours = seamless_clone(&patch, &full, [c[0], c[1]]).expect("clone");
        // Outside the pasted box the frame is untouched (as OpenCV's).
        let b = i64s(&case.params, "changed_bbox");
        for (x, y, p) in ours.enumerate_pixels() {
            let (x, y) = (i64::from(x), i64::from(y));
            if x < b[0] || y < b[1] || x >= b[2] || y >= b[3] {
                assert_eq!(
                    p,
                    full.get_pixel(x as u32, y as u32),
                    "{name}: ({x}, {y}) outside the box changed"
                );
            }
        }
        let reference = tensor_image(&case.tensor("output_window"));
        let w = i64s(&case.params, "window");
        let ours_window = RgbImage::from_fn(reference.width(), reference.height(), |x, y| {
            *ours.get_pixel(x + w[0] as u32, y + w[1] as u32)
        });
        let p = psnr(ours_window.as_raw(), reference.as_raw());
        let max = ours_window
            .as_raw()
            .iter()
            .zip(reference.as_raw())
            .map(|(&a, &b)| (i32::from(a) - i32::from(b)).abs())
            .max()
            .unwrap_or(0);
        let differ = ours_window
            .as_raw()
            .iter()
            .zip(reference.as_raw())
            .filter(|(a, b)| a != b)
            .count();
        println!(
            "{name}: PSNR {p:.1} dB vs cv2.seamlessClone, {differ} of {} values differ, max {max}",
            reference.as_raw().len()
        );
        // OpenCV solves in float32 and truncates: values within float error of an integer may differ by 1.
        assert!(p > 60.0, "{name}: PSNR {p:.1} dB");
        assert!(max <= 1, "{name}: a value differs by {max}");
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn paste_back_uses_paste_pics_box_and_centre() {
    // The crop record of the astronaut (given landmarks) in `full` and `extfull` modes: its paste box is
    // the box the golden's cases were cut for, so pasting their (box-sized) patch reproduces OpenCV.
    let g = Golden::open("goldens/preprocess/paste.safetensors");
    let e2e = Golden::open("goldens/preprocess/e2e.safetensors");
    let full = png("preprocess/astronaut.png");
    let lm = sadtalker_preprocess::Landmarks68::from_points(&common::points(
        &e2e.cases().next().expect("a case").params,
        "lm",
    ))
    .expect("68");
    for (mode, case_name) in [("full", "crop_box"), ("extfull", "extcrop_box")] {
        let mode: sadtalker_preprocess::PreprocessMode = mode.parse().expect("mode");
        let (_, info) = sadtalker_preprocess::crop::crop_and_resize(&full, Some(&lm), mode, 256).expect("crop record");
        let case = g.cases().find(|c| c.name() == case_name).expect("case");
        assert_eq!(
            info.paste_box().to_vec(),
            i64s(&case.params, "box"),
            "{case_name}: paste box"
        );
        let patch = tensor_image(&case.tensor("patch"));
        let pasted = sadtalker_preprocess::paste::paste_back(&full, &patch, &info).expect("paste");
        let c = i64s(&case.params, "center");
        assert_eq!(
            pasted,
            seamless_clone(&patch, &full, [c[0], c[1]]).expect("clone"),
            "{case_name}"
        );
    }
}
