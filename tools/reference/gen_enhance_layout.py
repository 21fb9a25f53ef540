"""The enhancer's model files as the official ones are laid out, for the Rust loaders' tests (crates/enhance,
tests/layout.rs):

  fixtures/official/enhance_keys.json   per official file, every tensor name -> [dtype, shape], from the
      reference classes as facexlib / gfpgan build them:
        GFPGANv1.4.pth                 torch zip, {'params_ema': GFPGANv1Clean(512, narrow=1, 512) state dict}
        parsing_parsenet.pth           a plain ParseNet(512, 512, parsing_ch=19) state dict
        detection_Resnet50_Final.pth   RetinaFace(resnet50) state dict under `module.` (trained with
                                       DataParallel; facexlib's init_detection_model strips the prefix)
      plus `__bytes__`: the f32 payload in bytes, printed next to the official file size as a check that the
      key set is complete (the difference is the pickle/zip overhead, well under 1%).
  fixtures/enhance/gfpgan_tiny_params_ema.pth   the same layout as GFPGANv1.4.pth (torch zip, `params_ema`)
      for a tiny GFPGANv1Clean (out 32, narrow 1/64, style 16) on recipe weights (gain sqrt 3).
  fixtures/enhance/parsenet_tiny.pth            a plain state dict of a tiny ParseNet (in/out 32, min feat 8,
      base 4, 1 res block, channels 4..8) on recipe weights (gain sqrt 2).

usage: python gen_enhance_layout.py
"""
import json
import math
import os

import torch

import recipe
from gen_enhance_goldens import gfpgan, parsenet
from goldens import FIXTURES

OFFICIAL_BYTES = {"GFPGANv1.4.pth": 348632874, "parsing_parsenet.pth": 85331193,
                  "detection_Resnet50_Final.pth": 109497761}


def describe(sd, prefix=""):
    return {prefix + k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in sorted(sd.items())}


def payload(sd):
    return sum(v.numel() * v.element_size() for v in sd.values())


def main():
    from facexlib.detection.retinaface import RetinaFace

    files = {
        "GFPGANv1.4.pth": ("params_ema.", gfpgan(512, 1, 512).state_dict()),
        "parsing_parsenet.pth": ("", parsenet(in_size=512, out_size=512).state_dict()),
        "detection_Resnet50_Final.pth": ("module.", RetinaFace(network_name="resnet50", half=False,
                                                               device="cpu").state_dict()),
    }
    manifest = {}
    for name, (prefix, sd) in files.items():
        manifest[name] = describe(sd, prefix)
        size = payload(sd)
        manifest[name]["__bytes__"] = size
        print(f"{name}: {len(sd)} tensors, {size} payload bytes, official file {OFFICIAL_BYTES[name]} "
              f"({100 * (OFFICIAL_BYTES[name] - size) / OFFICIAL_BYTES[name]:.3f}% overhead)")
    path = os.path.join(FIXTURES, "official", "enhance_keys.json")
    with open(path + ".tmp", "w") as f:
        json.dump(manifest, f, indent=0, sort_keys=True)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")

    os.makedirs(os.path.join(FIXTURES, "enhance"), exist_ok=True)
    m = gfpgan(32, 1 / 64, 16)
    recipe.apply(m, gain=math.sqrt(3.0))
    path = os.path.join(FIXTURES, "enhance", "gfpgan_tiny_params_ema.pth")
    torch.save({"params_ema": m.state_dict()}, path)
    print(f"wrote {path}: {os.path.getsize(path)} bytes")
    p = parsenet(in_size=32, out_size=32, min_feat_size=8, base_ch=4, res_depth=1, ch_range=[4, 8])
    recipe.apply(p, gain=math.sqrt(2.0))
    path = os.path.join(FIXTURES, "enhance", "parsenet_tiny.pth")
    torch.save(p.state_dict(), path)
    print(f"wrote {path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
