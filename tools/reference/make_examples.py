"""Makes examples/ (the README's main command runs on them):

- examples/astronaut.jpg: scikit-image's `data.astronaut()` (Eileen Collins, NASA photo S94-44297,
  public domain), 512x512, JPEG quality 90.
- examples/speech.wav: a sentence spoken by espeak-ng (synthetic speech: no recording, no rights), resampled
  to 16 kHz mono 16-bit, the rate the audio encoder works at.

Run from the repo root with the reference venv (needs `espeak-ng` on PATH):
    ~/.cache/sadtalker-reference/bin/python tools/reference/make_examples.py
"""
import os
import subprocess
import tempfile

import numpy as np
import scipy.io.wavfile as wavfile
import scipy.signal as signal
from PIL import Image
from skimage import data

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "examples")
TEXT = "Hello! I am a talking head, made from one photo and this short recording."


def main():
    os.makedirs(ROOT, exist_ok=True)
    Image.fromarray(data.astronaut()).save(os.path.join(ROOT, "astronaut.jpg"), "JPEG", quality=90)
    with tempfile.TemporaryDirectory() as d:
        raw = os.path.join(d, "raw.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", raw, TEXT], check=True)
        rate, pcm = wavfile.read(raw)
    pcm = pcm.astype(np.float64)
    if pcm.ndim > 1:
        pcm = pcm.mean(axis=1)
    out = signal.resample_poly(pcm, 16000, rate) if rate != 16000 else pcm
    out = np.clip(np.round(out), -32768, 32767).astype(np.int16)
    wavfile.write(os.path.join(ROOT, "speech.wav"), 16000, out)
    print(f"speech: {len(out) / 16000:.2f} s")


if __name__ == "__main__":
    main()
