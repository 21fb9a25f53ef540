"""The PyTorch side of `cargo run --release -p sadtalker-preprocess --example bench_preprocess`: times the
reference's preprocessing networks (recipe weights) on the same inputs and prints JSON {stage: ms}.

Stages: detect (facexlib RetinaFace ResNet-50 forward + post-processing on the 256x256 astronaut, as
detect_faces runs it), landmarks (FAN get_landmarks on a face crop), recon (ReconNetWrapper on one
224x224 aligned face). Usage: python bench_preprocess.py [--repeat N] [--threads T]
"""
import argparse
import json
import os
import sys
import time

import numpy as np

if not hasattr(np, "float"):
    np.float = float

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from gen_preprocess_goldens import ASTRONAUT, MEDIA, fan_net, load_png, recon_net, retinaface  # noqa: E402


def timed(fn, repeat):
    fn()
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    astro = load_png(ASTRONAUT)
    crop = np.ascontiguousarray(astro[20:118, 58:150])
    aligned = load_png(os.path.join(MEDIA, "align_astronaut.png"))
    det, fan, rec = retinaface(), fan_net(1), recon_net()
    x = torch.tensor(aligned / 255.0, dtype=torch.float32).permute(2, 0, 1).unsqueeze(0)
    out = {}
    with torch.no_grad():
        out["detect"] = timed(lambda: det.detect_faces(astro, 0.97), a.repeat)
        out["landmarks"] = timed(lambda: fan.get_landmarks(crop), a.repeat)
        out["recon"] = timed(lambda: rec(x), a.repeat)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
