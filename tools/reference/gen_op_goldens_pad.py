"""Goldens for `sadtalker_ops::reflection_pad2d` (crates/ops/src/pad.rs): nn.ReflectionPad2d on a few shapes,
symmetric and asymmetric, including padding one less than the axis. Writes fixtures/goldens/ops/pad.safetensors."""
import torch
import torch.nn as nn

from goldens import GoldenFile


def main():
    g = GoldenFile("goldens/ops/pad.safetensors")
    gen = torch.Generator().manual_seed(3)
    cases = [
        ("sym1", (1, 3, 5, 6), (1, 1, 1, 1)),
        ("asym", (2, 2, 4, 7), (2, 0, 3, 1)),
        ("max", (1, 1, 3, 4), (3, 3, 2, 2)),
        ("none", (1, 2, 3, 3), (0, 0, 0, 0)),
    ]
    for name, shape, pad in cases:
        x = torch.randn(*shape, generator=gen)
        y = nn.ReflectionPad2d(pad)(x)
        g.case(name, {"op": "reflection_pad2d", "padding": list(pad)}, input=x, output=y)
    g.write()


if __name__ == "__main__":
    main()
