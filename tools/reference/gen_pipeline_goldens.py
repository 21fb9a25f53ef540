"""Goldens for crates/pipeline (`sadtalker generate`): the reference's whole inference.py chain on one
portrait and a few frames of speech, with every network at full size holding recipe weights under the
official checkpoint names (tools/reference/recipe.py; the same values as the files
tools/reference/make_official_checkpoints.py writes, so the Rust side can use either the files or
`Weights::from_recipe`).

The chain, per case, exactly as inference.py runs it:
    CropAndExtract.generate (detection replaced by the astronaut's synthetic landmarks, as in
        gen_preprocess_goldens.py's e2e section: random weights find no face)
    get_data (Python's `random` seeded for the blinks)  ->  Audio2Coeff.generate (each torch.randn recorded)
    get_facerender_data  ->  make_animation  ->  img_as_ubyte  ->  cv2.resize to the crop's aspect
    'full' modes: paste_pic's cv2.resize to the face box + cv2.seamlessClone into the source image.
The frames are taken before video encoding: the reference writes them through imageio/ffmpeg and (for
'full') re-reads its own lossy MP4V temp file before pasting; we compare the frames the encoder gets.

Run from the repo root with the reference venv:
    ~/.cache/sadtalker-reference/bin/python tools/reference/gen_pipeline_goldens.py

Writes fixtures/pipeline/speech_3f.wav (0.125 s of fixtures/audio/speech_16k.wav: 3 video frames),
fixtures/pipeline/astronaut_lm.txt (the injected landmarks), fixtures/pipeline/<case>_frames.png (the
final frames side by side, lossless: PNG holds them in a tenth of the space of a tensor) and
fixtures/goldens/pipeline/generate.safetensors. Per case:
    z (W, 64)           the CVAE latents in draw order
    ratio (T,)          the blink ratios get_data drew
    coeffs (T, 70)      the Audio2Coeff .mat (coeff_3dmm)
    first (1, 73)       the first-frame coefficients
and params preprocess, still, pose_style, seed, batch_size, expression_scale, size, input_yaw/pitch/roll.

`--local DIR`: the same at size 512 (`crop_512`, `full_512`) into DIR (not committed), checked by
`SADTALKER_PIPELINE_GOLDENS=DIR cargo test -p sadtalker-pipeline --release --test generate_parity -- --ignored`.
"""
import os
import random
import shutil
import sys
import tempfile

import numpy as np
import scipy.io as sio
import scipy.io.wavfile as wavfile

sys.path.insert(0, os.path.dirname(__file__))
import gen_preprocess_goldens as gp  # noqa: E402  (landmarks, recon net, the landmark-injected extractor)
import recipe  # noqa: E402
import reference_models as rm  # noqa: E402
from goldens import FIXTURES, GoldenFile  # noqa: E402

import cv2  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import img_as_ubyte  # noqa: E402

from sadtalker.facerender.modules.make_animation import make_animation  # noqa: E402
from sadtalker.generate_batch import get_data  # noqa: E402
from sadtalker.generate_facerender_batch import get_facerender_data  # noqa: E402
from sadtalker.test_audio2coeff import Audio2Coeff  # noqa: E402
from sadtalker.utils.preprocess import CropAndExtract  # noqa: E402

torch.set_num_threads(2)
MEDIA = os.path.join(FIXTURES, "pipeline")
SPEECH = os.path.join(MEDIA, "speech_3f.wav")
LANDMARKS = os.path.join(MEDIA, "astronaut_lm.txt")
OUT = MEDIA  # where the reference frames go (`--local DIR` moves them out of the repo)


def write_media():
    os.makedirs(MEDIA, exist_ok=True)
    sr, wav = wavfile.read(os.path.join(FIXTURES, "audio", "speech_16k.wav"))
    assert sr == 16000 and wav.dtype == np.int16
    # 2000 samples from 1.0 s: voiced speech, 3 whole 25 fps frames (+ 80 samples the reference drops).
    wavfile.write(SPEECH, sr, wav[16000:18000])
    np.savetxt(LANDMARKS, gp.synth_landmarks(**gp.ASTRO_LM))


