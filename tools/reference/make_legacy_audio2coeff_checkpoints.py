"""Writes the legacy (pre-v0.0.2-rc) Audio2Coeff checkpoints in the reference's exact container, with
deterministic recipe weights (tools/reference/recipe.py), so the Rust loader can be tested on full-size
files shaped like the real ones:

    OUT/auido2exp_00300-model.pth    {'model': SimpleWrapperV2 state_dict, 'optimizer': Adam state, 'epoch': 300}
    OUT/auido2pose_00140-model.pth   {'model': Audio2Pose state_dict, 'optimizer': Adam state, 'epoch': 140}

(the reference's `load_cpk` reads `checkpoint['model']`). Tensor values are the recipe values of the
official safetensors names (`audio2exp.` + key, `audio2pose.` + key), so a run with these files equals a
run with `SadTalker_V0.0.2_256.safetensors` in the official layout. ~130 MB of output; not committed.

The sizes come out within 0.2 % of the official files' (34278319 and 95916155 bytes).

usage: python make_legacy_audio2coeff_checkpoints.py OUT_DIR
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(__file__))
import recipe  # noqa: E402
import reference_models as rm  # noqa: E402


def checkpoint(module, trained, prefix, epoch):
    recipe.apply(module, prefix=prefix)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    # The official files carry Adam state of the trained part next to the weights (for Audio2Pose the
    # generator only: the audio encoder is frozen); a real step makes it genuine.
    params = list(trained.parameters())
    opt = torch.optim.Adam(params, lr=1e-4)
    for p in params:
        p.grad = torch.full_like(p, 1e-3)
    opt.step()
    module.load_state_dict(state)
    return {"model": module.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    pose, exp = rm.audio2coeff()
    for name, module, trained, prefix, epoch in (
        ("auido2exp_00300-model.pth", exp.netG, exp.netG, "audio2exp.", 300),
        ("auido2pose_00140-model.pth", pose, pose.netG, "audio2pose.", 140),
    ):
        path = os.path.join(out, name)
        torch.save(checkpoint(module, trained, prefix, epoch), path)
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
