//! RetinaFace ResNet-50 (recipe weights under its state-dict keys): raw outputs, priors, and
//! `detect_faces`' decoding, threshold, sort and NMS with injected confidences (random weights find
//! no real face), on the CPU and on a GPU. Goldens: tools/reference/gen_preprocess_goldens.py,
//! section `detect`.

mod common;

use candle_core::{Device, Tensor};
use common::{tensor_image, values};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_gpu::{DeviceKind, context};
use sadtalker_parity::{Golden, assert_close};
use sadtalker_preprocess::detect::{Detection, RawDetections, RetinaFace, postprocess, prior_box};

fn rows<const N: usize>(v: &[[f32; N]]) -> Tensor {
    let flat: Vec<f32> = v.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (v.len(), N), &Device::Cpu).expect("tensor")
}

fn dets_tensor(d: &[Detection]) -> Tensor {
    let v: Vec<[f32; 15]> = d
        .iter()
        .map(|d| {
            let mut r = [0f32; 15];
            r[..4].copy_from_slice(&d.bbox);
            r[4] = d.score;
            r[5..].copy_from_slice(&d.landmarks);
            r
        })
        .collect();
    rows(&v)
}

/// The mean-subtracted `(1, 3, H, W)` input of `detect_faces` (channels swapped when `swap`).
fn input(img: &image::RgbImage, swap: bool) -> Tensor {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let mean = [104f32, 117.0, 123.0];
    let mut data = vec![0f32; 3 * w * h];
    for c in 0..3 {
        let src = if swap { 2 - c } else { c };
        for i in 0..w * h {
            data[c * w * h + i] = f32::from(raw[i * 3 + src]) - mean[c];
        }
    }
    Tensor::from_vec(data, (1, 3, h, w), &Device::Cpu).expect("input")
}

/// The raw network outputs against the golden case's.
fn check_raw(name: &str, out: &RawDetections, case: &sadtalker_parity::Case<'_>) {
    assert_close(&format!("{name}: loc"), &rows(&out.loc), &case.tensor("loc"), 1e-4);
    assert_close(&format!("{name}: conf"), &rows(&out.conf), &case.tensor("conf"), 1e-5);
    assert_close(
        &format!("{name}: landms"),
        &rows(&out.landms),
        &case.tensor("landms"),
        1e-4,
    );
}

/// The whole network on a GPU (lavapipe in CI, which `.ci/run` installs; a missing device fails
/// under `CI=true`): the same bars; the image goes up and each pyramid level's heads come back.
#[test]
fn retinaface_matches_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    let g = Golden::open("goldens/preprocess/detect.safetensors");
    let net = RetinaFace::load_from_checkpoint(&Weights::from_recipe(Recipe::default(), &Device::Cpu))
        .expect("RetinaFace from the recipe");
    let mut n = 0;
    for case in g.cases() {
        let x = input(&tensor_image(&case.tensor("image")), case.flag("swap_rb"));
        context::with(Some(&dev), || {
            net.forward(&x).expect("forward (uploads the weights)");
            let before = dev.transfers();
            let out = net.forward(&x).expect("forward");
            let moved = dev.transfers() - before;
            assert_eq!((moved.uploads, moved.downloads), (1, 3), "{moved:?}");
            check_raw(case.name(), &out, &case);
        });
        n += 1;
    }
    assert!(n > 0, "no cases");
}

#[test]
fn retinaface_matches_reference() {
    let g = Golden::open("goldens/preprocess/detect.safetensors");
    let root = Weights::from_recipe(Recipe::default(), &Device::Cpu);
    let net = RetinaFace::load_from_checkpoint(&root).expect("RetinaFace from the recipe");
    let mut n = 0;
    for case in g.cases() {
        let name = case.name().to_string();
        let img = tensor_image(&case.tensor("image"));
        let (w, h) = (img.width() as usize, img.height() as usize);
        let swap = case.flag("swap_rb");
        let x = input(&img, swap);
        check_raw(&name, &net.forward(&x).expect("forward"), &case);
        let priors = prior_box(h, w);
        assert_eq!(values(&rows(&priors)), values(&case.tensor("priors")), "{name}: priors");

        // Post-processing on the reference's own raw outputs, with the injected confidences.
        let scores = values(&case.tensor("injected_scores"));
        let reference_raw = RawDetections {
            loc: values(&case.tensor("loc"))
                .chunks_exact(4)
                .map(|c| [c[0], c[1], c[2], c[3]])
                .collect(),
            conf: scores.iter().map(|&s| [1.0 - s, s]).collect(),
            landms: values(&case.tensor("landms"))
                .chunks_exact(10)
                .map(|c| {
                    let mut a = [0f32; 10];
                    a.copy_from_slice(c);
                    a
                })
                .collect(),
        };
        for (thr, role) in [(0.97f32, "dets_097"), (0.5, "dets_050")] {
            let got = postprocess(&reference_raw, &priors, w, h, thr, 0.4);
            let reference = case.tensor(role);
            assert_eq!(
                got.faces.len(),
                reference.dim(0).expect("rows"),
                "{name} {role}: number kept"
            );
            let ours = dets_tensor(&got.faces);
            assert_close(&format!("{name}: {role}"), &ours, &reference, 1e-6);
            assert_eq!(got.best_score, scores.iter().copied().fold(f32::MIN, f32::max));
        }
        // And through the whole of detect_faces (no face above 0.97 with random weights).
        let found = net.detect_faces(&img, swap, 0.97, &Device::Cpu).expect("detect");
        let best = values(&case.tensor("conf"))
            .chunks_exact(2)
            .map(|c| c[1])
            .fold(f32::MIN, f32::max);
        assert!((found.best_score - best).abs() < 1e-6, "{name}: best score");
        assert_eq!(found.faces.is_empty(), best <= 0.97);
        n += 1;
    }
    assert_eq!(n, 2);
}