def extractor(mode, lm, size):
    """CropAndExtract with gen_preprocess_goldens.e2e's landmark injection."""
    from sadtalker.face3d.util.load_mats import load_lm3d
    from sadtalker.utils.croper import Preprocesser

    pre = Preprocesser.__new__(Preprocesser)
    pre.get_landmark = lambda img_np: lm.copy()
    state = {}

    class Keypoints:
        def extract_keypoint(self, images, name=None, info=True):
            return state["crop_lm"][None].copy()

    pre.predictor = Keypoints()
    orig_crop = pre.crop

    def crop_and_remember(frames, still=False, xsize=512):
        rsize, _, _ = pre.align_face(img=Image.fromarray(frames[0]), lm=lm.copy(), output_size=xsize)
        state["rsize"] = rsize
        return orig_crop(frames, still=still, xsize=xsize)

    pre.crop = crop_and_remember
    cae = CropAndExtract.__new__(CropAndExtract)
    cae.propress, cae.net_recon, cae.device = pre, gp.recon_net(), "cpu"
    cae.lm3d_std = load_lm3d(gp.CONFIG)

    def prime(src):
        frames = [cv2.cvtColor(cv2.imread(src), cv2.COLOR_BGR2RGB)]
        img_size = (frames[0].shape[1], frames[0].shape[0])
        if "crop" in mode or "full" in mode:
            cut, crop_box, quad = pre.crop([frames[0].copy()], still="ext" in mode, xsize=512)
            origin = [crop_box[0], crop_box[1]]
            if "ext" not in mode:
                origin = [origin[0] + int(quad[0]), origin[1] + int(quad[1])]
            crop_wh = (cut[0].shape[1], cut[0].shape[0])
            state["crop_lm"] = gp.crop_landmarks(lm, origin, crop_wh, state["rsize"], img_size, size)
        else:
            state["crop_lm"] = gp.crop_landmarks(lm, (0, 0), img_size, img_size, img_size, size)

    return cae, prime


def audio2coeff():
    pose, exp = rm.audio2coeff()
    recipe.apply(exp.netG, prefix="audio2exp.")
    recipe.apply(pose, prefix="audio2pose.")
    pose.eval()
    exp.eval()
    a2c = Audio2Coeff.__new__(Audio2Coeff)
    a2c.audio2pose_model, a2c.audio2exp_model, a2c.device = pose, exp, "cpu"
    return a2c


def facerender(full):
    kp, gen, he, mapping = rm.facerender(still=full)
    recipe.apply(kp, prefix="kp_extractor.")
    recipe.apply(gen, prefix="generator.")
    recipe.apply(mapping, prefix="mapping.")
    return [m.eval() for m in (kp, gen, he, mapping)]


