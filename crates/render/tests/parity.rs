//! The renderer against the reference (tools/reference/gen_render_goldens.py): reduced-size
//! networks (2 frames, both mapping widths, a yaw override) and one full-size 256 frame, on
//! recipe weights with the tensors the recipe cannot give taken from the golden.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use candle_core::{Device, Tensor};
use common::{FRAME_TOL, Motion, check};
use sadtalker_parity::{Golden, assert_close};

#[test]
fn reduced_networks_match_the_reference() {
    check("goldens/render/reduced.safetensors", FRAME_TOL, Motion::Recorded);
}

#[test]
fn full_size_256_frame_matches_the_reference() {
    check("goldens/render/full_256.safetensors", FRAME_TOL, Motion::Omitted);
}

/// The official networks at 256 (yaw / pitch+roll overrides, the 73-input mapping, 2 frames each) and at
/// 512: too large to commit. Generate with `python tools/reference/gen_render_goldens.py --local DIR`, then
/// `SADTALKER_RENDER_GOLDENS=DIR cargo test -p sadtalker-render --release -- --ignored`.
///
/// The frame bar is looser here: with head-pose overrides of up to 20° the frame is far more sensitive to
/// float32 rounding in the keypoints (measured in the reference itself: moving its own driving keypoints
/// by ±3e-6, the size of our keypoint differences, moves its frame by 6.4e-5; the reference with and
/// without MKL-DNN differs by 2.5e-5).
#[test]
#[ignore = "needs SADTALKER_RENDER_GOLDENS from gen_render_goldens.py --local (minutes of CPU)"]
fn local_official_size_cases_match_the_reference() {
    let dir = std::env::var("SADTALKER_RENDER_GOLDENS")
        .expect("set SADTALKER_RENDER_GOLDENS to the folder written by gen_render_goldens.py --local");
    check(&format!("{dir}/local.safetensors"), 5e-4, Motion::Omitted);
}

#[test]
fn source_resize_matches_skimage() {
    use sadtalker_render::image::RgbF32;
    let golden = Golden::open("goldens/render/resize.safetensors");
    for case in golden.cases() {
        let input = case.tensor("input");
        let (h, w, _) = input.dims3().unwrap();
        let bytes: Vec<u8> = input
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .map(|&v| v as u8)
            .collect();
        let size = case.f64("size") as usize;
        let out = RgbF32::from_rgb8(w, h, &bytes).unwrap().resize_like_skimage(size, size);
        let ours = Tensor::from_vec(out.data, (size, size, 3), &Device::Cpu).unwrap();
        assert_close(case.name(), &ours, &case.tensor("output"), 1e-6);
    }
}
