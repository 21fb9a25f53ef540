"""Reference side of crates/pipeline/examples/bench_generate.rs: the reference's whole inference.py chain,
end to end, on one portrait and CLIP seconds of speech, with every network holding the recipe weights
(the same values as the official-format files of make_official_checkpoints.py), timed.

The chain is gen_pipeline_goldens.py's (detection replaced by the astronaut's injected landmarks, as on
the Rust side), plus the video the reference writes: imageio's MP4 (libx264 through imageio-ffmpeg),
then ffmpeg muxing the audio as save_video_with_watermark does (without the watermark).

    ~/.cache/sadtalker-reference/bin/python tools/reference/bench_pipeline.py --audio CLIP.wav --out DIR [--threads T]

Prints one JSON line: seconds for building the networks (`load`, recipe values written into torch
modules: not comparable with reading files, reported apart), for the chain (`run`), per stage, frames,
and peak RSS (ru_maxrss) in MB.
"""
import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import gen_pipeline_goldens as gpg  # noqa: E402
import gen_preprocess_goldens as gp  # noqa: E402

import cv2  # noqa: E402
import imageio  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from skimage import img_as_ubyte  # noqa: E402

from sadtalker.facerender.modules.make_animation import make_animation  # noqa: E402
from sadtalker.generate_batch import get_data  # noqa: E402
from sadtalker.generate_facerender_batch import get_facerender_data  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--audio", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--preprocess", default="crop")
    ap.add_argument("--size", type=int, default=256)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    stages = {}

    t0 = time.perf_counter()
    a2c = gpg.audio2coeff()
    lm = gp.synth_landmarks(**gp.ASTRO_LM)
    cae, prime = gpg.extractor(a.preprocess, lm, a.size)
    kp, gen, he, mapping = gpg.facerender("full" in a.preprocess)
    load = time.perf_counter() - t0

    t_run = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        pic_path = os.path.join(d, "astronaut.png")
        shutil.copy(gp.ASTRONAUT, pic_path)
        audio_path = os.path.join(d, "speech.wav")
        shutil.copy(a.audio, audio_path)
        first_dir = os.path.join(d, "first_frame_dir")
        os.makedirs(first_dir)
        t = time.perf_counter()
        prime(pic_path)
        first_coeff_path, crop_pic_path, crop_info = cae.generate(pic_path, first_dir, a.preprocess,
                                                                  source_image_flag=True, pic_size=a.size)
        stages["preprocess"] = time.perf_counter() - t
        t = time.perf_counter()
        random.seed(0)
        batch = get_data(first_coeff_path, audio_path, "cpu", None, still=False)
        stages["audio"] = time.perf_counter() - t
        t = time.perf_counter()
        torch.manual_seed(0)
        coeff_path = a2c.generate(batch, d, 0, None)
        stages["audio2coeff"] = time.perf_counter() - t
        t = time.perf_counter()
        data = get_facerender_data(coeff_path, crop_pic_path, first_coeff_path, audio_path, 2, None, None, None,
                                   expression_scale=1.0, still_mode=False, preprocess=a.preprocess, size=a.size)
        pred = make_animation(data["source_image"], data["source_semantics"], data["target_semantics_list"], gen,
                              kp, he, mapping, data.get("yaw_c_seq"), data.get("pitch_c_seq"),
                              data.get("roll_c_seq"), use_exp=True)
        pred = pred.reshape((-1,) + pred.shape[2:])[: data["frame_num"]]
        video = [np.transpose(p.numpy(), [1, 2, 0]).astype(np.float32) for p in pred]
        result = img_as_ubyte(video)
        original_size = crop_info[0]
        if original_size:
            result = [cv2.resize(r, (a.size, int(a.size * original_size[1] / original_size[0]))) for r in result]
        if "full" in a.preprocess:
            result = gpg.paste(result, pic_path, crop_info, "ext" in a.preprocess)
        stages["render"] = time.perf_counter() - t
        t = time.perf_counter()
        silent = os.path.join(d, "silent.mp4")
        imageio.mimsave(silent, result, fps=float(25))
        os.makedirs(a.out, exist_ok=True)
        out = os.path.join(a.out, "reference.mp4")
        ffmpeg = shutil.which("ffmpeg") or __import__("imageio_ffmpeg").get_ffmpeg_exe()
        subprocess.run([ffmpeg, "-y", "-hide_banner", "-loglevel", "error", "-i", silent, "-i", audio_path,
                        "-vcodec", "copy", out], check=True)
        stages["encode"] = time.perf_counter() - t
        frames = len(result)
    run = time.perf_counter() - t_run
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"load": load, "run": run, "stages": stages, "frames": frames, "peak_rss_mb": rss_mb,
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()
