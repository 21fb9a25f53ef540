//! The GFPGANv1Clean and ParseNet parity checks (reduced widths, generator.safetensors), shared by
//! `generator.rs` (CPU) and `device.rs` (the same checks with the convolutions on a GPU).

use candle_core::{Device, Tensor};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_enhance::{GFPGANv1Clean, GfpganConfig, ParseNet, ParseNetConfig};
use sadtalker_gpu::GpuTensor;
use sadtalker_parity::{Golden, assert_close};

fn golden() -> Golden {
    Golden::open("goldens/enhance/generator.safetensors")
}

/// GFPGANv1Clean at 128 (style code and output) against the golden, on the host or with its
/// activations on `gpu`.
pub fn gfpgan_128_matches_reference(gpu: Option<&sadtalker_gpu::Device>) {
    let g = golden();
    let case = g.cases().find(|c| c.name() == "gfpgan_128").unwrap();
    let cfg = GfpganConfig {
        out_size: case.int("out_size"),
        num_style_feat: case.params["num_style_feat"].as_u64().unwrap() as usize,
        channel_multiplier: 2,
        narrow: case.f64("narrow"),
    };
    let w = Weights::from_recipe(Recipe::new(0).with_gain(case.f64("gain")), &Device::Cpu);
    let net = GFPGANv1Clean::load(&w, &cfg).unwrap();
    let x = case.tensor("input");
    let (style, y) = match gpu {
        // The whole network on the device: the face goes up, the restored face comes back.
        Some(dev) => {
            let up = GpuTensor::from_tensor(dev, &x).unwrap();
            let (style, _) = net.encode(&up).unwrap();
            net.forward(&up, &mut super::RecipeNoise).unwrap();
            let before = dev.transfers();
            let y = net.forward(&up, &mut super::RecipeNoise).unwrap().to_tensor().unwrap();
            let moved = dev.transfers() - before;
            // Read back: the 4×4 bottleneck for the final linear layer, and the face. Uploaded
            // per face: the constant input, then per StyleConv (11 at 128) its style scales,
            // demodulations and noise, per ToRGB (6) its style scales; the biases stay there.
            eprintln!("gfpgan_128 on the GPU: {moved:?} a face");
            assert_eq!(moved.downloads, 2, "{moved:?}");
            assert_eq!(moved.uploads, 1 + 11 * 3 + 6, "{moved:?}");
            (style, y)
        }
        None => (
            net.encode(&x).unwrap().0,
            net.forward(&x, &mut super::RecipeNoise).unwrap(),
        ),
    };
    let b = style.dim(0).unwrap();
    assert_close(
        "gfpgan_128 style code",
        &style.reshape((b, ())).unwrap(),
        &case.tensor("style_code"),
        1e-5,
    );
    assert_close("gfpgan_128 output", &y, &case.tensor("output"), 1e-4);
}

/// ParseNet at 64 (mask, image, classes) against the golden, on the host or with its activations
/// on `gpu`.
pub fn parsenet_64_matches_reference(gpu: Option<&sadtalker_gpu::Device>) {
    let g = golden();
    let case = g.cases().find(|c| c.name() == "parsenet_64").unwrap();
    let range = case.usizes("ch_range");
    let cfg = ParseNetConfig {
        in_size: case.int("in_size"),
        out_size: case.int("out_size"),
        min_feat_size: case.int("min_feat_size"),
        base_ch: case.int("base_ch"),
        parsing_ch: 19,
        res_depth: case.int("res_depth"),
        ch_range: [range[0], range[1]],
    };
    let w = Weights::from_recipe(Recipe::new(0).with_gain(case.f64("gain")), &Device::Cpu);
    let net = ParseNet::load(&w, &cfg).unwrap();
    let x = case.tensor("input");
    let (mask, img) = match gpu {
        // The whole network on the device: the face goes up, the logits and the image come back.
        Some(dev) => {
            let up = GpuTensor::from_tensor(dev, &x).unwrap();
            net.forward(&up).unwrap();
            let before = dev.transfers();
            let (mask, img) = net.forward(&up).unwrap();
            let out = (mask.to_tensor().unwrap(), img.to_tensor().unwrap());
            let moved = dev.transfers() - before;
            assert_eq!((moved.uploads, moved.downloads), (0, 2), "{moved:?}");
            out
        }
        None => net.forward(&x).unwrap(),
    };
    let want_mask = case.tensor("out_mask");
    assert_close("parsenet_64 out_mask", &mask, &want_mask, 1e-4);
    assert_close("parsenet_64 out_img", &img, &case.tensor("out_img"), 1e-4);
    // The classes (argmax) the paste mask is made of.
    let ours = sadtalker_gpu::context::with(gpu, || net.parse(&x)).unwrap();
    let reference = argmax(&want_mask);
    let differ = ours.iter().zip(&reference).filter(|(a, b)| a != b).count();
    println!("parsenet_64: {differ} of {} classes differ", ours.len());
    assert_eq!(differ, 0);
}

fn argmax(mask: &Tensor) -> Vec<u8> {
    let (_, c, h, w) = mask.dims4().unwrap();
    let v = mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (0..h * w)
        .map(|p| {
            (0..c).fold(0, |best, k| {
                if v[k * h * w + p] > v[best * h * w + p] {
                    k
                } else {
                    best
                }
            }) as u8
        })
        .collect()
}

trait CaseExt {
    fn int(&self, key: &str) -> usize;
}

impl CaseExt for sadtalker_parity::Case<'_> {
    fn int(&self, key: &str) -> usize {
        self.params[key].as_u64().unwrap_or_else(|| panic!("{key}")) as usize
    }
}
