"""Goldens for the single tensor ops of `sadtalker-ops`, computed with PyTorch.

Run with the reference venv (see tools/reference/regen.sh). Writes fixtures/goldens/ops/*.safetensors.
Shapes are small and deliberately odd; grids reach outside [-1, 1].
"""
import torch
import torch.nn.functional as F

from goldens import GoldenFile

torch.manual_seed(1234)
torch.set_num_threads(1)


def rnd(*shape, scale=1.0, offset=0.0):
    return torch.randn(*shape) * scale + offset


def uni(*shape, lo=-1.0, hi=1.0):
    return torch.rand(*shape) * (hi - lo) + lo


def conv_goldens():
    g = GoldenFile("goldens/ops/conv.safetensors")
    cases = [
        # name, op, input shape, weight shape, stride, padding, dilation, groups, bias
        ("c2d_3x3_pad1", "conv2d", (1, 3, 9, 11), (5, 3, 3, 3), 1, 1, 1, 1, True),
        ("c2d_7x7_s2_p3", "conv2d", (2, 3, 17, 15), (4, 3, 7, 7), 2, 3, 1, 1, True),
        ("c2d_groups2_dil2", "conv2d", (1, 4, 10, 10), (6, 2, 3, 3), 1, 2, 2, 2, False),
        ("c2d_depthwise_5x5", "conv2d", (1, 3, 12, 12), (3, 1, 5, 5), 1, 0, 1, 3, False),
        ("c2d_pointwise", "conv2d", (2, 8, 6, 7), (5, 8, 1, 1), 1, 0, 1, 1, True),
        ("c2d_stride_3x1", "conv2d", (1, 2, 16, 9), (3, 2, 3, 3), (3, 1), 1, 1, 1, True),
        ("c2d_stride_3x2", "conv2d", (1, 2, 16, 9), (3, 2, 3, 3), (3, 2), 1, 1, 1, True),
        ("c2d_pad_2x1", "conv2d", (1, 3, 8, 8), (4, 3, 3, 5), 1, (2, 1), 1, 1, True),
        ("c2d_pointwise_s2", "conv2d", (1, 6, 9, 9), (4, 6, 1, 1), 2, 0, 1, 1, True),
        ("c2d_16ch_32x32", "conv2d", (1, 16, 32, 32), (16, 16, 3, 3), 1, 1, 1, 1, True),
        ("c3d_3x3x3_pad1", "conv3d", (1, 4, 5, 6, 7), (6, 4, 3, 3, 3), 1, 1, 1, 1, True),
        ("c3d_7x7x7_pad3", "conv3d", (1, 3, 4, 8, 8), (2, 3, 7, 7, 7), 1, 3, 1, 1, True),
        ("c3d_pointwise", "conv3d", (2, 5, 3, 4, 4), (3, 5, 1, 1, 1), 1, 0, 1, 1, True),
        ("c3d_groups2", "conv3d", (1, 4, 4, 5, 5), (4, 2, 3, 3, 3), 1, 1, 1, 2, False),
        ("c3d_1x3x3_pad011", "conv3d", (1, 3, 2, 6, 6), (5, 3, 1, 3, 3), 1, (0, 1, 1), 1, 1, True),
        ("c1d_dil3", "conv1d", (2, 6, 20), (5, 6, 3), 1, 0, 3, 1, True),
        ("c1d_k7", "conv1d", (1, 7, 12), (4, 7, 7), 1, 0, 1, 1, True),
        ("c1d_s2_p2", "conv1d", (1, 3, 11), (2, 3, 4), 2, 2, 1, 1, False),
        # Winograd-eligible (3x3, stride 1, >= 32 channels): odd sizes, partial tiles, no padding.
        ("c2d_wino_32_48_13x17", "conv2d", (2, 32, 13, 17), (48, 32, 3, 3), 1, 1, 1, 1, True),
        ("c2d_wino_64_32_pad0", "conv2d", (1, 64, 10, 9), (32, 64, 3, 3), 1, 0, 1, 1, True),
        ("c2d_wino_96_64_24x24", "conv2d", (1, 96, 24, 24), (64, 96, 3, 3), 1, 1, 1, 1, False),
        ("c3d_wino_32_40_5x7x9", "conv3d", (2, 32, 5, 7, 9), (40, 32, 3, 3, 3), 1, 1, 1, 1, True),
        ("c3d_wino_48_32_pad0", "conv3d", (1, 48, 6, 6, 6), (32, 48, 3, 3, 3), 1, 0, 1, 1, True),
    ]
    fns = {"conv1d": F.conv1d, "conv2d": F.conv2d, "conv3d": F.conv3d}
    for name, op, xs, ws, s, p, d, gr, has_b in cases:
        nd = len(xs) - 2
        tup = lambda v: list(v) if isinstance(v, tuple) else [v] * nd
        x, w = rnd(*xs), rnd(*ws, scale=0.3)
        b = rnd(ws[0], scale=0.1) if has_b else None
        y = fns[op](x, w, b, stride=tuple(tup(s)), padding=tuple(tup(p)), dilation=tuple(tup(d)), groups=gr)
        params = {"op": op, "stride": tup(s), "padding": tup(p), "dilation": tup(d), "groups": gr}
        g.case(name, params, input=x, weight=w, bias=b, output=y)
    g.write()


