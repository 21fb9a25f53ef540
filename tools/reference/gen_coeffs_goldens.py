"""Goldens for crates/coeffs: .mat interop with scipy, Savitzky-Golay, pose splicing, camera paths
and the face renderer's input windows, all computed by the reference's own functions.

Run from the repo root with the reference venv:
    ~/.cache/sadtalker-reference/bin/python tools/reference/gen_coeffs_goldens.py

Writes fixtures/coeffs/*.mat (files written by scipy, and one MATLAB-written file) and
fixtures/goldens/coeffs/*.safetensors. It also checks the other direction: scipy must read the
.mat files *our* writer produced (fixtures/coeffs/written_by_rust*.mat, made by
`cargo run -p sadtalker-coeffs --example write_mat_fixtures`; the Rust tests check that our
writer still produces them byte for byte).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import scipy.io as sio
from scipy.signal import savgol_filter

sys.path.insert(0, os.path.dirname(__file__))
from goldens import FIXTURES, ROOT, GoldenFile  # noqa: E402

from sadtalker.generate_facerender_batch import gen_camera_pose, get_facerender_data  # noqa: E402
from sadtalker.test_audio2coeff import Audio2Coeff  # noqa: E402

MAT_DIR = os.path.join(FIXTURES, "coeffs")
rng = np.random.default_rng(5)


def first_frame(rows=1):
    """A first-frame coefficient file as preprocessing writes it."""
    coeff = rng.normal(0, 0.3, (rows, 73)).astype(np.float32)
    coeff[:, 70:] = np.array([102.4, 118.9, 131.6], np.float32) + rng.normal(0, 2, (rows, 3)).astype(np.float32)
    full = rng.normal(0, 0.5, (1, 257)).astype(np.float32)
    return coeff, full


def write_mat_fixtures():
    os.makedirs(MAT_DIR, exist_ok=True)
    g = GoldenFile("goldens/coeffs/mat.safetensors")
    # 1. As preprocessing writes the first-frame file.
    coeff, full = first_frame()
    path = os.path.join(MAT_DIR, "first_frame_scipy.mat")
    sio.savemat(path, {"coeff_3dmm": coeff, "full_3dmm": full})
    g.case("first_frame_scipy", {"op": "loadmat", "file": "coeffs/first_frame_scipy.mat"},
           coeff_3dmm=sio.loadmat(path)["coeff_3dmm"], full_3dmm=sio.loadmat(path)["full_3dmm"])
    # 2. As Audio2Coeff writes the generated sequence.
    motion = rng.normal(0, 0.2, (9, 70)).astype(np.float32)
    path = os.path.join(MAT_DIR, "motion_scipy.mat")
    sio.savemat(path, {"coeff_3dmm": motion})
    g.case("motion_scipy", {"op": "loadmat", "file": "coeffs/motion_scipy.mat"},
           coeff_3dmm=sio.loadmat(path)["coeff_3dmm"])
    # 3. Compressed, mixed classes, and variables our reader must carry through untouched.
    path = os.path.join(MAT_DIR, "mixed_compressed_scipy.mat")
    mixed = {
        "coeff_3dmm": rng.normal(0, 1, (4, 73)).astype(np.float64),
        "ints": np.arange(-3, 9, dtype=np.int16).reshape(3, 4),
        "flags": np.array([[True, False, True]]),
        "name": "sadtalker",
        "nested": {"a": np.ones((2, 2)), "b": "x"},
        "cells": np.array([np.zeros(2), "y"], dtype=object),
    }
    sio.savemat(path, mixed, do_compression=True)
    back = sio.loadmat(path)
    g.case("mixed_compressed_scipy", {"op": "loadmat", "file": "coeffs/mixed_compressed_scipy.mat"},
           coeff_3dmm=back["coeff_3dmm"], ints=back["ints"].astype(np.float32),
           flags=back["flags"].astype(np.float32))
    # 4. A MATLAB-written (compressed, MATLAB type narrowing) file from the official repo.
    config = os.environ.get("SADTALKER_CONFIG_DIR", os.path.join(ROOT, "..", "shared", "reference", "config"))
    src = os.path.join(config, "similarity_Lm3D_all.mat")
    dst = os.path.join(MAT_DIR, "matlab_similarity_Lm3D_all.mat")
    if os.path.exists(src):
        shutil.copyfile(src, dst)
    if os.path.exists(dst):
        g.case("matlab_similarity", {"op": "loadmat", "file": "coeffs/matlab_similarity_Lm3D_all.mat"},
               lm=sio.loadmat(dst)["lm"])
    g.write()


def check_rust_written():
    """scipy must read what our writer produced; regenerate those files first."""
    subprocess.run(
        ["cargo", "run", "-q", "-p", "sadtalker-coeffs", "--example", "write_mat_fixtures"],
        cwd=ROOT, check=True,
        env=dict(os.environ),
    )
    d = sio.loadmat(os.path.join(MAT_DIR, "written_by_rust.mat"))
    exp = np.arange(6 * 70, dtype=np.float32).reshape(6, 70) / 7.0
    assert d["coeff_3dmm"].dtype == np.float32 and np.array_equal(d["coeff_3dmm"], exp), "coeff_3dmm differs"
    assert d["full_3dmm"].dtype == np.float64 and np.array_equal(
        d["full_3dmm"], np.linspace(-1, 1, 257).reshape(1, 257)), "full_3dmm differs"
    assert d["note"][0] == "written by sadtalker", d["note"]
    assert d["counts"].dtype == np.int32 and d["counts"].tolist() == [[1, 2, 3]], d["counts"]
    # The adapter's output (70 -> 73 with crop params from first_frame_scipy.mat).
    a = sio.loadmat(os.path.join(MAT_DIR, "written_by_rust_adapted73.mat"))
    src = sio.loadmat(os.path.join(MAT_DIR, "motion_scipy.mat"))["coeff_3dmm"]
    crop = sio.loadmat(os.path.join(MAT_DIR, "first_frame_scipy.mat"))["coeff_3dmm"][0, 70:]
    want = np.concatenate([src, np.repeat(crop[None], len(src), 0)], 1)
    assert a["coeff_3dmm"].dtype == np.float32 and np.array_equal(a["coeff_3dmm"], want), "adapted differs"
    # Struct and cell variables survive our rewrite.
    p = sio.loadmat(os.path.join(MAT_DIR, "written_by_rust_passthrough.mat"))
    o = sio.loadmat(os.path.join(MAT_DIR, "mixed_compressed_scipy.mat"))
    for k in ["coeff_3dmm", "ints", "flags", "name"]:
        assert p[k].dtype == o[k].dtype and np.array_equal(p[k], o[k]), k
    assert np.array_equal(p["nested"]["a"][0, 0], o["nested"]["a"][0, 0]) and p["nested"]["b"][0, 0][0] == "x"
    assert np.array_equal(p["cells"][0, 0], o["cells"][0, 0]) and p["cells"][0, 1][0] == "y"
    print("scipy reads the Rust-written .mat files: OK")


def savgol_cases():
    g = GoldenFile("goldens/coeffs/savgol.safetensors")
    for frames in [3, 4, 8, 12, 13, 14, 40]:
        pose = (np.cumsum(rng.normal(0, 0.05, (1, frames, 6)), axis=1)).astype(np.float32)
        # Exactly test_audio2coeff.Audio2Coeff.generate's choice and call.
        pose_len = pose.shape[1]
        if pose_len < 13:
            pose_len = int((pose_len - 1) / 2) * 2 + 1
            out = savgol_filter(np.array(pose), pose_len, 2, axis=1)
        else:
            out = savgol_filter(np.array(pose), 13, 2, axis=1)
        g.case(f"pose_{frames}", {"op": "smooth_pose", "frames": frames}, input=pose[0], output=out[0])
    g.write()


def splice_cases():
    g = GoldenFile("goldens/coeffs/splice.safetensors")
    with tempfile.TemporaryDirectory() as tmp:
        for n, ref_n in [(10, 4), (6, 9), (5, 5)]:
            coeffs = rng.normal(0, 0.3, (n, 70)).astype(np.float32)
            ref = rng.normal(0, 0.3, (ref_n, 73)).astype(np.float32)
            path = os.path.join(tmp, "ref.mat")
            sio.savemat(path, {"coeff_3dmm": ref})
            out = Audio2Coeff.using_refpose(None, coeffs.copy(), path)
            g.case(f"refpose_{n}_{ref_n}", {"op": "ref_pose"}, coeffs=coeffs, reference=ref, output=out)
    g.write()


def camera_cases():
    g = GoldenFile("goldens/coeffs/camera.safetensors")
    for i, (degrees, frames, bs) in enumerate([
        ([20], 7, 2), ([-20, 20], 37, 2), ([0, 7, -13], 37, 3), ([0, 30, -30, 0], 50, 4),
        ([3, -11], 5, 1), ([1, 2], 200, 2),
    ]):
        out = gen_camera_pose(degrees, frames, bs)
        g.case(f"camera_{i}", {"op": "gen_camera_pose", "degrees": degrees, "frames": frames, "batch_size": bs},
               output=np.asarray(out, dtype=np.float64))
    g.write()


def facerender_cases():
    g = GoldenFile("goldens/coeffs/facerender.safetensors")
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        pic = os.path.join(tmp, "pic.png")
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(pic)
        first, full = first_frame()
        first_path = os.path.join(tmp, "first.mat")
        sio.savemat(first_path, {"coeff_3dmm": first, "full_3dmm": full})
        cases = [
            ("crop_bs2", 7, dict(batch_size=2)),
            ("scale_bs3", 7, dict(batch_size=3, expression_scale=1.3)),
            ("still", 7, dict(batch_size=2, still_mode=True)),
            ("full", 7, dict(batch_size=2, preprocess="full")),
            ("extfull_still", 7, dict(batch_size=2, preprocess="extfull", still_mode=True, expression_scale=0.7)),
            ("long_yaw_pitch_roll", 32, dict(batch_size=3, input_yaw_list=[0, 15, -15],
                                             input_pitch_list=[5], input_roll_list=[-8, 8])),
        ]
        for name, frames, kw in cases:
            gen = rng.normal(0, 0.3, (frames, 70)).astype(np.float32)
            gen_path = os.path.join(tmp, f"{name}.mat")
            sio.savemat(gen_path, {"coeff_3dmm": gen})
            data = get_facerender_data(gen_path, pic, first_path, "audio.wav", **kw)
            params = {"op": "facerender", "frames": frames, "batch_size": kw["batch_size"],
                      "expression_scale": kw.get("expression_scale", 1.0), "still": kw.get("still_mode", False),
                      "full": "full" in kw.get("preprocess", "crop"),
                      "yaw": kw.get("input_yaw_list"), "pitch": kw.get("input_pitch_list"),
                      "roll": kw.get("input_roll_list")}
            g.case(name, params, first=first, generated=gen,
                   source_semantics=data["source_semantics"][0],
                   target_semantics=data["target_semantics_list"],
                   yaw=data.get("yaw_c_seq"), pitch=data.get("pitch_c_seq"), roll=data.get("roll_c_seq"))
    g.write()


if __name__ == "__main__":
    write_mat_fixtures()
    savgol_cases()
    splice_cases()
    camera_cases()
    facerender_cases()
    if "--no-rust" not in sys.argv:
        check_rust_written()
