"""Goldens for `--background_enhancer realesrgan` (crates/enhance, tests/realesrgan.rs): basicsr's RRDBNet
(`archs/rrdbnet_arch.py`) inside realesrgan's RealESRGANer (`utils.py`) as SadTalker's face_enhancer.py builds
it (scale 2, tile 400, tile_pad 10, pre_pad 0; f32 here, the reference's CPU precision), on recipe weights,
and GFPGANer.enhance with it as `bg_upsampler`.

File fixtures/goldens/enhance/realesrgan.safetensors (RawFile: f32 / u8 tensors, `cases` metadata):
  rrdb_net     RRDBNet(num_feat=16, num_block=2, num_grow_ch=8, scale=2) on a 3x24x20 input in [0, 1]: output.
  tiled        RealESRGANer.enhance with that network, tile=16, tile_pad=4 on a 45x37 frame (odd sides:
               reflect mod-padding; 3x3 tiles, edges and corners), u8 in and out, and `raw`: the stitched
               network output in [0, 1] (f32, 3 x 74 x 90; enhance clamps `output` in place).
  untiled      the same frame with tile=400 (SadTalker's setting: one tile).
  e2e_bg       GFPGANer.enhance on the 120x120 astronaut frame, one injected face, the reduced GFPGAN and
               ParseNet of gen_enhance_goldens' e2e case, and the tile-16 RealESRGANer as bg_upsampler.
  fixtures/official/enhance_keys.json gains `RealESRGAN_x2plus.pth`: RRDBNet x2plus's tensors under
  `params_ema.` (the layout RealESRGANer loads).

usage: python gen_realesrgan_goldens.py
"""
import json
import os

import numpy as np
import torch

import recipe
from gen_enhance_goldens import RawFile, TWO_FACES_DETS, astronaut, enhance, make_restorer, reduced_e2e_models
from goldens import FIXTURES

torch.set_num_threads(2)

GAIN = 2.0
RRDB_REDUCED = dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, num_grow_ch=8, scale=2)


def rrdbnet(**kw):
    from basicsr.archs.rrdbnet_arch import RRDBNet

    m = RRDBNet(**kw)
    recipe.apply(m, gain=GAIN)
    return m.eval()


def upsampler(model, tile, tile_pad):
    from realesrgan import RealESRGANer

    r = RealESRGANer.__new__(RealESRGANer)
    r.scale = 2
    r.tile_size = tile
    r.tile_pad = tile_pad
    r.pre_pad = 0
    r.mod_scale = None
    r.half = False
    r.device = torch.device("cpu")
    r.model = model
    return r


def bgr(rgb):
    return np.ascontiguousarray(rgb[:, :, ::-1])


def main():
    f = RawFile("goldens/enhance/realesrgan.safetensors")
    m = rrdbnet(**RRDB_REDUCED)
    x = torch.from_numpy(recipe.values("input", (1, 3, 24, 20)) * 0.5 + 0.5)
    with torch.no_grad():
        y = m(x)
    m64 = rrdbnet(**RRDB_REDUCED).double()
    with torch.no_grad():
        y64 = m64(x.double())
    rel = ((y.double() - y64).abs().max() / y64.abs().max()).item()
    print(f"rrdb_net: max|y| {y64.abs().max().item():.3f}, mean {y64.mean().item():.3f}, f32 vs f64 rel {rel:.2e}")
    f.case("rrdb_net", {"kind": "net", **RRDB_REDUCED, "gain": GAIN, "f64_rel_diff": rel},
           input=x.numpy(), output=y.numpy())

    frame = astronaut(37, 45)
    for name, tile, pad in [("tiled", 16, 4), ("untiled", 400, 10)]:
        up = upsampler(m, tile, pad)
        with torch.no_grad():
            out, mode = up.enhance(bgr(frame), outscale=2)
        assert mode == "RGB" and out.shape == (74, 90, 3), (mode, out.shape)
        # `up.output`: the network's stitched output after post_process (RGB planes), clamped in place by
        # enhance's `.float().cpu().clamp_(0, 1)`.
        f.case(name, {"kind": "upsampler", "tile": tile, "tile_pad": pad, **RRDB_REDUCED, "gain": GAIN},
               frame=frame, output=bgr(out), raw=up.output[0].float().numpy())
        print(f"{name}: {out.shape}, mean {out.mean():.1f}")

    g, p = reduced_e2e_models()
    big = astronaut(120, 120)
    restorer = make_restorer(g, p, TWO_FACES_DETS[:1])
    restorer.bg_upsampler = upsampler(m, 16, 4)
    r = enhance(restorer, big)
    f.case("e2e_bg", {"kind": "e2e", "faces": 1, "tile": 16, "tile_pad": 4, **RRDB_REDUCED, "gain": GAIN},
           frame=big, dets=TWO_FACES_DETS[:1], output=r["output"])
    f.write()

    from basicsr.archs.rrdbnet_arch import RRDBNet

    sd = RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=2).state_dict()
    path = os.path.join(FIXTURES, "official", "enhance_keys.json")
    with open(path) as fh:
        manifest = json.load(fh)
    entry = {"params_ema." + k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in sorted(sd.items())}
    size = sum(v.numel() * v.element_size() for v in sd.values())
    entry["__bytes__"] = size
    official = 67061725
    print(f"RealESRGAN_x2plus.pth: {len(sd)} tensors, {size} payload bytes, published size {official} "
          f"({100 * (official - size) / official:.3f}% overhead)")
    manifest["RealESRGAN_x2plus.pth"] = entry
    with open(path + ".tmp", "w") as fh:
        json.dump(manifest, fh, indent=0, sort_keys=True)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
