//! The renderer parity checks shared by `parity.rs` (the detected kernel level) and
//! `avx2.rs` (the AVX2 kernels forced on an AVX-512 machine).

#![allow(clippy::unwrap_used, dead_code)] // tests: a panic is the failure report; each binary uses a part

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{Device, Tensor};
use sadtalker_checkpoint::{InMemory, Layered, Recipe, Weights};
use sadtalker_parity::{Case, Golden, assert_close};
use sadtalker_render::{DrivingFrame, FaceRenderConfig, FaceRenderer, Keypoints};

/// The frame: f32 through ~60 layers; the bar is 1e-4 relative.
pub const FRAME_TOL: f32 = 1e-4;

fn kp_tensor(k: &Keypoints) -> Tensor {
    let flat: Vec<f32> = k.value.iter().flatten().flatten().copied().collect();
    Tensor::from_vec(flat, (k.value.len(), k.value[0].len(), 3), &Device::Cpu).unwrap()
}

/// Recipe weights (gain √3, as the golden) under the golden's exact extra tensors.
pub fn weights(golden: &Golden, case: &Case) -> Weights {
    let prefix = format!("{}.weights.", case.name());
    let mut extra = HashMap::new();
    for name in golden.tensor_names() {
        if let Some(key) = name.strip_prefix(&prefix) {
            let t = golden.tensor(&name);
            extra.insert(
                key.to_owned(),
                (t.flatten_all().unwrap().to_vec1::<f32>().unwrap(), t.dims().to_vec()),
            );
        }
    }
    let recipe = Recipe::default().with_gain(3f64.sqrt());
    let layered = Layered::new(vec![Arc::new(InMemory::new("golden extras", extra)), Arc::new(recipe)]);
    Weights::new(Arc::new(layered), &Device::Cpu)
}

/// What a golden file's cases must hold beyond the keypoints, occlusion map and frame, which every case
/// has: the reduced cases also record the dense-motion mask and deformation (the full-size ones leave
/// them out for size).
#[derive(Clone, Copy, PartialEq)]
pub enum Motion {
    Recorded,
    Omitted,
}

pub fn check(file: &str, frame_tol: f32, motion: Motion) {
    let golden = Golden::open(file);
    let mut checked = 0;
    for case in golden.cases() {
        let name = case.name().to_owned();
        let coeff_nc = case.f64("coeff_nc") as usize;
        let cfg = if case.params["kind"] == "reduced" {
            FaceRenderConfig::reduced(coeff_nc)
        } else {
            FaceRenderConfig::official(coeff_nc == 73)
        };
        let w = weights(&golden, &case);
        let renderer = FaceRenderer::load(&w, &w, &cfg).unwrap();
        let src = renderer
            .prepare(&case.tensor("source_image"), &case.tensor("source_semantics"))
            .unwrap();
        assert_close(
            &format!("{name}/kp_canonical"),
            &kp_tensor(&src.kp_canonical),
            &case.tensor("kp_canonical"),
            1e-5,
        );
        assert_close(
            &format!("{name}/kp_source"),
            &kp_tensor(&src.kp_source),
            &case.tensor("kp_source"),
            1e-5,
        );
        let driving = case.tensor("driving_semantics");
        let over = |key: &str, i: usize| case.params.get(key).map(|v| v[i].as_f64().unwrap() as f32);
        let frames: Vec<DrivingFrame> = (0..driving.dim(0).unwrap())
            .map(|i| DrivingFrame {
                semantics: driving.get(i).unwrap(),
                yaw: over("yaw", i),
                pitch: over("pitch", i),
                roll: over("roll", i),
            })
            .collect();
        let out = renderer.render_detailed(&src, &frames).unwrap();
        assert_close(
            &format!("{name}/kp_driving"),
            &kp_tensor(&out.kp_driving),
            &case.tensor("kp_driving"),
            1e-5,
        );
        let dm = &out.output.dense_motion;
        match (motion, case.try_tensor("mask")) {
            (Motion::Recorded, Some(mask)) => {
                assert_close(&format!("{name}/mask"), &dm.mask, &mask, 1e-4);
                assert_close(
                    &format!("{name}/deformation"),
                    &dm.deformation,
                    &case.tensor("deformation"),
                    1e-4,
                );
            }
            (Motion::Recorded, None) => panic!("{name}: the golden has no dense-motion mask to check"),
            (Motion::Omitted, _) => {}
        }
        assert_close(
            &format!("{name}/occlusion_map"),
            &dm.occlusion_map,
            &case.tensor("occlusion_map"),
            1e-4,
        );
        assert_close(
            &format!("{name}/prediction"),
            &out.output.prediction,
            &case.tensor("prediction"),
            frame_tol,
        );
        assert!(w.unused().is_empty(), "{name}: unused weights {:?}", w.unused());
        checked += 1;
    }
    assert!(checked > 0, "{file}: no case was checked");
}
