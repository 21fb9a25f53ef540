"""Goldens for crates/audio2coeff: the reference's Audio2Exp, Audio2Pose and Audio2Coeff.generate on
deterministic inputs, with full-size networks holding recipe weights (tools/reference/recipe.py) under
the official checkpoint names (`audio2exp.` + SimpleWrapperV2's keys, as the reference loader sees the
safetensors; `audio2pose.` + Audio2Pose's keys), so the Rust tests rebuild the same weights in-process
with `Weights::from_recipe(Recipe::default(), ..)`. Each `torch.randn` the CVAE draws is recorded.

Run from the repo root with the reference venv:
    ~/.cache/sadtalker-reference/bin/python tools/reference/gen_audio2coeff_goldens.py

Writes fixtures/goldens/audio2coeff/audio2coeff.safetensors. Per case (op "generate"):
    mels (T, 1, 80, 16)    the per-frame mel windows (indiv_mels[0])
    first_frame (70,)      coeff_3dmm[0, :70] of the source image
    ratio (T,)             the blink ratio (ratio_gt[0, :, 0]), as given to get_data's batch
    ref_eyeblink (R, 64)   optional: the --ref-eyeblink coefficients (batch built as get_data does)
    ref_pose (R, 70)       optional: the --ref-pose coefficients (Audio2Coeff.using_refpose)
    z (W, 64)              the CVAE latents, in draw order
    exp (T, 64)            Audio2Exp.test(batch)['exp_coeff_pred'][0]
    pose (T, 6)            Audio2Pose.test(batch)['pose_pred'][0] (before smoothing)
    coeffs (T, 70)         coeff_3dmm of the .mat Audio2Coeff.generate writes
and params pose_style, frames.

and fixtures/goldens/audio2coeff/speech.safetensors: the reference's whole chain from files, `get_data`
(fixtures/audio/speech_16k.wav, fixtures/coeffs/first_frame_scipy.mat, Python's `random` seeded for the
blinks) then `Audio2Coeff.generate`; per case (op "from_files"): ratio (T,), z (W, 64), coeffs (T, 70),
params audio, first_coeff, ref_eyeblink, ref_pose (paths under fixtures/), random_seed, pose_style.
"""
import os
import random
import sys
import tempfile

import numpy as np
import scipy.io as sio
import torch

sys.path.insert(0, os.path.dirname(__file__))
import recipe  # noqa: E402
import reference_models as rm  # noqa: E402
from goldens import GoldenFile  # noqa: E402

from goldens import FIXTURES  # noqa: E402
from sadtalker.generate_batch import get_data  # noqa: E402
from sadtalker.test_audio2coeff import Audio2Coeff  # noqa: E402

rng = np.random.default_rng(20240607)


def build():
    pose, exp = rm.audio2coeff()
    recipe.apply(exp.netG, prefix="audio2exp.")
    recipe.apply(pose, prefix="audio2pose.")
    pose.eval()
    exp.eval()
    a2c = Audio2Coeff.__new__(Audio2Coeff)
    a2c.audio2pose_model = pose
    a2c.audio2exp_model = exp
    a2c.device = "cpu"
    return a2c


def mel_windows(frames):
    """Mel windows as the reference cuts them from one spectrogram (so neighbouring frames overlap),
    with values in the normalised mel range [-4, 4]."""
    spec = np.clip(rng.normal(-1.0, 1.6, size=(int(80 * frames / 25) + 1, 80)), -4, 4).astype(np.float32)
    out = []
    for i in range(frames):
        start = int(80.0 * ((i - 2) / 25.0))
        seq = [min(max(k, 0), spec.shape[0] - 1) for k in range(start, start + 16)]
        out.append(spec[seq, :].T)
    return np.asarray(out, dtype=np.float32)[:, None]  # T 1 80 16


def blink(frames):
    ratio = np.zeros((frames, 1), np.float32)
    for s in range(7, frames - 5, 23):
        ratio[s:s + 5, 0] = [0.5, 0.9, 1.0, 0.9, 0.5]
    return ratio


