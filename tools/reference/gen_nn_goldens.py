"""Goldens for sadtalker-nn's layers: one torch module holding each layer kind (with the reference's
SynchronizedBatchNorm, which is what SadTalker's networks use), its state dict saved by torch.save (zip), and
per-layer input/output pairs.

fixtures/checkpoints/nn_layers.pth, fixtures/goldens/nn/layers.safetensors
"""
import os

import torch
import torch.nn as nn

from goldens import FIXTURES, GoldenFile

torch.manual_seed(7)


class Layers(nn.Module):
    def __init__(self):
        super().__init__()
        from sadtalker.facerender.sync_batchnorm import SynchronizedBatchNorm2d, SynchronizedBatchNorm3d

        self.conv2d = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.conv2d_s2 = nn.Conv2d(3, 4, kernel_size=7, stride=2, padding=3, bias=False)
        self.conv3d = nn.Conv3d(4, 6, kernel_size=3, padding=1)
        self.conv1d = nn.Conv1d(5, 7, kernel_size=3, dilation=3)
        self.bn2d = SynchronizedBatchNorm2d(8, affine=True)
        self.bn3d = SynchronizedBatchNorm3d(6, affine=True)
        self.bn1d = nn.BatchNorm1d(7, eps=1e-3)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.inorm_plain = nn.InstanceNorm3d(6, affine=False)
        self.fc = nn.Linear(10, 5)
        self.fc_nobias = nn.Linear(10, 3, bias=False)
        self.deconv = nn.ConvTranspose2d(6, 4, kernel_size=(2, 1), stride=(2, 1))


def main():
    m = Layers()
    # Non-trivial running statistics, as trained BatchNorms have.
    with torch.no_grad():
        for bn in (m.bn2d, m.bn3d, m.bn1d):
            bn.running_mean.normal_(0, 0.5)
            bn.running_var.uniform_(0.3, 2.0)
            bn.weight.normal_(1, 0.2)
            bn.bias.normal_(0, 0.2)
        m.inorm.weight.normal_(1, 0.2)
        m.inorm.bias.normal_(0, 0.2)
    m.eval()
    os.makedirs(os.path.join(FIXTURES, "checkpoints"), exist_ok=True)
    torch.save(m.state_dict(), os.path.join(FIXTURES, "checkpoints", "nn_layers.pth"))
    g = GoldenFile("goldens/nn/layers.safetensors")
    with torch.no_grad():
        x2, x3, x1 = torch.randn(2, 3, 9, 10), torch.randn(1, 4, 3, 6, 5), torch.randn(2, 5, 16)
        g.case("conv2d", {"op": "conv2d"}, input=x2, output=m.conv2d(x2))
        g.case("conv2d_s2", {"op": "conv2d_s2"}, input=x2, output=m.conv2d_s2(x2))
        g.case("conv3d", {"op": "conv3d"}, input=x3, output=m.conv3d(x3))
        g.case("conv1d", {"op": "conv1d"}, input=x1, output=m.conv1d(x1))
        y2 = torch.randn(2, 8, 5, 6)
        g.case("bn2d", {"op": "bn2d"}, input=y2, output=m.bn2d(y2))
        g.case("inorm", {"op": "inorm"}, input=y2, output=m.inorm(y2))
        y3 = torch.randn(1, 6, 3, 4, 5)
        g.case("bn3d", {"op": "bn3d"}, input=y3, output=m.bn3d(y3))
        g.case("inorm_plain", {"op": "inorm_plain"}, input=y3, output=m.inorm_plain(y3))
        y1 = torch.randn(3, 7, 10)
        g.case("bn1d", {"op": "bn1d"}, input=y1, output=m.bn1d(y1))
        f = torch.randn(2, 4, 10)
        g.case("fc", {"op": "fc"}, input=f, output=m.fc(f))
        g.case("fc_nobias", {"op": "fc_nobias"}, input=f, output=m.fc_nobias(f))
        d = torch.randn(1, 6, 5, 3)
        g.case("deconv", {"op": "deconv"}, input=d, output=m.deconv(d))
    g.write()


if __name__ == "__main__":
    main()
