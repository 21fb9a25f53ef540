"""Goldens for `--enhancer RestoreFormer` (crates/enhance, tests/restoreformer.rs): gfpgan's
`archs/restoreformer_arch.py` RestoreFormer on recipe weights, alone and inside GFPGANer.enhance as SadTalker's
face_enhancer.py runs it (arch='RestoreFormer', upscale 2, bg_upsampler None on CPU).

Files:

  fixtures/goldens/enhance/restoreformer.safetensors   (RawFile: f32 / u8 / i64 tensors, `cases` metadata)
      rf_32        RestoreFormer(n_embed=64, embed_dim=32, ch=32, ch_mult=(1, 2), num_res_blocks=1,
                   attn_resolutions=(16,), resolution=32, z_channels=32, head_size=8) on a 32x32 face:
                   input, the quantiser's input (`quant_conv` output), the chosen codebook indices, output.
                   The gap between the nearest and second-nearest code is printed and stored (`min_gap`,
                   relative): a parity test on an argmin needs no near-ties.
      e2e_rf       GFPGANer.enhance on the 120x120 astronaut frame with one injected detection, RestoreFormer
                   at 512 but reduced (ch=32, ch_mult=(1, 1, 1, 1, 1, 2), num_res_blocks=1, head_size=8,
                   n_embed=16, embed_dim=32, z_channels=32) and the reduced ParseNet of gen_enhance_goldens'
                   e2e case: the restored face (u8 512x512x3, RGB) and the pasted 240x240 frame.
  fixtures/official/enhance_keys.json   gains `RestoreFormer.pth`: every tensor of RestoreFormer() under
      `params_ema.` (the layout of the official file; GFPGANer also accepts `params`).

usage: python gen_restoreformer_goldens.py
"""
import json
import os

import numpy as np
import torch

import recipe
from gen_enhance_goldens import (GAIN_PARSE, RawFile, TWO_FACES_DETS, astronaut, enhance, make_restorer, normalized,
                                 parsenet)
from goldens import FIXTURES

torch.set_num_threads(2)

GAIN_RF = 1.0

RF_32 = dict(n_embed=64, embed_dim=32, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,),
             resolution=32, z_channels=32, head_size=8)
RF_512_REDUCED = dict(n_embed=16, embed_dim=32, ch=32, ch_mult=(1, 1, 1, 1, 1, 2), num_res_blocks=1,
                      attn_resolutions=(16,), resolution=512, z_channels=32, head_size=8)


def restoreformer(**kw):
    from gfpgan.archs.restoreformer_arch import RestoreFormer

    m = RestoreFormer(**kw)
    recipe.apply(m, gain=GAIN_RF)
    return m.eval()


def quant_gap(model, x):
    """Relative gap between the nearest and second-nearest codebook entry, over all positions."""
    captured = {}
    model.quant_conv.register_forward_hook(lambda mod, i, o: captured.update(h=o))
    with torch.no_grad():
        y = model(x)[0]
        z = captured["h"].permute(0, 2, 3, 1).reshape(-1, model.quantize.e_dim).double()
        e = model.quantize.embedding.weight.double()
        d = (z ** 2).sum(1, keepdim=True) + (e ** 2).sum(1) - 2 * z @ e.t()
        top = torch.topk(d, 2, dim=1, largest=False).values
        gap = ((top[:, 1] - top[:, 0]) / top[:, 0].abs().clamp_min(1e-12)).min().item()
        _, _, info = model.quantize(captured["h"])
        idx = info[2].reshape(-1)
    return y, captured["h"], idx, gap


def network_goldens(f):
    m = restoreformer(**RF_32)
    x = normalized(astronaut(32, 32))
    y, h, idx, gap = quant_gap(m, x)
    m64 = restoreformer(**RF_32).double()
    with torch.no_grad():
        y64 = m64(x.double())[0]
    rel = ((y.double() - y64).abs().max() / y64.abs().max()).item()
    print(f"rf_32: max|y| {y64.abs().max().item():.3f}, f32 vs f64 rel {rel:.2e}, "
          f"{len(torch.unique(idx))} codes used, min gap {gap:.2e}")
    assert gap > 1e-4, gap
    f.case("rf_32", {"kind": "net", **{k: list(v) if isinstance(v, tuple) else v for k, v in RF_32.items()},
                     "gain": GAIN_RF, "f64_rel_diff": rel, "min_gap": gap},
           input=x.numpy(), quant_in=h.numpy(), indices=idx.numpy().astype(np.float32), output=y.numpy())


def e2e_goldens(f):
    m = restoreformer(**RF_512_REDUCED)
    p = parsenet(in_size=512, out_size=512, base_ch=4, res_depth=1, ch_range=[4, 16])
    recipe.apply(p, gain=GAIN_PARSE)
    p.eval()
    frame = astronaut(120, 120)
    dets = TWO_FACES_DETS[:1]
    r = enhance(make_restorer(m, p, dets), frame)
    # The margin of the quantiser on this face.
    crop = r["crops"][0][:, :, ::-1].copy()  # BGR -> RGB
    _, _, _, gap = quant_gap(m, normalized(crop))
    print(f"e2e_rf: 1 face, min gap {gap:.2e}")
    assert gap > 1e-4, gap
    f.case("e2e_rf", {"kind": "e2e", "faces": 1,
                      "restoreformer": {k: list(v) if isinstance(v, tuple) else v for k, v in RF_512_REDUCED.items()},
                      "gain": GAIN_RF,
                      "parsenet": dict(in_size=512, out_size=512, base_ch=4, res_depth=1, ch_range=[4, 16]),
                      "parsenet_gain": GAIN_PARSE, "min_gap": gap},
           frame=frame, dets=dets, restored=r["restored"][0][:, :, ::-1].copy(), output=r["output"])


def layout():
    from gfpgan.archs.restoreformer_arch import RestoreFormer

    sd = RestoreFormer().state_dict()
    path = os.path.join(FIXTURES, "official", "enhance_keys.json")
    with open(path) as fh:
        manifest = json.load(fh)
    entry = {"params_ema." + k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in sorted(sd.items())}
    size = sum(v.numel() * v.element_size() for v in sd.values())
    entry["__bytes__"] = size
    official = 290785322
    print(f"RestoreFormer.pth: {len(sd)} tensors, {size} payload bytes, official file {official} "
          f"({100 * (official - size) / official:.3f}% overhead)")
    manifest["RestoreFormer.pth"] = entry
    with open(path + ".tmp", "w") as fh:
        json.dump(manifest, fh, indent=0, sort_keys=True)
    os.replace(path + ".tmp", path)


def main():
    f = RawFile("goldens/enhance/restoreformer.safetensors")
    network_goldens(f)
    e2e_goldens(f)
    f.write()
    layout()


if __name__ == "__main__":
    main()
