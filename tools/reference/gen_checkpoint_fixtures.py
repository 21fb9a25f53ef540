"""Small checkpoints written by torch / the reference code in the official containers, for the Rust readers.

fixtures/checkpoints/
  mapping_small.pth.tar          torch.save zip: {'mapping': MappingNet(descriptor_nc=16) state, 'optimizer_mapping':
                                 Adam state, 'epoch': 109} -- the layout of the official mapping_00109-model.pth.tar;
                                 weights are recipe values named 'mapping.<key>'
  mapping_small_legacy.pth.tar   the same, legacy (pre-1.6) torch.save format
  mapping_small_wrongshape.pth.tar  the same with mapping.fc_exp.weight one row short
  auido2exp_00300-model.pth      a zip whose record name has 21 characters (76-byte first directory entry)
  views.pth                      strided / shared / offset storages and non-f32 dtypes
  views_expected.safetensors     the values views.pth must read as (contiguous float32)
  recipe_small.safetensors       recipe values for a few names/shapes, to pin Rust == Python bit for bit
  recipe_gain_small.safetensors  the same with gain sqrt(6)
"""
import math
import os

import torch
from safetensors.numpy import save_file

import recipe
from goldens import FIXTURES

OUT = os.path.join(FIXTURES, "checkpoints")


def small_mapping():
    from sadtalker.facerender.modules.mapping import MappingNet

    m = MappingNet(coeff_nc=73, descriptor_nc=16, layer=3, num_kp=15, num_bins=66)
    recipe.apply(m, prefix="mapping.")
    ref = {k: v.clone() for k, v in m.state_dict().items()}
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)
    for p in m.parameters():
        p.grad = torch.full_like(p, 1e-3)
    opt.step()
    m.load_state_dict(ref)
    return {"mapping": m.state_dict(), "optimizer_mapping": opt.state_dict(), "epoch": 109}


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    ck = small_mapping()
    torch.save(ck, os.path.join(OUT, "mapping_small.pth.tar"))
    torch.save(ck, os.path.join(OUT, "mapping_small_legacy.pth.tar"), _use_new_zipfile_serialization=False)
    bad = dict(ck)
    bad["mapping"] = dict(ck["mapping"])
    bad["mapping"]["fc_exp.weight"] = bad["mapping"]["fc_exp.weight"][:-1].clone()
    torch.save(bad, os.path.join(OUT, "mapping_small_wrongshape.pth.tar"))

    # A 21-character record name inside the zip (what torch derives from this file name) makes the
    # first central-directory entry exactly 76 bytes: the case the vendored pytorch-reader patch fixes.
    torch.save({"model": {"w": torch.arange(6, dtype=torch.float32)}}, os.path.join(OUT, "auido2exp_00300-model.pth"))

    base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 7
    views = {
        "base": base,
        "row": base[1],  # offset into a shared storage
        "t": base.t(),  # transposed: non-contiguous
        "cols": base[:, 2:5],  # strided slice
        "step": base[::2, ::3],  # strides > 1
        "half": (base * 3).half(),
        "bf16": (base - 1).bfloat16(),
        "f64": base.double() / 3,
    }
    torch.save({"net": views, "nbt": torch.tensor(5)}, os.path.join(OUT, "views.pth"))
    save_file({k: v.float().contiguous().numpy() for k, v in views.items()}, os.path.join(OUT, "views_expected.safetensors"))

    pins = {
        "enc.conv.weight": (8, 4, 3, 3),
        "enc.norm.weight": (8,),
        "enc.norm.bias": (8,),
        "enc.norm.running_mean": (8,),
        "enc.norm.running_var": (8,),
        "fc.weight": (5, 7),
        "generator.first.conv.weight": (64, 3, 7, 7),
    }
    save_file({k: recipe.values(k, s) for k, s in pins.items()}, os.path.join(OUT, "recipe_small.safetensors"))
    gain = math.sqrt(6.0)
    save_file({k: recipe.values(k, s, gain=gain) for k, s in pins.items()}, os.path.join(OUT, "recipe_gain_small.safetensors"))
    for f in sorted(os.listdir(OUT)):
        print(f"fixtures/checkpoints/{f}: {os.path.getsize(os.path.join(OUT, f)) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
