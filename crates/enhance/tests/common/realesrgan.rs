//! The Real-ESRGAN parity checks (basicsr's RRDBNet in realesrgan's RealESRGANer on recipe
//! weights, realesrgan.safetensors), shared by `realesrgan.rs` (CPU) and `device.rs` (the same checks
//! with the network on a GPU).

use candle_core::{Device, Tensor};
use sadtalker_checkpoint::{Recipe, Weights};
use sadtalker_enhance::{RRDBNet, RealESRGANer, RrdbConfig};
use sadtalker_parity::assert_close;
use serde_json::Value;

use super::{RawGolden, image_diff};

pub fn golden() -> RawGolden {
    RawGolden::open("goldens/enhance/realesrgan.safetensors")
}

pub fn net(case: &Value) -> RRDBNet {
    let n = |k: &str| case[k].as_u64().unwrap() as usize;
    let cfg = RrdbConfig {
        num_in_ch: n("num_in_ch"),
        num_out_ch: n("num_out_ch"),
        scale: n("scale"),
        num_feat: n("num_feat"),
        num_block: n("num_block"),
        num_grow_ch: n("num_grow_ch"),
    };
    let w = Weights::from_recipe(Recipe::new(0).with_gain(case["gain"].as_f64().unwrap()), &Device::Cpu);
    RRDBNet::load(&w, &cfg).unwrap()
}

/// The reduced RRDBNet ×2 on a 24 × 20 input, on the CPU or with its activations on `gpu` (the
/// unshuffled input goes up, the image comes back).
pub fn reduced_rrdbnet_matches_reference(gpu: Option<&sadtalker_gpu::Device>) {
    let g = golden();
    let case = g.case("rrdb_net");
    let (shape, x) = g.f32("rrdb_net.input");
    let x = Tensor::from_vec(x, shape, &Device::Cpu).unwrap();
    let (shape, y) = g.f32("rrdb_net.output");
    let y = Tensor::from_vec(y, shape, &Device::Cpu).unwrap();
    let net = net(case);
    let ours = sadtalker_gpu::context::with(gpu, || {
        let Some(dev) = gpu else {
            return net.forward(&x).unwrap();
        };
        net.forward(&x).unwrap();
        let before = dev.transfers();
        let y = net.forward(&x).unwrap();
        let moved = dev.transfers() - before;
        assert_eq!((moved.uploads, moved.downloads), (1, 1), "{moved:?}");
        y
    });
    let d = assert_close("rrdb_net ×2 output", &ours, &y, 1e-5);
    println!(
        "rrdb_net: max abs {:.2e}, rel {:.2e} (reference f32 vs f64 {:.2e})",
        d.max_abs,
        d.rel,
        case["f64_rel_diff"].as_f64().unwrap()
    );
}

/// RealESRGANer.enhance on a 45 × 37 frame with 16-pixel tiles and with SadTalker's 400 / 10 (one
/// tile), on the CPU or on `gpu`.
pub fn tiled_and_untiled_upsampling_match_reference(gpu: Option<&sadtalker_gpu::Device>) {
    sadtalker_gpu::context::with(gpu, tiled_and_untiled)
}

fn tiled_and_untiled() {
    let g = golden();
    for name in ["tiled", "untiled"] {
        let case = g.case(name);
        let tile = case["tile"].as_u64().unwrap() as usize;
        let pad = case["tile_pad"].as_u64().unwrap() as usize;
        let up = RealESRGANer::with_tiles(net(case), tile, pad, &Device::Cpu);
        let frame = g.image(&format!("{name}.frame"));
        let (w, h, raw) = up.enhance_raw(&frame).unwrap();
        assert_eq!((w, h), (90, 74), "{name}");
        let (shape, theirs) = g.f32(&format!("{name}.raw"));
        // The reference's `output` is clamped in place by `enhance` (`.float().cpu().clamp_(0, 1)` returns
        // the same tensor); clamp ours too.
        let raw: Vec<f32> = raw.iter().map(|v| v.clamp(0.0, 1.0)).collect();
        let a = Tensor::from_vec(raw, (3, h, w), &Device::Cpu).unwrap();
        let b = Tensor::from_vec(theirs, shape, &Device::Cpu).unwrap();
        let d = assert_close(&format!("{name} stitched output"), &a, &b, 1e-5);
        println!(
            "{name} ({tile}/{pad}) stitched output: max abs {:.2e}, rel {:.2e}",
            d.max_abs, d.rel
        );
        let out = up.enhance(&frame).unwrap();
        let (n, max) = image_diff(&out, &g.image(&format!("{name}.output")));
        println!("{name}: {n} of {} values differ, by up to {max}", out.as_raw().len());
        assert!(
            max <= 1 && n * 200 <= out.as_raw().len(),
            "{name}: {n} values differ, by up to {max}"
        );
    }
    // The tile bound: the same frame through 16-pixel tiles and in one piece differs only near the
    // seams (the network sees 4 pixels of context there instead of all).
    let case = g.case("tiled");
    let frame = g.image("tiled.frame");
    let whole = RealESRGANer::with_tiles(net(case), 0, 0, &Device::Cpu)
        .enhance(&frame)
        .unwrap();
    let one = RealESRGANer::with_tiles(net(case), 400, 10, &Device::Cpu)
        .enhance(&frame)
        .unwrap();
    assert_eq!(image_diff(&whole, &one), (0, 0), "a single tile is the whole frame");
}
