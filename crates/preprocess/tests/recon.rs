//! The 3DMM reconstruction net (ResNet-50, recipe weights under `face_3drecon.`) and the whole of
//! `CropAndExtract.generate` for every preprocess mode, from given landmarks (goldens:
//! tools/reference/gen_preprocess_goldens.py, sections `recon`, `e2e`).

mod common;

use candle_core::{Device, Tensor};
use common::{checksum, f64s, i64s, png, points, values};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_gpu::{DeviceKind, context};
use sadtalker_parity::{Golden, assert_close};
use sadtalker_preprocess::extract::{ExtractOptions, Extractor, LandmarkSource, PictureLandmarks};
use sadtalker_preprocess::recon::ReconNet;
use sadtalker_preprocess::{Landmarks68, PreprocessMode};

fn recon_net() -> ReconNet {
    let root = Weights::from_recipe(Recipe::default(), &Device::Cpu);
    ReconNet::load_from_checkpoint(&root).expect("recon net from the recipe")
}

/// Every golden case through `net`, on the CPU or with its activations on `gpu`, against the
/// reference.
fn check_recon(net: &ReconNet, gpu: Option<&sadtalker_gpu::Device>) {
    let g = Golden::open("goldens/preprocess/recon.safetensors");
    let mut n = 0;
    for case in g.cases() {
        let img = png(case.params["input_png"].as_str().expect("input png"));
        let ours = context::with(gpu, || {
            let Some(dev) = gpu else {
                return net.coefficients(&img, &Device::Cpu).expect("forward");
            };
            net.coefficients(&img, &Device::Cpu)
                .expect("forward (uploads the weights)");
            let before = dev.transfers();
            let c = net.coefficients(&img, &Device::Cpu).expect("forward");
            // The aligned face goes up, the 257 coefficients come back.
            let moved = dev.transfers() - before;
            assert_eq!((moved.uploads, moved.downloads), (1, 1), "{moved:?}");
            c
        });
        let ours = Tensor::new(&ours.0[..], &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("tensor");
        let d = assert_close(case.name(), &ours, &case.tensor("output"), 1e-4);
        println!("{}: max abs {:.2e}, rel {:.2e}", case.name(), d.max_abs, d.rel);
        n += 1;
    }
    assert!(n > 0, "no recon cases in the golden");
}

#[test]
fn recon_net_matches_reference() {
    check_recon(&recon_net(), None);
}

/// The whole network on a GPU (lavapipe in CI, which `.ci/run` installs; a missing device fails
/// under `CI=true`), at the CPU path's bar.
#[test]
fn recon_net_matches_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    check_recon(&recon_net(), Some(&dev));
}

#[test]
fn extract_matches_crop_and_extract_for_every_mode() {
    let g = Golden::open("goldens/preprocess/e2e.safetensors");
    let extractor = Extractor::new(recon_net(), None, Device::Cpu);
    let astro = png("preprocess/astronaut.png");
    let mut modes = 0;
    for case in g.cases() {
        let p = &case.params;
        let mode: PreprocessMode = p["mode"].as_str().expect("mode").parse().expect("a mode");
        let lm = Landmarks68::from_points(&points(p, "lm")).expect("68 points");
        let opts = ExtractOptions {
            mode,
            pic_size: 256,
            landmarks: LandmarkSource::Given(Box::new(lm)),
        };
        let out = extractor.extract(std::slice::from_ref(&astro), &opts).expect("extract");
        let name = case.name();
        // The crop record.
        let info = &out.crop_info;
        assert_eq!(
            info.original_size.to_vec(),
            i64s(p, "original_size"),
            "{name}: crop_info[0]"
        );
        match info.crop {
            Some(c) => assert_eq!(c.to_vec(), i64s(p, "crop"), "{name}: crop_info[1]"),
            None => assert!(p["crop"].is_null(), "{name}: crop_info[1]"),
        }
        match info.quad {
            Some(q) => {
                let r = f64s(p, "quad");
                assert!(
                    q.iter().zip(&r).all(|(a, b)| (a - b).abs() < 1e-9),
                    "{name}: quad {q:?} vs {r:?}"
                );
            }
            None => assert!(p["quad"].is_null(), "{name}: crop_info[2]"),
        }
        // The picture written as <name>.png.
        assert_eq!(out.picture.dimensions(), (256, 256));
        assert_eq!(
            checksum(&out.picture).to_vec(),
            i64s(p, "crop_checksum"),
            "{name}: picture"
        );
        if let Some(file) = match mode {
            PreprocessMode::Crop | PreprocessMode::Full => Some("preprocess/e2e_crop_crop.png"),
            PreprocessMode::ExtCrop | PreprocessMode::ExtFull => Some("preprocess/e2e_extcrop_crop.png"),
            PreprocessMode::Resize => None,
        } {
            common::assert_same_image(name, &out.picture, &png(file));
        }
        // The landmarks mapped into the picture are the ones the reference was given.
        let PictureLandmarks::Mapped(mapped) = &out.picture_landmarks[0] else {
            panic!("{name}: landmarks should be mapped from the given ones");
        };
        assert_eq!(
            mapped.0.to_vec(),
            points(p, "crop_lm"),
            "{name}: landmarks in the picture"
        );
        // Alignment and coefficients.
        assert_eq!(
            checksum(&out.aligned.image).to_vec(),
            i64s(p, "aligned_checksum"),
            "{name}: aligned"
        );
        for (a, b) in out.aligned.trans_params.iter().zip(f64s(p, "trans_params")) {
            assert!((a - b).abs() <= 1e-10 * b.abs().max(1.0), "{name}: trans_params");
        }
        let full = Tensor::new(&out.full.0[..], &Device::Cpu).expect("t");
        assert_close(
            &format!("{name}: full_3dmm"),
            &full,
            &case.tensor("full_3dmm").flatten_all().expect("f"),
            1e-4,
        );
        assert_eq!(out.coeffs.len(), 1);
        let c73 = Tensor::new(&out.coeffs[0].0[..], &Device::Cpu).expect("t");
        let r73 = case.tensor("coeff_3dmm").flatten_all().expect("f");
        assert_close(&format!("{name}: coeff_3dmm"), &c73, &r73, 1e-4);
        // The crop parameters are exact (float64 → float32 of the same numbers).
        assert_eq!(&out.coeffs[0].0[70..], &values(&r73)[70..], "{name}: crop parameters");
        modes += 1;
    }
    assert_eq!(modes, 5);
}
