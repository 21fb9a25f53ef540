"""Goldens for crates/audio, computed by the reference's own functions (sadtalker.utils.audio,
sadtalker.generate_batch) on the committed fixtures of fixtures/audio/ (see make_audio_fixtures.sh).

Run from the repo root with the reference venv:
    ~/.cache/sadtalker-reference/bin/python tools/reference/gen_audio_goldens.py

Writes fixtures/goldens/audio/{load,mel,batch}.safetensors.
"""
import hashlib
import os
import random
import sys
import tempfile
import warnings

import numpy as np
import scipy.io as sio

sys.path.insert(0, os.path.dirname(__file__))
from goldens import FIXTURES, GoldenFile  # noqa: E402

import sadtalker.utils.audio as audio  # noqa: E402
from sadtalker.generate_batch import (  # noqa: E402
    crop_pad_audio, generate_blink_seq_randomly, get_data, parse_audio_length)

AUDIO = os.path.join(FIXTURES, "audio")
FORMATS = ["speech_16k.wav", "speech_22k.flac", "speech_22k.mp3", "speech_22k.ogg", "speech_22k.m4a",
           "stereo_44k.wav"]


def sha256_f32(x):
    return hashlib.sha256(np.ascontiguousarray(x, dtype="<f4").tobytes()).hexdigest()


def load(name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # librosa's audioread fallback for M4A warns
        return audio.load_wav(os.path.join(AUDIO, name), 16000)


def load_cases():
    """librosa.load(sr=16000) per format: length, hash, a 1 s segment, and the mel of the
    frame-aligned waveform (what get_data feeds on)."""
    g = GoldenFile("goldens/audio/load.safetensors")
    for name in FORMATS:
        wav = load(name)
        seg_start = 16000 if len(wav) >= 32000 else 0
        seg = wav[seg_start:seg_start + 16000]
        wav_len, num_frames = parse_audio_length(len(wav), 16000, 25)
        mel = audio.melspectrogram(crop_pad_audio(wav, wav_len)).T
        g.case(name.replace(".", "_"), {"op": "load", "file": f"audio/{name}", "len": len(wav),
                                        "sha256": sha256_f32(wav), "segment_start": seg_start,
                                        "num_frames": num_frames},
               segment=seg, mel=mel)
    g.write()


def mel_cases():
    """melspectrogram on given waveforms (inputs stored): odd lengths, clipping both ways."""
    g = GoldenFile("goldens/audio/mel.safetensors")
    rng = np.random.default_rng(3)
    t = np.arange(12345) / 16000.0
    chirp = (0.3 * np.sin(2 * np.pi * (100 + 3000 * t) * t) + 0.01 * rng.normal(size=t.size)).astype(np.float32)
    loud = np.sign(np.sin(2 * np.pi * 220 * np.arange(3001) / 16000.0)).astype(np.float32)  # clips at +4
    quiet = (1e-6 * rng.normal(size=1999)).astype(np.float32)  # at the -4 floor
    short = rng.uniform(-0.5, 0.5, 201).astype(np.float32)
    for name, wav in [("chirp", chirp), ("loud", loud), ("quiet", quiet), ("short", short)]:
        g.case(name, {"op": "melspectrogram"}, input=wav, output=audio.melspectrogram(wav).T)
    g.write()


def batch_cases():
    """get_data itself, with Python's random seeded so the blinks are reproducible."""
    g = GoldenFile("goldens/audio/batch.safetensors")
    rng = np.random.default_rng(11)
    with tempfile.TemporaryDirectory() as tmp:
        first = rng.normal(0, 0.3, (1, 73)).astype(np.float32)
        first_path = os.path.join(tmp, "first.mat")
        sio.savemat(first_path, {"coeff_3dmm": first})
        blink_ref = rng.normal(0, 0.3, (7, 73)).astype(np.float32)
        blink_path = os.path.join(tmp, "blink.mat")
        sio.savemat(blink_path, {"coeff_3dmm": blink_ref})
        keep = list(range(0, 6)) + list(range(60, 64)) + list(range(119, 125))
        for name, seed, ref in [("speech_16k", 1234, None), ("speech_16k_eyeblink", 99, blink_path)]:
            random.seed(seed)
            b = get_data(first_path, os.path.join(AUDIO, "speech_16k.wav"), "cpu", ref)
            mels = b["indiv_mels"][0, :, 0]  # T 80 16
            g.case(name, {"op": "get_data", "seed": seed, "num_frames": b["num_frames"], "kept_frames": keep,
                          "eyeblink": ref is not None},
                   first=first, eyeblink=blink_ref if ref else None,
                   indiv_mels_kept=mels[keep], ref=b["ref"][0], ratio_gt=b["ratio_gt"][0])
    # The blink generator alone, for several lengths.
    for frames, seed in [(22, 5), (40, 6), (125, 7), (500, 8), (1000, 9)]:
        random.seed(seed)
        g.case(f"blink_{frames}", {"op": "blink", "frames": frames, "seed": seed},
               ratio=generate_blink_seq_randomly(frames)[:, 0])
    g.write()


if __name__ == "__main__":
    load_cases()
    mel_cases()
    batch_cases()
