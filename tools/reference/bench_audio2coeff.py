"""Reference side of `cargo run --release -p sadtalker-audio2coeff --example bench`: times the
reference's `Audio2Coeff.generate` (Audio2Exp, Audio2Pose, Savitzky-Golay, savemat) on `frames` video
frames of random mel windows, full-size networks with recipe weights, and prints JSON
{"frames", "runs": [seconds, ...], "threads"}.

usage: python bench_audio2coeff.py FRAMES REPEAT [THREADS]
"""
import contextlib
import io
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from gen_audio2coeff_goldens import build  # noqa: E402


def main():
    frames, repeat = int(sys.argv[1]), int(sys.argv[2])
    if len(sys.argv) > 3:
        torch.set_num_threads(int(sys.argv[3]))
    a2c = build()
    rng = np.random.default_rng(0)
    mels = torch.from_numpy(rng.uniform(-4, 4, (1, frames, 1, 80, 16)).astype(np.float32))
    batch = {
        "indiv_mels": mels,
        "ref": torch.zeros(1, frames, 70),
        "num_frames": frames,
        "ratio_gt": torch.zeros(1, frames, 1),
        "audio_name": "bench",
        "pic_name": "bench",
    }
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat + 1):
            t = time.perf_counter()
            # tqdm progress bars go to stderr; keep the JSON line alone on stdout.
            with contextlib.redirect_stderr(io.StringIO()), torch.no_grad():
                a2c.generate(dict(batch), tmp, 0, None)
            if i > 0:  # the first run warms up
                runs.append(time.perf_counter() - t)
    print(json.dumps({"frames": frames, "runs": runs, "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