def run_case(a2c, g, name, frames, pose_style, ref_eyeblink_rows=None, ref_pose_rows=None):
    mels = mel_windows(frames)
    first = rng.normal(0, 0.3, (1, 73)).astype(np.float32)
    first[0, 64:67] = rng.normal(0, 0.2, 3)  # angles (radians)
    first[0, 67:70] = rng.normal(0, 0.1, 3)  # translation
    ratio = blink(frames)
    ref_coeff = np.repeat(first[:1, :70], frames, axis=0)
    ref_eyeblink = None
    if ref_eyeblink_rows is not None:
        # get_data: the reference video's expression, repeated, replaces ref[:, :64]; no random blinks.
        ref_eyeblink = rng.normal(0, 0.3, (ref_eyeblink_rows, 70)).astype(np.float32)
        ratio[:frames] = 0
        reps = [ref_eyeblink[:, :64]] * (frames // ref_eyeblink_rows) + [ref_eyeblink[: frames % ref_eyeblink_rows, :64]]
        tiled = np.concatenate(reps, axis=0) if ref_eyeblink_rows < frames else ref_eyeblink[:, :64]
        ref_coeff[:, :64] = tiled[:frames]
    batch = {
        "indiv_mels": torch.FloatTensor(mels).unsqueeze(0),
        "ref": torch.FloatTensor(ref_coeff).unsqueeze(0),
        "num_frames": frames,
        "ratio_gt": torch.FloatTensor(ratio).unsqueeze(0),
        "audio_name": name,
        "pic_name": "first",
    }

    draws = []
    real_randn = torch.randn

    def recording_randn(*args, **kwargs):
        t = real_randn(*args, **kwargs)
        draws.append(t.clone())
        return t

    torch.manual_seed(1000 + pose_style)
    with tempfile.TemporaryDirectory() as tmp:
        ref_pose_path = None
        ref_pose = None
        if ref_pose_rows is not None:
            ref_pose = rng.normal(0, 0.2, (ref_pose_rows, 70)).astype(np.float32)
            ref_pose_path = os.path.join(tmp, "ref_pose.mat")
            sio.savemat(ref_pose_path, {"coeff_3dmm": ref_pose})
        torch.randn = recording_randn
        try:
            with torch.no_grad():
                exp = a2c.audio2exp_model.test(dict(batch))["exp_coeff_pred"]
                torch.manual_seed(1000 + pose_style)
                path = a2c.generate(dict(batch), tmp, pose_style, ref_pose_path)
                z = torch.cat(draws, 0) if draws else torch.zeros(0, 64)
                # Audio2Pose alone, with the same draws, for its unsmoothed output.
                draws.clear()
                torch.manual_seed(1000 + pose_style)
                b = dict(batch)
                b["class"] = torch.LongTensor([pose_style])
                pose = a2c.audio2pose_model.test(b)["pose_pred"]
                z_again = torch.cat(draws, 0) if draws else torch.zeros(0, 64)
                assert torch.equal(z, z_again), "Audio2Pose drew different latents"
        finally:
            torch.randn = real_randn
        coeffs = sio.loadmat(path)["coeff_3dmm"]
    assert coeffs.shape == (frames, 70), coeffs.shape
    g.case(
        name,
        {"op": "generate", "pose_style": pose_style, "frames": frames},
        mels=mels,
        first_frame=first[0, :70],
        ratio=ratio[:, 0],
        ref_eyeblink=ref_eyeblink,
        ref_pose=ref_pose,
        z=z,
        exp=exp[0],
        pose=pose[0],
        coeffs=coeffs,
    )
    print(f"{name}: {frames} frames, {z.shape[0]} latent draws, |coeffs| max {np.abs(coeffs).max():.3f}")


def record_randn():
    draws = []
    real = torch.randn

    def recording(*args, **kwargs):
        t = real(*args, **kwargs)
        draws.append(t.clone())
        return t

    return draws, real, recording


def from_files_case(a2c, g, name, random_seed, pose_style, ref_eyeblink=None, ref_pose=None):
    fx = lambda rel: os.path.join(FIXTURES, rel) if rel else None  # noqa: E731
    audio, first = "audio/speech_16k.wav", "coeffs/first_frame_scipy.mat"
    random.seed(random_seed)
    batch = get_data(fx(first), fx(audio), "cpu", fx(ref_eyeblink))
    draws, real, recording = record_randn()
    torch.manual_seed(random_seed)
    torch.randn = recording
    try:
        with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
            path = a2c.generate(dict(batch), tmp, pose_style, fx(ref_pose))
            coeffs = sio.loadmat(path)["coeff_3dmm"]
    finally:
        torch.randn = real
    g.case(
        name,
        {"op": "from_files", "audio": audio, "first_coeff": first, "ref_eyeblink": ref_eyeblink,
         "ref_pose": ref_pose, "random_seed": random_seed, "pose_style": pose_style},
        ratio=batch["ratio_gt"][0, :, 0],
        z=torch.cat(draws, 0),
        coeffs=coeffs,
    )
    print(f"{name}: {coeffs.shape[0]} frames, {len(draws)} latent draws, {int((batch['ratio_gt'] > 0).sum())} blink frames")


def main():
    a2c = build()
    g = GoldenFile("goldens/audio2coeff/speech.safetensors")
    from_files_case(a2c, g, "speech_seed3_style0", 3, 0)
    from_files_case(a2c, g, "speech_seed11_style21_refs", 11, 21, ref_eyeblink="coeffs/motion_scipy.mat",
                    ref_pose="coeffs/motion_scipy.mat")
    g.write()

    g = GoldenFile("goldens/audio2coeff/audio2coeff.safetensors")
    # Two full CVAE windows and a remainder of 12 (the last window overlaps the previous one).
    run_case(a2c, g, "long_style0", 77, 0)
    # Shorter than one window: the audio embeddings are padded in front.
    run_case(a2c, g, "short_style45_refpose", 20, 45, ref_pose_rows=7)
    # Exactly one window (no remainder); eye blinks from a reference sequence.
    run_case(a2c, g, "one_window_style7_eyeblink", 33, 7, ref_eyeblink_rows=10)
    # Fewer than 13 frames: a shorter Savitzky-Golay window.
    run_case(a2c, g, "tiny_style3", 8, 3)
    g.write()


if __name__ == "__main__":
    main()
