"""Goldens for the face renderer (crates/render): the reference KPDetector, MappingNet, keypoint transformation,
DenseMotionNetwork and OcclusionAwareSPADEGenerator on recipe weights (gain sqrt(3): activations keep their
scale through the deep networks, while float32 rounding stays below 3e-5 on the frame -- sqrt(6) makes
the SPADE decoder so ill-conditioned that PyTorch f32 and f64 differ by 4e-2), in two sizes:

  reduced  fixtures/goldens/render/reduced_70.safetensors, reduced_73.safetensors -- the reference classes with
           few channels on 64x64 images (the SPADE decoder, whose sizes the reference hard-codes, is the reference
           SPADEDecoder's own forward on an instance built with smaller channel counts); 2 driving frames.
  full     fixtures/goldens/render/full_256.safetensors -- the official facerender.yaml networks at 256x256, 1 frame.
  local    `--local OUT_DIR`: official networks at 256 and 512, several frames and option sets (yaw/pitch/roll
           overrides, expression scale, still, the 73-input mapping); too large to commit, checked by
           `SADTALKER_RENDER_GOLDENS=OUT_DIR cargo test -p sadtalker-render --release -- --ignored`.

Tensors besides the inputs and outputs: `weights.*` hold what the recipe cannot give -- the AntiAlias Gaussian
kernel buffer (`kp_extractor.down.weight`) and converged spectral-norm vectors (`*.weight_u`, `*.weight_v`,
from power iteration on the recipe `weight_orig`, as training would leave them) -- under their checkpoint names.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn

import recipe
import reference_models as rm
from goldens import GoldenFile

GAIN = math.sqrt(3.0)
torch.set_num_threads(2)


def reduced_config(coeff_nc):
    common = dict(num_kp=15, image_channel=3, feature_channel=8, estimate_jacobian=False)
    kp = dict(temperature=0.1, block_expansion=8, max_features=64, scale_factor=0.25, num_blocks=3,
              reshape_channel=256, reshape_depth=4)
    gen = dict(block_expansion=8, max_features=64, num_down_blocks=2, reshape_channel=8, reshape_depth=8,
               num_resblocks=2, estimate_occlusion_map=True,
               dense_motion_params=dict(block_expansion=8, max_features=64, num_blocks=3, reshape_depth=8, compress=2))
    mapping = dict(coeff_nc=coeff_nc, descriptor_nc=32, layer=3, num_kp=15, num_bins=66)
    return common, kp, gen, mapping, (32, 8, 32)


def reduced_decoder(ic, oc, label_nc):
    """The reference SPADEDecoder (its forward) with smaller channel counts."""
    from sadtalker.facerender.modules.generator import SPADEDecoder
    from sadtalker.facerender.modules.util import SPADEResnetBlock

    dec = SPADEDecoder.__new__(SPADEDecoder)
    nn.Module.__init__(dec)
    norm_g = "spadespectralinstance"
    dec.fc = nn.Conv2d(ic, 2 * ic, 3, padding=1)
    for i in range(6):
        setattr(dec, f"G_middle_{i}", SPADEResnetBlock(2 * ic, 2 * ic, norm_g, label_nc))
    dec.up_0 = SPADEResnetBlock(2 * ic, ic, norm_g, label_nc)
    dec.up_1 = SPADEResnetBlock(ic, oc, norm_g, label_nc)
    dec.conv_img = nn.Conv2d(oc, 3, 3, padding=1)
    dec.up = nn.Upsample(scale_factor=2)
    return dec


def build(size_kind, coeff_nc):
    from sadtalker.facerender.modules.generator import OcclusionAwareSPADEGenerator
    from sadtalker.facerender.modules.keypoint_detector import KPDetector
    from sadtalker.facerender.modules.mapping import MappingNet

    if size_kind == "reduced":
        common, kp_p, gen_p, map_p, dec = reduced_config(coeff_nc)
        kp = KPDetector(**kp_p, **common)
        gen = OcclusionAwareSPADEGenerator(**gen_p, **common)
        gen.decoder = reduced_decoder(*dec)
        mapping = MappingNet(**map_p)
    else:
        kp, gen, _he, mapping = rm.facerender(still=(coeff_nc == 73))
    return kp, gen, mapping


def spectral_modules(module):
    for name, m in module.named_modules():
        if hasattr(m, "weight_orig") and hasattr(m, "weight_u"):
            yield name, m


def fill_weights(kp, gen, mapping):
    """Recipe weights under the official names; returns the tensors the recipe cannot give."""
    kernel = kp.down.weight.clone()
    extra = {"kp_extractor.down.weight": kernel}
    for prefix, m in (("kp_extractor.", kp), ("generator.", gen), ("mapping.", mapping)):
        recipe.apply(m, prefix=prefix, gain=GAIN)
    with torch.no_grad():
        kp.down.weight.copy_(kernel)
        for name, m in spectral_modules(gen):
            w = m.weight_orig.detach().double().reshape(m.weight_orig.shape[0], -1)
            u = torch.ones(w.shape[0], dtype=torch.float64) / math.sqrt(w.shape[0])
            for _ in range(60):
                v = w.t() @ u
                v = v / v.norm()
                u = w @ v
                u = u / u.norm()
            m.weight_u.copy_(u.float())
            m.weight_v.copy_(v.float())
            extra[f"generator.{name}.weight_u"] = m.weight_u.clone()
            extra[f"generator.{name}.weight_v"] = m.weight_v.clone()
    for m in (kp, gen, mapping):
        m.eval()
    return extra


def source_image(size):
    import skimage.data
    import skimage.transform

    img = skimage.data.astronaut()[:400, 50:450]  # the face region, square
    img = skimage.transform.resize(img, (size, size), anti_aliasing=True)
    # Quantise as a PNG would, then to [0, 1] as the reference loads it.
    img = np.round(img * 255).astype(np.uint8).astype(np.float32) / 255
    return torch.from_numpy(img.transpose(2, 0, 1).copy())[None]


def semantics(gen, coeff_nc, frames):
    # 3DMM-like magnitudes: expression ~N(0, 0.6), angles ~0.15 rad, translation ~0.1, crop params ~N(0, 0.3).
    scale = torch.cat([torch.full((64,), 0.6), torch.full((3,), 0.15), torch.full((3,), 0.1), torch.full((coeff_nc - 70,), 0.3)])
    return torch.randn(frames, coeff_nc, 27, generator=gen) * scale[None, :, None]


def run_case(g, prefix, size_kind, coeff_nc, image_size, frames, overrides, seed):
    from sadtalker.facerender.modules.make_animation import keypoint_transformation

    torch.manual_seed(seed)
    kp, gen, mapping = build(size_kind, coeff_nc)
    extra = fill_weights(kp, gen, mapping)
    rng = torch.Generator().manual_seed(seed)
    src = source_image(image_size)
    src_sem = semantics(rng, coeff_nc, 1)
    drv_sem = semantics(rng, coeff_nc, frames)
    captured = {}
    gen.dense_motion_network.register_forward_hook(lambda m, i, o: captured.update(o))
    with torch.no_grad():
        kp_canonical = kp(src)
        he_source = mapping(src_sem)
        kp_source = keypoint_transformation(kp_canonical, he_source)
        he_driving = mapping(drv_sem)
        raw = {k: v.clone() for k, v in he_driving.items()}
        for key in ("yaw", "pitch", "roll"):
            if overrides.get(key) is not None:
                he_driving[key + "_in"] = torch.tensor(overrides[key], dtype=torch.float32)
        kp_canonical_b = {"value": kp_canonical["value"].repeat(frames, 1, 1)}
        kp_driving = keypoint_transformation(kp_canonical_b, he_driving)
        kp_source_b = {"value": kp_source["value"].repeat(frames, 1, 1)}
        out = gen(src.repeat(frames, 1, 1, 1), kp_driving=kp_driving, kp_source=kp_source_b)
    params = {"op": "render", "kind": size_kind, "coeff_nc": coeff_nc, "image_size": image_size, "frames": frames}
    for key in ("yaw", "pitch", "roll"):
        if overrides.get(key) is not None:
            params[key] = overrides[key]
    tensors = dict(
        source_image=src,
        source_semantics=src_sem[0],
        driving_semantics=drv_sem,
        kp_canonical=kp_canonical["value"],
        kp_source=kp_source["value"],
        he_yaw=raw["yaw"], he_pitch=raw["pitch"], he_roll=raw["roll"], he_t=raw["t"], he_exp=raw["exp"],
        kp_driving=kp_driving["value"],
        occlusion_map=captured["occlusion_map"],
        prediction=out["prediction"],
    )
    if size_kind == "reduced":
        tensors["deformation"] = captured["deformation"]
        tensors["mask"] = captured["mask"]
    g.case(prefix, params, **tensors)
    for k, v in extra.items():
        g.tensors[f"{prefix}.weights.{k}"] = v.detach().numpy().astype(np.float32)


def resize_goldens():
    """skimage.transform.resize as get_facerender_data calls it, on odd sizes both ways."""
    from skimage import img_as_float32, transform

    g = GoldenFile("goldens/render/resize.safetensors")
    rng = np.random.default_rng(5)
    for name, (h, w), size in [("down_37x53", (37, 53), 16), ("up_10x12", (10, 12), 16), ("down_rect_64x40", (64, 40), 24)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        out = transform.resize(img_as_float32(img), (size, size, 3))
        g.case(name, {"op": "resize", "size": size}, input=img.astype(np.float32), output=out)
    g.write()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--resize":
        resize_goldens()
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--local":
        out = sys.argv[2]
        os.makedirs(out, exist_ok=True)
        g = GoldenFile(os.path.relpath(os.path.join(out, "local.safetensors"), os.path.join(rm.ROOT, "fixtures")))
        run_case(g, "full256_yaw", "full", 70, 256, 2, {"yaw": [10.0, -20.0]}, 11)
        run_case(g, "full256_pitch_roll", "full", 70, 256, 2, {"pitch": [5.0, -5.0], "roll": [15.0, 0.0]}, 12)
        run_case(g, "full256_full73", "full", 73, 256, 2, {}, 13)
        run_case(g, "full512", "full", 70, 512, 1, {}, 14)
        g.write()
        return
    g = GoldenFile("goldens/render/reduced.safetensors")
    run_case(g, "reduced_70", "reduced", 70, 64, 2, {}, 1)
    run_case(g, "reduced_73_yaw", "reduced", 73, 64, 2, {"yaw": [12.5, -30.0]}, 2)
    g.write()
    g = GoldenFile("goldens/render/full_256.safetensors")
    run_case(g, "full_256", "full", 70, 256, 1, {}, 3)
    g.write()
    resize_goldens()


if __name__ == "__main__":
    main()
