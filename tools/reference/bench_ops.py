"""PyTorch side of `sadtalker-bench ops`: reads {"repeat", "threads", "cases": [{"name", "spec"}]} on stdin,
prints {name: seconds} (median or min of the runs, per "stat") on stdout. Same shapes and parameters as the Rust side (crates/bench/src/ops.rs)."""
import json
import sys
import time

import torch
import torch.nn.functional as F


def build(spec):
    op = spec["op"]
    x = torch.randn(*spec["input"])
    if op in ("conv2d", "conv3d"):
        w = torch.randn(*spec["weight"]) * 0.05
        b = torch.randn(spec["weight"][0])
        f = F.conv2d if op == "conv2d" else F.conv3d
        return lambda: f(x, w, b, stride=spec.get("stride", 1), padding=spec.get("padding", 0))
    if op == "grid_sample":
        g = torch.rand(*spec["grid"]) * 2.2 - 1.1
        return lambda: F.grid_sample(x, g, mode="bilinear", padding_mode="zeros", align_corners=False)
    if op == "upsample_nearest":
        return lambda: F.interpolate(x, scale_factor=tuple(spec["scale"]))
    if op == "batch_norm":
        c = x.shape[1]
        m, v, w, b = torch.randn(c), torch.randn(c).abs() + 0.5, torch.randn(c), torch.randn(c)
        return lambda: F.batch_norm(x, m, v, w, b, training=False)
    if op == "instance_norm":
        return lambda: F.instance_norm(x)
    if op == "avg_pool3d":
        return lambda: F.avg_pool3d(x, tuple(spec["kernel"]))
    if op == "softmax":
        return lambda: F.softmax(x, dim=-1)
    raise SystemExit(f"unknown op {op}")


def time_runs(f, repeat, stat, clock):
    now = time.process_time if clock == "cpu" else time.perf_counter
    f()
    f()
    ts = []
    for _ in range(repeat):
        s = now()
        f()
        ts.append(now() - s)
    ts.sort()
    return ts[0] if stat == "min" else ts[len(ts) // 2]


def main():
    req = json.load(sys.stdin)
    torch.set_num_threads(int(req["threads"]))
    out = {}
    with torch.no_grad():
        for c in req["cases"]:
            out[c["name"]] = time_runs(build(c["spec"]), int(req["repeat"]), req.get("stat", "median"), req.get("clock", "wall"))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