def grid_sample_goldens():
    g = GoldenFile("goldens/ops/grid_sample.safetensors")

    def add(name, x, grid, align):
        y = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=align)
        g.case(name, {"op": "grid_sample", "align_corners": align}, input=x, grid=grid, output=y)

    x2 = rnd(1, 3, 7, 9)
    grid2 = uni(1, 5, 6, 2, lo=-1.3, hi=1.3)
    add("gs2d_align_false", x2, grid2, False)
    add("gs2d_align_true", x2, grid2, True)
    add("gs2d_batch2", rnd(2, 2, 4, 5), uni(2, 3, 3, 2, lo=-1.1, hi=1.1), False)
    x3 = rnd(2, 4, 5, 6, 7)
    grid3 = uni(2, 3, 4, 5, 3, lo=-1.2, hi=1.2)
    add("gs3d_align_false", x3, grid3, False)
    add("gs3d_align_true", x3, grid3, True)
    # An identity-like grid (face-vid2vid's make_coordinate_grid): exact integer taps.
    d, h, w = 4, 5, 6
    zs, ys, xs = torch.meshgrid(torch.linspace(-1, 1, d), torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    ident = torch.stack([xs, ys, zs], -1)[None]
    add("gs3d_identity_align_true", rnd(1, 3, d, h, w), ident, True)
    add("gs3d_identity_align_false", rnd(1, 3, d, h, w), ident, False)
    add("gs3d_far_out", rnd(1, 2, 3, 4, 5), uni(1, 2, 3, 4, 3, lo=-5, hi=5), False)
    g.write()


def interpolate_goldens():
    g = GoldenFile("goldens/ops/interpolate.safetensors")

    def add(name, x, mode, size=None, scale=None, align=None):
        kw = {"mode": mode}
        if size is not None:
            kw["size"] = tuple(size)
        if scale is not None:
            kw["scale_factor"] = tuple(scale) if isinstance(scale, (list, tuple)) else scale
        if align is not None:
            kw["align_corners"] = align
        y = F.interpolate(x, **kw)
        nd = x.dim() - 2
        p = {"op": "interpolate", "mode": mode, "align_corners": bool(align)}
        if size is not None:
            p["size"] = list(size)
        else:
            p["scale"] = list(scale) if isinstance(scale, (list, tuple)) else [scale] * nd
        g.case(name, p, input=x, output=y)

    add("nearest2d_x2", rnd(1, 2, 3, 5), "nearest", scale=2)
    add("nearest3d_1x2x2", rnd(1, 2, 3, 4, 5), "nearest", scale=(1, 2, 2))
    add("nearest2d_size_7x5", rnd(1, 2, 4, 6), "nearest", size=(7, 5))
    add("nearest1d_x1.5", rnd(1, 2, 7), "nearest", scale=1.5)
    add("nearest3d_size", rnd(1, 2, 3, 4, 5), "nearest", size=(5, 7, 3))
    add("nearest2d_x0.5", rnd(1, 2, 9, 8), "nearest", scale=0.5)
    add("bilinear_x2", rnd(1, 2, 5, 6), "bilinear", scale=2, align=False)
    add("bilinear_size_align", rnd(1, 2, 5, 6), "bilinear", size=(9, 4), align=True)
    add("bilinear_size", rnd(1, 2, 7, 5), "bilinear", size=(3, 11), align=False)
    add("bilinear_x0.5", rnd(2, 2, 8, 6), "bilinear", scale=0.5, align=False)
    add("bilinear_x3_align", rnd(1, 1, 4, 4), "bilinear", scale=3, align=True)
    add("bilinear_to_1", rnd(1, 1, 4, 5), "bilinear", size=(1, 1), align=True)
    g.write()


def pool_goldens():
    g = GoldenFile("goldens/ops/pool.safetensors")

    def add(name, op, x, k, s, p, cip=True):
        if op == "avg_pool2d":
            y = F.avg_pool2d(x, k, s, p, count_include_pad=cip)
        elif op == "avg_pool3d":
            y = F.avg_pool3d(x, k, s, p, count_include_pad=cip)
        else:
            y = F.max_pool2d(x, k, s, p)
        nd = x.dim() - 2
        t = lambda v: list(v) if isinstance(v, tuple) else [v] * nd
        params = {"op": op, "kernel": t(k), "stride": t(s), "padding": t(p), "count_include_pad": cip}
        g.case(name, params, input=x, output=y)

    add("avg2d_k2", "avg_pool2d", rnd(1, 3, 8, 10), 2, 2, 0)
    add("avg2d_k3_s2_p1", "avg_pool2d", rnd(1, 2, 9, 7), 3, 2, 1, True)
    add("avg2d_k3_s2_p1_nopad", "avg_pool2d", rnd(1, 2, 9, 7), 3, 2, 1, False)
    add("avg2d_odd_k2", "avg_pool2d", rnd(2, 2, 7, 9), 2, 2, 0)
    add("avg3d_1x2x2", "avg_pool3d", rnd(1, 3, 4, 6, 8), (1, 2, 2), (1, 2, 2), 0)
    add("avg3d_k3_s122_p1", "avg_pool3d", rnd(1, 2, 5, 6, 7), 3, (1, 2, 2), 1, True)
    add("avg3d_k3_nopad", "avg_pool3d", rnd(1, 2, 5, 6, 7), 3, (1, 2, 2), 1, False)
    add("max2d_k3_s2_p1", "max_pool2d", rnd(1, 3, 9, 8), 3, 2, 1)
    add("max2d_k2", "max_pool2d", rnd(2, 2, 6, 7), 2, 2, 0)
    for name, x, size in [
        ("adaptive2d_1", rnd(2, 3, 7, 5), (1, 1)),
        ("adaptive2d_3x2", rnd(1, 2, 7, 5), (3, 2)),
        ("adaptive1d_1", rnd(2, 4, 9), (1,)),
        ("adaptive3d_2x3x2", rnd(1, 2, 5, 7, 4), (2, 3, 2)),
    ]:
        fn = {3: F.adaptive_avg_pool1d, 4: F.adaptive_avg_pool2d, 5: F.adaptive_avg_pool3d}[x.dim()]
        g.case(name, {"op": "adaptive_avg_pool", "output_size": list(size)}, input=x, output=fn(x, size))
    g.write()


def norm_goldens():
    g = GoldenFile("goldens/ops/norm.safetensors")

    def bn(name, x, affine, eps):
        c = x.shape[1]
        mean, var = rnd(c, scale=0.5), uni(c, lo=0.2, hi=2.0)
        w = rnd(c, scale=0.3, offset=1.0) if affine else None
        b = rnd(c, scale=0.3) if affine else None
        y = F.batch_norm(x, mean, var, w, b, training=False, eps=eps)
        g.case(name, {"op": "batch_norm", "eps": eps}, input=x, running_mean=mean, running_var=var, weight=w, bias=b, output=y)

    def inorm(name, x, affine, eps=1e-5):
        c = x.shape[1]
        w = rnd(c, scale=0.3, offset=1.0) if affine else None
        b = rnd(c, scale=0.3) if affine else None
        y = F.instance_norm(x, weight=w, bias=b, eps=eps)
        g.case(name, {"op": "instance_norm", "eps": eps}, input=x, weight=w, bias=b, output=y)

    bn("bn2d", rnd(2, 5, 4, 6, scale=2.0, offset=0.5), True, 1e-5)
    bn("bn3d", rnd(1, 4, 3, 5, 6), True, 1e-5)
    bn("bn2d_noaffine_eps1e-3", rnd(1, 3, 5, 5), False, 1e-3)
    bn("bn1d", rnd(4, 6, 9), True, 1e-5)
    inorm("in2d", rnd(2, 3, 7, 9), False)
    inorm("in3d_affine", rnd(1, 4, 3, 5, 5), True)
    inorm("in2d_offset", rnd(1, 3, 16, 16, scale=0.1, offset=100.0), True)
    g.write()


def activation_goldens():
    g = GoldenFile("goldens/ops/activation.safetensors")
    x = rnd(1, 15, 144) * 10.0
    g.case("softmax_heatmap", {"op": "softmax"}, input=x, output=F.softmax(x, dim=-1))
    x = rnd(2, 3, 5)
    g.case("softmax_small", {"op": "softmax"}, input=x, output=F.softmax(x, dim=-1))
    x = uni(3, 50, lo=-20, hi=20)
    g.case("sigmoid", {"op": "sigmoid"}, input=x, output=torch.sigmoid(x))
    x = rnd(4, 33)
    g.case("leaky_relu_0.01", {"op": "leaky_relu", "slope": 0.01}, input=x, output=F.leaky_relu(x, 0.01))
    g.case("leaky_relu_0.2", {"op": "leaky_relu", "slope": 0.2}, input=x, output=F.leaky_relu(x, 0.2))
    g.write()


def conv_transpose_goldens():
    g = GoldenFile("goldens/ops/conv_transpose.safetensors")
    cases = [
        # name, input shape, weight shape (in, out/groups, *k), stride, padding, output_padding, dilation, groups, bias
        ("ct2d_k21_s21", (1, 6, 5, 3), (6, 4, 2, 1), (2, 1), 0, 0, 1, 1, True),  # Audio2Pose ResUnet Upsample
        ("ct2d_k3_s2_p1_op1", (2, 3, 4, 5), (3, 5, 3, 3), 2, 1, 1, 1, 1, True),
        ("ct2d_groups2_dil2", (1, 4, 4, 4), (4, 3, 3, 3), 1, 1, 0, 2, 2, False),
        ("ct1d_k4_s2_p1", (1, 3, 7), (3, 2, 4), 2, 1, 0, 1, 1, True),
        ("ct3d_k2_s122", (1, 2, 2, 3, 3), (2, 3, 1, 2, 2), (1, 2, 2), 0, 0, 1, 1, True),
    ]
    fns = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
    for name, xs, ws, s, p, op, d, gr, has_b in cases:
        nd = len(xs) - 2
        tup = lambda v: list(v) if isinstance(v, tuple) else [v] * nd
        x, w = rnd(*xs), rnd(*ws, scale=0.3)
        b = rnd(ws[1] * gr, scale=0.1) if has_b else None
        y = fns[nd](x, w, b, stride=tuple(tup(s)), padding=tuple(tup(p)), output_padding=tuple(tup(op)), groups=gr, dilation=tuple(tup(d)))
        params = {"op": f"conv_transpose{nd}d", "stride": tup(s), "padding": tup(p), "output_padding": tup(op), "dilation": tup(d), "groups": gr}
        g.case(name, params, input=x, weight=w, bias=b, output=y)
    g.write()


if __name__ == "__main__":
    conv_goldens()
    conv_transpose_goldens()
    grid_sample_goldens()
    interpolate_goldens()
    pool_goldens()
    norm_goldens()
    activation_goldens()
