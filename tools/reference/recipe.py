"""Deterministic pseudo-random weights, bit-identical to `sadtalker_checkpoint::Recipe` in Rust.

Value i of tensor `name`: h = splitmix64_mix(fnv1a64(name) ^ seed + (i + 1) * 0x9E3779B97F4A7C15);
k = h >> 40 (24 bits); u = k / 2**24 in [0, 1); s = k / 2**23 - 1 in [-1, 1). Scaled by role:

    running_var -> 0.5 + u          running_mean -> 0.1 * s
    weight, rank 1 -> 1 + 0.1 * s    bias / other rank <= 1 -> 0.1 * s
    rank >= 2 -> s * float32(gain / sqrt(prod(shape[1:])))   (gain 1 by default; sqrt(6) keeps deep ReLU nets' scale)

Every step is one float32 operation, so numpy and Rust agree exactly.
Usage as a script prints the pinned hash constants the Rust unit test checks.
"""
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M64 = (1 << 64) - 1


def fnv1a64(s: str) -> int:
    h = 0xCBF29CE484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001B3) & M64
    return h


def mix(z: np.ndarray) -> np.ndarray:
    z = z.astype(np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def values(name: str, shape, seed: int = 0, gain: float = 1.0) -> np.ndarray:
    shape = tuple(int(d) for d in shape)
    n = int(np.prod(shape, dtype=np.int64)) if shape else 1
    base = np.uint64(fnv1a64(name) ^ seed)
    with np.errstate(over="ignore"):
        i = np.arange(1, n + 1, dtype=np.uint64)
        h = mix(base + i * GOLDEN)
    k = (h >> np.uint64(40)).astype(np.float32)
    u = k * np.float32(1.0 / 16777216.0)
    s = k * np.float32(1.0 / 8388608.0) - np.float32(1.0)
    last = name.rsplit(".", 1)[-1]
    if last == "running_var":
        v = np.float32(0.5) + u
    elif last == "running_mean":
        v = np.float32(0.1) * s
    elif last == "weight" and len(shape) == 1:
        v = np.float32(1.0) + np.float32(0.1) * s
    elif len(shape) <= 1 or last == "bias":
        v = np.float32(0.1) * s
    else:
        fan_in = int(np.prod(shape[1:]))
        v = s * np.float32(gain / np.sqrt(float(max(fan_in, 1))))
    return v.astype(np.float32).reshape(shape)


def apply(module, prefix: str = "", seed: int = 0, gain: float = 1.0):
    """Overwrites every float parameter and buffer of a torch module with recipe values,
    naming each tensor `prefix + state_dict key` (so a sub-network can be named as it is
    inside the official checkpoint)."""
    import torch

    sd = module.state_dict()
    new = {}
    for k, t in sd.items():
        if t.dtype.is_floating_point:
            new[k] = torch.from_numpy(values(prefix + k, t.shape, seed, gain)).to(t.dtype)
        else:
            new[k] = torch.zeros_like(t)
    module.load_state_dict(new)
    return module


if __name__ == "__main__":
    print(hex(fnv1a64("")), hex(fnv1a64("a")), hex(int(mix(np.array([GOLDEN], dtype=np.uint64))[0])))
