"""Reference side of `sadtalker-bench render`: times the reference's make_animation loop (KPDetector +
MappingNet once, then MappingNet + keypoint transformation + OcclusionAwareSPADEGenerator per batch of frames)
on the same recipe weights and inputs as the Rust side (the full_256 render golden). Reads
{"size", "frames", "batch_size", "threads", "clock", "device"} on stdin (device: "cpu", the default, or
"cuda"); prints {"prepare_s", "per_frame_s", "device"}.

`prepare_s` is the same work as our `FaceRenderer::prepare`: the keypoint detector and mapping net on
the source, plus the generator's source encoding (first, down blocks, second, resblocks_3d) and the
dense-motion net's feature compression for one image — which the reference repeats inside every
generator call, and which is therefore also part of its `per_frame_s`."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import gen_render_goldens as G


def main():
    req = json.load(sys.stdin)
    torch.set_num_threads(int(req["threads"]))
    from sadtalker.facerender.modules.make_animation import keypoint_transformation

    golden = load_file(os.path.join(G.rm.ROOT, "fixtures", "goldens", "render", "full_256.safetensors"))
    torch.manual_seed(3)
    kp, gen, mapping = G.build("full", 70)
    G.fill_weights(kp, gen, mapping)
    size, bs, frames = int(req["size"]), int(req["batch_size"]), int(req["frames"])
    dev = torch.device(req.get("device", "cpu"))
    for m in (kp, gen, mapping):
        m.to(dev)
    clock = time.process_time if req.get("clock") == "cpu" else time.perf_counter

    def now():
        # GPU work is asynchronous: time what has finished.
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return clock()

    golden = {k: v.to(dev) for k, v in golden.items() if k.startswith("full_256.")}
    src = golden["full_256.source_image"]
    if size != 256:
        src = F.interpolate(src, size=(size, size), mode="bilinear", align_corners=False)
    src_sem = golden["full_256.source_semantics"][None]
    drv = golden["full_256.driving_semantics"][0][None].repeat(bs, 1, 1)
    src_b = src.repeat(bs, 1, 1, 1)
    with torch.no_grad():
        def encode(img):
            out = gen.first(img)
            for block in gen.down_blocks:
                out = block(out)
            out = gen.second(out)
            b, _, h, w = out.shape
            feature_3d = gen.resblocks_3d(out.view(b, gen.reshape_channel, gen.reshape_depth, h, w))
            dm = gen.dense_motion_network
            return F.relu(dm.norm(dm.compress(feature_3d)))

        kp(src)  # warm-up, as our side times a warm preparation
        encode(src)
        s = now()
        kp_canonical = kp(src)
        keypoint_transformation(kp_canonical, mapping(src_sem))
        encode(src)
        prepare = now() - s
        kp_canonical = kp(src_b)
        kp_source = keypoint_transformation(kp_canonical, mapping(src_sem.repeat(bs, 1, 1)))

        def step():
            he = mapping(drv)
            kp_driving = keypoint_transformation(kp_canonical, he)
            gen(src_b, kp_source=kp_source, kp_driving=kp_driving)

        step()  # warm-up
        calls = -(-frames // bs)
        s = now()
        for _ in range(calls):
            step()
        per_frame = (now() - s) / (calls * bs)
    json.dump({"prepare_s": prepare, "per_frame_s": per_frame, "device": str(dev)}, sys.stdout)


if __name__ == "__main__":
    main()
