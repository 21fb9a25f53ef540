"""The PyTorch side of `sadtalker-bench enhance` (crates/bench/src/enhance.rs): milliseconds per
frame of gfpgan's GFPGANer.enhance as SadTalker calls it (upscale 2, arch 'clean', paste back, ParseNet
mask) with the official-size GFPGANv1Clean and ParseNet on recipe weights, on the 256x256 astronaut
(fixtures/preprocess/astronaut.png): a 512x512 frame comes out.

Recipe weights make RetinaFace find no face, so its detections are replaced by one fixed face
(BENCH_LANDMARKS) after the real RetinaFace (recipe weights) has run on the frame: the timing includes
detection, alignment, GFPGAN, ParseNet and pasting. Prints JSON {"wall_ms", "cpu_ms": the fastest run's
wall and process CPU ms (all threads), "wall_ms_median", "cpu_ms_median", "threads": T, "device"}: on a
shared machine the CPU time is the steadier figure. `--device cuda` runs the networks on torch CUDA (each
frame's result comes back as a numpy image, so the timing includes the device's work).

usage: python bench_enhance.py [--repeat N] [--threads T] [--device cpu|cuda]
"""
import argparse
import json
import math
import os
import sys
import time

import cv2
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
import recipe  # noqa: E402
from gen_enhance_goldens import GAIN_GFPGAN, GAIN_PARSE, det_row, gfpgan, make_restorer, parsenet  # noqa: E402
from goldens import FIXTURES  # noqa: E402

BENCH_LANDMARKS = [[108.07, 76.8], [144.73, 74.27], [127.93, 94.93], [112.47, 114.53], [142.47, 112.53]]


class DetectThenInject:
    """Runs the real RetinaFace (recipe weights), then returns the fixed face."""

    def __init__(self, net, dets):
        self.net, self.dets = net, dets

    def detect_faces(self, image, conf_threshold=0.8, nms_threshold=0.4, use_origin_size=True):
        self.net.detect_faces(image, conf_threshold, nms_threshold, use_origin_size)
        return self.dets.copy()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    from facexlib.detection.retinaface import RetinaFace

    m = gfpgan(512, 1, 512)
    recipe.apply(m, gain=GAIN_GFPGAN)
    p = parsenet(in_size=512, out_size=512)
    recipe.apply(p, gain=GAIN_PARSE)
    det = RetinaFace(network_name="resnet50", half=False, device=a.device)
    recipe.apply(det)
    det.eval()
    m, p, det = m.to(a.device), p.to(a.device), det.to(a.device)
    dets = det_row(BENCH_LANDMARKS)[None]
    restorer = make_restorer(m.eval(), p.eval(), dets, device=a.device)
    restorer.face_helper.face_det = DetectThenInject(det, dets)
    img = cv2.imread(os.path.join(FIXTURES, "preprocess", "astronaut.png"))

    def once():
        restorer.face_helper.clean_all()
        with torch.no_grad():
            _, restored, out = restorer.enhance(img, has_aligned=False, only_center_face=False, paste_back=True)
        assert len(restored) == 1 and out.shape == (512, 512, 3)

    once()
    wall, cpu = [], []
    for _ in range(a.repeat):
        t, c = time.perf_counter(), time.process_time()
        once()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.process_time() - c) * 1000)
    print(json.dumps({"wall_ms": min(wall), "cpu_ms": min(cpu), "wall_ms_median": sorted(wall)[len(wall) // 2],
                      "cpu_ms_median": sorted(cpu)[len(cpu) // 2], "threads": torch.get_num_threads(),
                      "device": a.device}))


if __name__ == "__main__":
    main()
