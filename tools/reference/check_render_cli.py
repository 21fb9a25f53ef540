"""Local check of `sadtalker render` on files the reference produced (issue: "render turns a reference-produced
coefficient file into frames that match the reference's"): runs the reference's extract + Audio2Coeff on the
astronaut and 3 frames of speech (crop mode, recipe weights under the official names, as
gen_pipeline_goldens.py), keeps its coefficient .mat files and cropped portrait, renders them with the reference
(make_animation + img_as_ubyte, before any resize), then runs `sadtalker render` on the same files with
official-format checkpoint files holding the same recipe weights (make_official_checkpoints.py OUT) and compares
the PNG frames.

    python tools/reference/check_render_cli.py SADTALKER_BIN CHECKPOINT_DIR WORK_DIR

Prints per-frame PSNR and the largest difference; exits 1 if a frame is below 40 dB.
"""
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import torch
from PIL import Image
from skimage import img_as_ubyte

sys.path.insert(0, os.path.dirname(__file__))
import gen_pipeline_goldens as gpl  # noqa: E402
import gen_preprocess_goldens as gp  # noqa: E402
from sadtalker.facerender.modules.make_animation import make_animation  # noqa: E402
from sadtalker.generate_batch import get_data  # noqa: E402
from sadtalker.generate_facerender_batch import get_facerender_data  # noqa: E402


def main():
    binary, ckpt_dir, work = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
    os.makedirs(work, exist_ok=True)
    lm = gp.synth_landmarks(**gp.ASTRO_LM)
    cae, prime = gpl.extractor("crop", lm, 256)
    pic = os.path.join(work, "astronaut.png")
    shutil.copy(gp.ASTRONAUT, pic)
    audio = os.path.join(work, "speech.wav")
    shutil.copy(gpl.SPEECH, audio)
    first_dir = os.path.join(work, "first_frame_dir")
    os.makedirs(first_dir, exist_ok=True)
    prime(pic)
    first_coeff, crop_pic, _ = cae.generate(pic, first_dir, "crop", source_image_flag=True, pic_size=256)
    random.seed(1)
    torch.manual_seed(1)
    batch = get_data(first_coeff, audio, "cpu", None, still=False)
    coeff = gpl.audio2coeff().generate(batch, work, 0, None)
    data = get_facerender_data(coeff, crop_pic, first_coeff, audio, 2, None, None, None, expression_scale=1.0,
                               still_mode=False, preprocess="crop", size=256)
    kp, gen, he, mapping = gpl.facerender(False)
    with torch.no_grad():
        pred = make_animation(data["source_image"], data["source_semantics"], data["target_semantics_list"], gen,
                              kp, he, mapping, None, None, None, use_exp=True)
    pred = pred.reshape((-1,) + pred.shape[2:])[: data["frame_num"]]
    ref = img_as_ubyte([np.transpose(p.numpy(), [1, 2, 0]).astype(np.float32) for p in pred])
    out = os.path.join(work, "ours")
    shutil.rmtree(out, ignore_errors=True)
    cmd = [binary, "render", "--coeffs", coeff, "--first-coeff", first_coeff, "--source-image", crop_pic,
           "-o", out, "--checkpoint-dir", ckpt_dir]
    print(" ".join(cmd))
    subprocess.run(cmd, check=True)
    names = sorted(n for n in os.listdir(out) if n.endswith(".png"))
    assert len(names) == len(ref), f"{len(names)} frames from sadtalker render, {len(ref)} from the reference"
    worst_db = float("inf")
    for i, (name, theirs) in enumerate(zip(names, ref)):
        ours = np.asarray(Image.open(os.path.join(out, name)).convert("RGB"))
        d = ours.astype(np.int32) - theirs.astype(np.int32)
        mse = float((d * d).mean())
        db = float("inf") if mse == 0 else 10 * np.log10(255 * 255 / mse)
        worst_db = min(worst_db, db)
        print(f"frame {i}: PSNR {db:.1f} dB, max diff {np.abs(d).max()}")
    sys.exit(0 if worst_db >= 40 else 1)


if __name__ == "__main__":
    main()
