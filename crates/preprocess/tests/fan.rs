//! The AWing FAN landmark network (4 hourglasses, 98 points; recipe weights under `state_dict.`),
//! `calculate_points` with its quirks, and the 98 → 68 mapping (goldens:
//! tools/reference/gen_preprocess_goldens.py, section `fan`).

mod common;

use candle_core::{Device, IndexOp, Tensor};
use common::{tensor_image, values};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_gpu::{DeviceKind, GpuTensor, context};
use sadtalker_parity::{Golden, assert_close};
use sadtalker_preprocess::imgproc::cv_resize_linear;
use sadtalker_preprocess::landmarks::{Fan, calculate_points, landmark_98_to_68};

#[test]
fn fan_heatmaps_and_landmarks_match_reference() {
    fan_matches_reference(None);
}

/// The same network with every activation on a GPU (lavapipe in CI, which `.ci/run` installs; a
/// missing device fails under `CI=true`), at the CPU path's bars.
#[test]
fn fan_matches_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    fan_matches_reference(Some(&dev));
}

/// The heatmaps and landmarks against the golden, on the CPU or with the network on `gpu`.
fn fan_matches_reference(gpu: Option<&sadtalker_gpu::Device>) {
    let g = Golden::open("goldens/preprocess/fan.safetensors");
    let case = g.cases().find(|c| c.op() == "fan").expect("fan case");
    let seed = case.params["seed"].as_u64().expect("seed");
    let root = Weights::from_recipe(Recipe::new(seed), &Device::Cpu);
    let fan = Fan::load_from_checkpoint(&root).expect("FAN from the recipe");
    let crop = tensor_image(&case.tensor("image"));

    // The network itself, on get_landmarks' input.
    let resized = cv_resize_linear(&crop, 256, 256);
    let raw = resized.as_raw();
    let mut data = vec![0f32; 3 * 256 * 256];
    for c in 0..3 {
        for i in 0..256 * 256 {
            data[c * 256 * 256 + i] = f32::from(raw[i * 3 + (2 - c)]) / 255.0;
        }
    }
    let x = Tensor::from_vec(data, (1, 3, 256, 256), &Device::Cpu).expect("input");
    let outputs = match gpu {
        Some(dev) => fan
            .forward(&GpuTensor::from_tensor(dev, &x).expect("upload"))
            .expect("forward")
            .iter()
            .map(|o| o.to_tensor().expect("download"))
            .collect(),
        None => fan.forward(&x).expect("forward"),
    };
    assert_eq!(outputs.len(), 4);
    let means = Tensor::stack(
        &outputs
            .iter()
            .map(|o| o.i(0).and_then(|o| o.mean((1, 2))))
            .collect::<Result<Vec<_>, _>>()
            .expect("means"),
        0,
    )
    .expect("stack");
    assert_close("per-stack channel means", &means, &case.tensor("stack_means"), 1e-4);
    let last = &outputs[3];
    assert_close(
        "heatmaps 0..3",
        &last.i((0, 0..3)).expect("i"),
        &case.tensor("heat_first3"),
        1e-4,
    );
    assert_close(
        "boundary map",
        &last.i((0, 98)).expect("i"),
        &case.tensor("boundary"),
        1e-4,
    );

    // get_landmarks: points equal wherever the heatmap's maximum is not a near-tie.
    let (lm98, heat) = context::with(gpu, || {
        let before = gpu.map(|d| d.transfers());
        let out = fan.get_landmarks(&crop, &Device::Cpu).expect("landmarks");
        if let (Some(dev), Some(before)) = (gpu, before) {
            // The crop goes up, the last stack's heatmaps come back (the weights went up above).
            let moved = dev.transfers() - before;
            assert_eq!((moved.uploads, moved.downloads), (1, 1), "{moved:?}");
        }
        out
    });
    assert_eq!(heat.dims(), &[1, 98, 64, 64]);
    let reference = values(&case.tensor("landmarks98"));
    let margin = values(&case.tensor("margin"));
    let mut skipped = 0;
    for (i, p) in lm98.iter().enumerate() {
        // Heatmaps agree to ~1e-6 (above); a top-2 gap under 2e-5 could flip the argmax.
        if margin[i] < 2e-5 {
            skipped += 1;
            continue;
        }
        let r = [reference[2 * i], reference[2 * i + 1]];
        assert_eq!([p[0] as f32, p[1] as f32], r, "landmark {i} (margin {})", margin[i]);
    }
    println!("{skipped} of 98 landmarks skipped (argmax near-ties under random weights)");
    assert!(skipped < 10, "too many near-ties to check: {skipped}");
}

#[test]
fn calculate_points_matches_reference_quirks_included() {
    let g = Golden::open("goldens/preprocess/fan.safetensors");
    let mut n = 0;
    for case in g.cases().filter(|c| c.op() == "calculate_points") {
        let hm = case.tensor("heatmaps");
        let (k, h, w) = hm.dims3().expect("(N, 64, 64)");
        let ours = calculate_points(&values(&hm), k, h, w);
        let reference = values(&case.tensor("points"));
        for (i, p) in ours.iter().enumerate() {
            assert_eq!(
                [p[0] as f32, p[1] as f32],
                [reference[2 * i], reference[2 * i + 1]],
                "{} point {i}",
                case.name()
            );
        }
        n += 1;
    }
    assert_eq!(n, 3);
}

#[test]
fn landmark_98_to_68_matches_facexlib() {
    let g = Golden::open("goldens/preprocess/fan.safetensors");
    let case = g.cases().find(|c| c.op() == "landmark_98_to_68").expect("case");
    // The golden stores the float64 input as float32; the mapping is checked on those values.
    let v = values(&case.tensor("lm98"));
    let mut lm98 = [[0f64; 2]; 98];
    for (i, p) in lm98.iter_mut().enumerate() {
        *p = [f64::from(v[2 * i]), f64::from(v[2 * i + 1])];
    }
    let ours: Vec<f32> = landmark_98_to_68(&lm98).0.iter().flatten().copied().collect();
    let reference = values(&case.tensor("lm68"));
    for (i, (a, b)) in ours.iter().zip(&reference).enumerate() {
        assert!((a - b).abs() <= 1e-4, "value {i}: {a} vs {b}");
    }
}

#[test]
fn get_landmark_glue_matches_reference() {
    // The detector's box cut from the frame, FAN, 98 → 68, shifted back (the box is injected: random
    // detector weights find no face).
    let g = Golden::open("goldens/preprocess/fan.safetensors");
    let case = g.cases().find(|c| c.op() == "get_landmark").expect("get_landmark case");
    let seed = case.params["seed"].as_u64().expect("seed");
    let fan = Fan::load_from_checkpoint(&Weights::from_recipe(Recipe::new(seed), &Device::Cpu)).expect("FAN");
    let b: Vec<f32> = case.params["box"]
        .as_array()
        .expect("box")
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect();
    let astro = common::png("preprocess/astronaut.png");
    let lm =
        sadtalker_preprocess::extract::landmarks_in_box(&fan, &astro, &[b[0], b[1], b[2], b[3]], &Device::Cpu, "test")
            .expect("landmarks");
    let ours: Vec<f32> = lm.0.iter().flatten().copied().collect();
    assert_eq!(ours, values(&case.tensor("landmarks68")), "68 landmarks in the frame");
}
