//! The opt-in bf16 precision on the full-size 256 renderer (recipe weights, the golden's real portrait
//! crop): frames within 40 dB PSNR of our own fp32 frames, as the frame loop runs them (source
//! preparation in fp32, frames in bf16).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use candle_core::Tensor;
use sadtalker_ops::Precision;
use sadtalker_ops::precision::{self, with};
use sadtalker_parity::Golden;
use sadtalker_render::{DrivingFrame, FaceRenderConfig, FaceRenderer};

/// PSNR (dB) of two `[0, 1]` frames, clamped, peak 1.
fn psnr(a: &Tensor, b: &Tensor) -> f64 {
    let v = |t: &Tensor| {
        t.clamp(0f32, 1f32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    };
    let (a, b) = (v(a), v(b));
    let mse = a.iter().zip(&b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (1.0 / mse.max(1e-20)).log10()
}

#[test]
fn bf16_frames_are_within_40_db_of_fp32() {
    let golden = Golden::open("goldens/render/full_256.safetensors");
    let case = golden.cases().next().expect("a case");
    let w = common::weights(&golden, &case);
    let renderer = FaceRenderer::load(&w, &w, &FaceRenderConfig::official(false)).unwrap();
    let src = renderer
        .prepare(&case.tensor("source_image"), &case.tensor("source_semantics"))
        .unwrap();
    let driving = case.tensor("driving_semantics");
    let frames: Vec<DrivingFrame> = (0..driving.dim(0).unwrap())
        .map(|i| DrivingFrame {
            semantics: driving.get(i).unwrap(),
            yaw: None,
            pitch: None,
            roll: None,
        })
        .collect();
    let fp32 = renderer.render(&src, &frames).unwrap();
    let bf16 = with(Precision::Bf16, || renderer.render(&src, &frames)).unwrap();
    let reference = case.tensor("prediction");
    let (own, theirs) = (psnr(&bf16, &fp32), psnr(&bf16, &reference));
    eprintln!("bf16 frame: {own:.1} dB against our fp32 frame, {theirs:.1} dB against the reference's");
    if let Some(why) = precision::bf16_unavailable() {
        // fp32 ran instead (the pipeline reports it): the frames are fp32's exactly.
        eprintln!("bf16 not run: {why}");
        assert_eq!(precision::effective(Precision::Bf16), Precision::Fp32);
        assert!(own > 150.0, "{own}");
        return;
    }
    assert!(own >= 40.0, "bf16 frame at {own:.1} dB from fp32's");
    assert!(theirs >= 40.0, "bf16 frame at {theirs:.1} dB from the reference's");
    // Not secretly fp32: the bf16 rounding shows.
    assert!(own < 90.0, "bf16 frame equals fp32's ({own:.1} dB): did bf16 run?");
}
