"""Writes full-size checkpoints in the exact official formats and key names, with deterministic recipe
weights (tools/reference/recipe.py), so the Rust loaders can be tested on files shaped like the real ones:

    OUT/SadTalker_V0.0.2_256.safetensors   kp_extractor. generator. audio2pose. audio2exp. face_3drecon.
    OUT/mapping_00229-model.pth.tar         {'mapping', 'optimizer_mapping', 'epoch'}  (facerender.yaml, 70 inputs)
    OUT/mapping_00109-model.pth.tar         the same for facerender_still.yaml (73 inputs)

and the committed key manifest fixtures/official/keys.json (name -> [dtype, shape] per file). The
safetensors file written here has the same byte size as the official one when the key set is right
(the script prints both). ~1 GB of output; not committed.

usage: python make_official_checkpoints.py OUT_DIR [--keys-only]
"""
import json
import os
import sys

import numpy as np
import torch

import recipe
import reference_models as rm

OFFICIAL_SIZE = 725066984


def recipe_state(prefix: str, module):
    out = {}
    for k, t in module.state_dict().items():
        name = f"{prefix}.{k}"
        if t.dtype.is_floating_point:
            out[name] = torch.from_numpy(recipe.values(name, t.shape))
        else:
            out[name] = torch.zeros_like(t)
    return out


def describe(sd):
    return {k: [str(v.dtype).replace("torch.", ""), list(v.shape)] for k, v in sorted(sd.items())}


def mapping_checkpoint(still: bool):
    _kp, _gen, _he, mapping = rm.facerender(still)
    state = recipe_state("mapping", mapping)
    mapping.load_state_dict({k[len("mapping."):]: v for k, v in state.items()})
    # The official files carry optimizer state next to the weights; a real Adam step makes it genuine.
    opt = torch.optim.Adam(mapping.parameters(), lr=1e-4)
    for p in mapping.parameters():
        p.grad = torch.full_like(p, 1e-3)
    opt.step()
    mapping.load_state_dict({k[len("mapping."):]: v for k, v in state.items()})
    return {"mapping": mapping.state_dict(), "optimizer_mapping": opt.state_dict(), "epoch": 109 if still else 229}


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    keys_only = "--keys-only" in sys.argv
    os.makedirs(out, exist_ok=True)
    modules = rm.safetensors_modules()
    sd = {}
    manifest = {}
    for prefix, m in modules.items():
        sd.update(recipe_state(prefix, m) if not keys_only else {f"{prefix}.{k}": v for k, v in m.state_dict().items()})
    manifest["SadTalker_V0.0.2_256.safetensors"] = describe(sd)
    for still, name in ((False, "mapping_00229-model.pth.tar"), (True, "mapping_00109-model.pth.tar")):
        ck = mapping_checkpoint(still)
        manifest[name] = describe({f"mapping.{k}": v for k, v in ck["mapping"].items()})
        if not keys_only:
            torch.save(ck, os.path.join(out, name))
    if not keys_only:
        from safetensors.torch import save_file

        path = os.path.join(out, "SadTalker_V0.0.2_256.safetensors")
        save_file({k: v.contiguous() for k, v in sd.items()}, path)
        size = os.path.getsize(path)
        print(f"{path}: {size} bytes (official file: {OFFICIAL_SIZE}; {'SAME' if size == OFFICIAL_SIZE else 'DIFFERENT'})")
    keys_path = os.path.join(rm.ROOT, "fixtures", "official", "keys.json")
    os.makedirs(os.path.dirname(keys_path), exist_ok=True)
    with open(keys_path, "w") as f:
        json.dump(manifest, f, indent=0, sort_keys=True)
    print(f"wrote {os.path.relpath(keys_path, rm.ROOT)} ({sum(len(v) for v in manifest.values())} tensors)")


if __name__ == "__main__":
    main()