def run_case(g, a2c, name, preprocess, still=False, pose_style=0, seed=0, batch_size=2, expression_scale=1.0,
             size=256, yaw=None, pitch=None, roll=None):
    lm = gp.synth_landmarks(**gp.ASTRO_LM)
    cae, prime = extractor(preprocess, lm, size)
    with tempfile.TemporaryDirectory() as d:
        pic_path = os.path.join(d, "astronaut.png")
        shutil.copy(gp.ASTRONAUT, pic_path)
        audio_path = os.path.join(d, "speech.wav")
        shutil.copy(SPEECH, audio_path)
        first_dir = os.path.join(d, "first_frame_dir")
        os.makedirs(first_dir)
        prime(pic_path)
        first_coeff_path, crop_pic_path, crop_info = cae.generate(pic_path, first_dir, preprocess,
                                                                  source_image_flag=True, pic_size=size)
        random.seed(seed)
        batch = get_data(first_coeff_path, audio_path, "cpu", None, still=still)
        ratio = batch["ratio_gt"][0].numpy().reshape(-1)
        draws = []
        real = torch.randn

        def recording(*args, **kwargs):
            t = real(*args, **kwargs)
            draws.append(t.detach().clone())
            return t

        torch.manual_seed(seed)
        torch.randn = recording
        try:
            coeff_path = a2c.generate(batch, d, pose_style, None)
        finally:
            torch.randn = real
        coeffs = sio.loadmat(coeff_path)["coeff_3dmm"]
        first = sio.loadmat(first_coeff_path)["coeff_3dmm"]
        data = get_facerender_data(coeff_path, crop_pic_path, first_coeff_path, audio_path, batch_size, yaw, pitch,
                                   roll, expression_scale=expression_scale, still_mode=still, preprocess=preprocess,
                                   size=size)
        kp, gen, he, mapping = facerender("full" in preprocess.lower())
        pred = make_animation(data["source_image"], data["source_semantics"], data["target_semantics_list"], gen,
                              kp, he, mapping, data.get("yaw_c_seq"), data.get("pitch_c_seq"),
                              data.get("roll_c_seq"), use_exp=True)
        # AnimateFromCoeff.generate's frame steps.
        pred = pred.reshape((-1,) + pred.shape[2:])[: data["frame_num"]]
        video = [np.transpose(p.numpy(), [1, 2, 0]).astype(np.float32) for p in pred]
        result = img_as_ubyte(video)
        original_size = crop_info[0]
        if original_size:
            result = [cv2.resize(r, (size, int(size * original_size[1] / original_size[0]))) for r in result]
        if "full" in preprocess.lower():
            result = paste(result, pic_path, crop_info, "ext" in preprocess.lower())
        frames = np.stack(result)
    params = {"op": "generate", "preprocess": preprocess, "still": still, "pose_style": pose_style, "seed": seed,
              "batch_size": batch_size, "expression_scale": expression_scale, "size": size, "input_yaw": yaw,
              "input_pitch": pitch, "input_roll": roll, "frames": int(frames.shape[0]),
              "frame_size": [int(frames.shape[2]), int(frames.shape[1])]}
    z = np.concatenate([t.numpy().reshape(1, -1) for t in draws]) if draws else np.zeros((0, 64), np.float32)
    gp.save_png(os.path.join(OUT, f"{name}_frames.png"), np.concatenate(list(frames), 1))
    g.case(name, params, z=z, ratio=ratio, coeffs=coeffs, first=first)
    print(f"{name}: {frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}, {len(draws)} draws, "
          f"frame mean {frames.mean():.2f} std {frames.std():.2f}")


def paste(frames_rgb, pic_path, crop_info, extended_crop):
    """paste_pic's per-frame work, on the frames themselves (the reference re-reads them from its MP4V file)."""
    full_img = cv2.imread(pic_path)
    clx, cly, crx, cry = crop_info[1]
    lx, ly, rx, ry = (int(v) for v in crop_info[2])
    if extended_crop:
        oy1, oy2, ox1, ox2 = cly, cry, clx, crx
    else:
        oy1, oy2, ox1, ox2 = cly + ly, cly + ry, clx + lx, clx + rx
    out = []
    for f in frames_rgb:
        crop_frame = cv2.cvtColor(f, cv2.COLOR_RGB2BGR)
        p = cv2.resize(crop_frame.astype(np.uint8), (ox2 - ox1, oy2 - oy1))
        mask = 255 * np.ones(p.shape, p.dtype)
        location = ((ox1 + ox2) // 2, (oy1 + oy2) // 2)
        gen_img = cv2.seamlessClone(p, full_img, mask, location, cv2.NORMAL_CLONE)
        out.append(cv2.cvtColor(gen_img, cv2.COLOR_BGR2RGB))
    return out


def main():
    global OUT
    if len(sys.argv) > 2 and sys.argv[1] == "--local":
        # Size 512 (slow, large: not committed): checked by
        # SADTALKER_PIPELINE_GOLDENS=DIR cargo test -p sadtalker-pipeline --release -- --ignored
        OUT = os.path.abspath(sys.argv[2])
        os.makedirs(OUT, exist_ok=True)
        a2c = audio2coeff()
        g = GoldenFile(os.path.relpath(os.path.join(OUT, "generate_local.safetensors"), FIXTURES))
        run_case(g, a2c, "crop_512", "crop", pose_style=1, seed=3, size=512)
        run_case(g, a2c, "full_512", "full", seed=4, size=512)
        g.write()
        return
    write_media()
    a2c = audio2coeff()
    g = GoldenFile("goldens/pipeline/generate.safetensors")
    run_case(g, a2c, "crop", "crop", pose_style=3, seed=7)
    run_case(g, a2c, "full_still", "full", still=True, seed=11)
    run_case(g, a2c, "resize_yaw", "resize", seed=5, expression_scale=1.5, yaw=[10, -10])
    g.write()


if __name__ == "__main__":
    main()
