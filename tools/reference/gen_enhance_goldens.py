"""Goldens for the face enhancer (crates/enhance): GFPGAN v1.4 "clean" (gfpgan's GFPGANv1Clean), facexlib's
ParseNet and FaceRestoreHelper as GFPGANer.enhance runs them per frame in SadTalker (upscale 2, use_parse=True,
only_center_face=False, eye_dist_threshold=5), and the OpenCV calls that pipeline makes.

Files (all under fixtures/goldens/enhance/):

  generator.safetensors  (GoldenFile, f32) reduced-width networks on recipe weights:
      gfpgan_128   GFPGANv1Clean(out_size=128, narrow=1/16, num_style_feat=64) with injected noise (recipe
                   values named `noise{i}`, uniform in [-1, 1)); gain sqrt(3): outputs of order 1, and PyTorch
                   f32 and f64 agree to ~1e-6 relative (printed and stored as `f64_rel_diff`).
      parsenet_64  ParseNet(in_size=64, out_size=64, min_feat_size=16, base_ch=8, res_depth=2, ch_range=[8, 32]),
                   gain sqrt(2) (all 19 classes appear in the argmax; f32 vs f64 ~1e-6 relative).
  pipeline.safetensors   (u8 / f32 / f64 tensors, `cases` metadata) GFPGANer.enhance on whole frames, with the
                   detector replaced by injected detections (random weights find no faces):
      two_faces    a 120x120 frame with three detections (the third has eyes 3 px apart and is skipped);
                   the restorer is the negation of the network input and the parser a formula label map
                   (both reproducible in Rust), so the OpenCV chain (LMedS similarity, warpAffine, Lanczos
                   upsampling, Gaussian blurs, soft paste) is checked bit for bit.
      no_face      no detection: the frame comes back Lanczos-upscaled.
      e2e_reduced  one face through reduced GFPGAN (out 512, narrow 1/32) and reduced ParseNet (512) on recipe
                   weights with recipe noise: the final frame with real networks.
  cv.safetensors         OpenCV 5 calls alone: warpAffine (8UC3 and 64FC1), resize LANCZOS4, GaussianBlur(101, 11),
                   getGaussianKernel, estimateAffinePartial2D(LMEDS) (with outliers), invertAffineTransform.

`--local OUT_DIR`: the official-size GFPGANv1Clean and ParseNet (recipe weights) on one 512 face, and the
`two_faces` frame end to end with them; too large to commit, checked by
`SADTALKER_ENHANCE_GOLDENS=OUT_DIR cargo test -p sadtalker-enhance --test official_size -- --ignored`.

Image tensors are stored RGB (the Rust side's order); the reference is fed BGR, as SadTalker does.
"""
import json
import math
import os
import sys
import types

import cv2
import numpy as np
import torch
import torch.nn as nn

import recipe
from goldens import FIXTURES, GoldenFile

torch.set_num_threads(2)

GAIN_GFPGAN = math.sqrt(3.0)
GAIN_PARSE = math.sqrt(2.0)


# ---------------------------------------------------------------- networks


def gfpgan(out_size, narrow, num_style_feat):
    """GFPGANv1Clean as GFPGANer builds it (arch='clean', channel_multiplier=2), at a chosen width."""
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    return GFPGANv1Clean(out_size=out_size, num_style_feat=num_style_feat, channel_multiplier=2,
                         decoder_load_path=None, fix_decoder=False, num_mlp=8, input_is_latent=True,
                         different_w=True, narrow=narrow, sft_half=True)


def recipe_noises(num_layers):
    """The injected noise: layer i is (1, 1, r, r), r = 2**((i + 5) // 2), recipe values of `noise{i}` with
    gain r, i.e. uniform in [-1, 1)."""
    out = []
    for i in range(num_layers):
        r = 2 ** ((i + 5) // 2)
        out.append(torch.from_numpy(recipe.values(f"noise{i}", (1, 1, r, r), gain=float(r))))
    return out


def inject_noise(model, noises):
    """Makes the StyleGAN decoder use `noises` instead of fresh torch.randn (GFPGANer runs randomize_noise=True)."""
    from gfpgan.archs.gfpganv1_clean_arch import StyleGAN2GeneratorCSFT

    dec = model.stylegan_decoder
    dec.forward = types.MethodType(
        lambda self, styles, conditions, **kw: StyleGAN2GeneratorCSFT.forward(
            self, styles, conditions, **{**kw, "noise": [n.to(styles[0].dtype) for n in noises]}), dec)


def parsenet(**kw):
    from facexlib.parsing.parsenet import ParseNet

    return ParseNet(parsing_ch=19, **kw)


def f64_copy(model, ctor):
    m = ctor()
    m.load_state_dict(model.state_dict())
    return m.double().eval()


# ---------------------------------------------------------------- images


def astronaut(h, w):
    """A face picture (skimage's astronaut, the face region) at (h, w), uint8 RGB."""
    import skimage.data
    import skimage.transform

    img = skimage.data.astronaut()[20:340, 90:410]
    img = skimage.transform.resize(img, (h, w), anti_aliasing=True)
    return np.round(img * 255).astype(np.uint8)


def normalized(img_rgb):
    """GFPGANer's input for an RGB uint8 crop: /255. in float64, to float32, (x - 0.5) / 0.5."""
    t = torch.from_numpy((img_rgb / 255.).astype(np.float32).transpose(2, 0, 1).copy())
    return ((t - 0.5) / 0.5)[None]


def formula_labels(size=512):
    """A face-like parse label map computable exactly in Rust: background outside an ellipse, hair (17) on
    top, neck (14) at the bottom, skin/features classes 1..13 in 64-px blocks inside."""
    y, x = np.mgrid[0:size, 0:size]
    xf = (x - 256.0) / 200.0
    yf = (y - 270.0) / 240.0
    d = xf * xf + yf * yf
    cls = 1 + (x // 64 + y // 64) % 13
    cls = np.where(y < 120, 17, cls)
    cls = np.where(y > 460, 14, cls)
    cls = np.where(d > 1.0, 0, cls)
    return cls.astype(np.int64)


class NegationRestorer(nn.Module):
    """Stands in for GFPGAN: returns the negated input, so the restored face is 255 - crop."""

    def forward(self, x, return_rgb=False, weight=0.5):
        return -x, None


class FormulaParser(nn.Module):
    """Stands in for ParseNet: one-hot logits of `formula_labels`."""

    def forward(self, x):
        cls = torch.from_numpy(formula_labels(x.shape[-1]))
        logits = torch.nn.functional.one_hot(cls, 19).permute(2, 0, 1)[None].float()
        return logits, None


class InjectedDetector:
    """facexlib's RetinaFace.detect_faces, returning fixed detections."""

    def __init__(self, dets):
        self.dets = dets.astype(np.float32)

    def detect_faces(self, image, conf_threshold=0.8, nms_threshold=0.4, use_origin_size=True):
        return self.dets.copy()


def make_restorer(gfpgan_model, parse_model, dets, device="cpu"):
    """A GFPGANer as SadTalker builds it (upscale=2, arch='clean', bg_upsampler=None on CPU) with the given
    networks and the detector replaced; FaceRestoreHelper is the real class (its model constructors patched).
    `device`: where the face tensors go (the networks must be there already)."""
    import facexlib.utils.face_restoration_helper as frh
    from gfpgan.utils import GFPGANer

    saved = frh.init_detection_model, frh.init_parsing_model
    frh.init_detection_model = lambda *a, **k: InjectedDetector(dets)
    frh.init_parsing_model = lambda *a, **k: parse_model
    try:
        helper = frh.FaceRestoreHelper(2, face_size=512, crop_ratio=(1, 1), det_model='retinaface_resnet50',
                                       save_ext='png', use_parse=True, device=torch.device(device),
                                       model_rootpath='gfpgan/weights')
    finally:
        frh.init_detection_model, frh.init_parsing_model = saved
    r = GFPGANer.__new__(GFPGANer)
    r.upscale = 2
    r.bg_upsampler = None
    r.device = torch.device(device)
    r.gfpgan = gfpgan_model
    r.face_helper = helper
    return r


def enhance(restorer, frame_rgb):
    """What sadtalker.utils.face_enhancer does per frame."""
    img = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    with torch.no_grad():
        crops, restored, out = restorer.enhance(img, has_aligned=False, only_center_face=False, paste_back=True)
    fh = restorer.face_helper
    return dict(crops=crops, restored=restored, output=cv2.cvtColor(out, cv2.COLOR_BGR2RGB),
                affine=np.array(fh.affine_matrices, dtype=np.float64).reshape(-1, 2, 3),
                inverse_affine=np.array(fh.inverse_affine_matrices, dtype=np.float64).reshape(-1, 2, 3))


def det_row(landmarks, score=0.999):
    lm = np.asarray(landmarks, dtype=np.float32)
    x1, y1 = lm.min(0) - 8
    x2, y2 = lm.max(0) + 8
    return np.concatenate([[x1, y1, x2, y2, score], lm.ravel()]).astype(np.float32)


TWO_FACES_DETS = np.stack([
    # the astronaut's face, slightly rotated
    det_row([[47.3, 50.1], [74.8, 48.2], [62.2, 63.7], [50.6, 78.4], [73.1, 76.9]]),
    # a small, more rotated face in the lower right corner (partly outside the crop's reach)
    det_row([[92.5, 95.0], [104.1, 90.2], [101.3, 100.7], [97.8, 108.9], [108.2, 104.6]], 0.985),
    # eyes 3 px apart: skipped (eye_dist_threshold=5)
    det_row([[10.0, 10.0], [13.0, 10.0], [11.5, 12.0], [10.5, 14.0], [12.5, 14.0]], 0.99),
])


# ---------------------------------------------------------------- raw safetensors with u8 / f64


class RawFile:
    """A golden file whose tensors keep their dtype (uint8 images, float64 matrices)."""

    def __init__(self, relpath):
        self.path = os.path.join(FIXTURES, relpath)
        self.tensors = {}
        self.cases = []

    def case(self, name, params, **tensors):
        self.cases.append({"name": name, **params})
        for role, t in tensors.items():
            self.tensors[f"{name}.{role}"] = np.ascontiguousarray(t)

    def write(self):
        from safetensors.numpy import save_file

        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = self.path + ".tmp"
        save_file(self.tensors, tmp, metadata={"cases": json.dumps(self.cases)})
        os.replace(tmp, self.path)
        print(f"wrote {self.path}: {len(self.cases)} cases, {os.path.getsize(self.path) / 1024:.1f} KiB")


# ---------------------------------------------------------------- goldens


def generator_goldens():
    g = GoldenFile("goldens/enhance/generator.safetensors")

    cfg = dict(out_size=128, narrow=1 / 16, num_style_feat=64)
    m = gfpgan(**cfg)
    recipe.apply(m, gain=GAIN_GFPGAN)
    m.eval()
    noises = recipe_noises(m.stylegan_decoder.num_layers)
    x = normalized(astronaut(128, 128))
    captured = {}
    m.final_linear.register_forward_hook(lambda mod, i, o: captured.update(style=o))
    inject_noise(m, noises)
    with torch.no_grad():
        y = m(x, return_rgb=False)[0]
    m64 = f64_copy(m, lambda: gfpgan(**cfg))
    inject_noise(m64, noises)
    with torch.no_grad():
        y64 = m64(x.double(), return_rgb=False)[0]
    rel = ((y.double() - y64).abs().max() / y64.abs().max()).item()
    print(f"gfpgan_128: max|y| {y64.abs().max().item():.3f}, f32 vs f64 rel {rel:.2e}")
    assert rel < 1e-4, rel
    g.case("gfpgan_128", {"op": "gfpgan", **cfg, "gain": GAIN_GFPGAN, "f64_rel_diff": rel},
           input=x, style_code=captured["style"], output=y)

    cfg = dict(in_size=64, out_size=64, min_feat_size=16, base_ch=8, res_depth=2, ch_range=[8, 32])
    p = parsenet(**cfg)
    recipe.apply(p, gain=GAIN_PARSE)
    p.eval()
    x = normalized(astronaut(64, 64))
    with torch.no_grad():
        mask, img = p(x)
        mask64, _ = f64_copy(p, lambda: parsenet(**cfg))(x.double())
    rel = ((mask.double() - mask64).abs().max() / mask64.abs().max()).item()
    print(f"parsenet_64: max|mask| {mask64.abs().max().item():.3f}, f32 vs f64 rel {rel:.2e}, "
          f"{len(torch.unique(mask.argmax(1)))} classes")
    assert rel < 1e-4, rel
    g.case("parsenet_64", {"op": "parsenet", **cfg, "gain": GAIN_PARSE, "f64_rel_diff": rel},
           input=x, out_mask=mask, out_img=img)
    g.write()


def reduced_e2e_models():
    m = gfpgan(512, 1 / 32, 64)
    recipe.apply(m, gain=GAIN_GFPGAN)
    m.eval()
    inject_noise(m, recipe_noises(m.stylegan_decoder.num_layers))
    p = parsenet(in_size=512, out_size=512, base_ch=4, res_depth=1, ch_range=[4, 16])
    recipe.apply(p, gain=GAIN_PARSE)
    p.eval()
    return m, p


def pipeline_goldens():
    f = RawFile("goldens/enhance/pipeline.safetensors")
    frame = astronaut(120, 120)

    r = enhance(make_restorer(NegationRestorer(), FormulaParser(), TWO_FACES_DETS), frame)
    for crop, rest in zip(r["crops"], r["restored"]):
        assert np.array_equal(rest, 255 - crop), "the negation restorer should give 255 - crop exactly"
    f.case("two_faces", {"kind": "synthetic", "faces": len(r["crops"])}, frame=frame, dets=TWO_FACES_DETS,
           affine=r["affine"], inverse_affine=r["inverse_affine"], output=r["output"])

    empty = np.zeros((0, 15), np.float32)
    small = astronaut(50, 70)
    r = enhance(make_restorer(NegationRestorer(), FormulaParser(), empty), small)
    f.case("no_face", {"kind": "synthetic", "faces": 0}, frame=small, dets=empty, output=r["output"])

    m, p = reduced_e2e_models()
    dets = TWO_FACES_DETS[:1]
    r = enhance(make_restorer(m, p, dets), frame)
    f.case("e2e_reduced", {"kind": "e2e", "faces": 1, "gfpgan": dict(out_size=512, narrow=1 / 32, num_style_feat=64),
                           "gfpgan_gain": GAIN_GFPGAN,
                           "parsenet": dict(in_size=512, out_size=512, base_ch=4, res_depth=1, ch_range=[4, 16]),
                           "parsenet_gain": GAIN_PARSE},
           frame=frame, dets=dets, affine=r["affine"], inverse_affine=r["inverse_affine"], output=r["output"])
    f.write()


def cv_goldens():
    f = RawFile("goldens/enhance/cv.safetensors")
    rng = np.random.default_rng(7)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (37, 45, 3), dtype=np.uint8), (5, 5), 1.5)

    def similarity(scale, angle, tx, ty):
        c, s = scale * math.cos(angle), scale * math.sin(angle)
        return np.array([[c, -s, tx], [s, c, ty]], np.float64)

    warps = [
        ("up_rot", similarity(3.7, 0.3, -20.0, -35.0), (131, 117), (132, 133, 135)),
        ("down", similarity(0.45, -0.8, 30.0, 12.0), (40, 33), (0, 0, 0)),
        ("narrow", similarity(1.3, 0.05, 2.5, -1.5), (9, 70), (7, 8, 9)),
        ("wide", similarity(2.1, -0.2, -5.0, 3.0), (130, 20), (0, 0, 0)),
    ]
    for name, M, dsize, border in warps:
        out = cv2.warpAffine(smooth, M, dsize, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        f.case(f"warp_u8_{name}", {"op": "warp_u8", "dsize": list(dsize), "border": list(border)},
               src=smooth, m=M, out=out)
        srcf = smooth[:, :, 1].astype(np.float64) / 255.0
        outf = cv2.warpAffine(srcf, M, dsize, flags=3)
        f.case(f"warp_f64_{name}", {"op": "warp_f64", "dsize": list(dsize)}, src=srcf, m=M, out=outf)

    for name, size in [("up2", (90, 74)), ("odd", (61, 50)), ("down", (20, 15))]:
        out = cv2.resize(smooth, size, interpolation=cv2.INTER_LANCZOS4)
        f.case(f"lanczos_{name}", {"op": "lanczos", "dsize": list(size)}, src=smooth, out=out)
    noisy = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    f.case("lanczos_noise_up2", {"op": "lanczos", "dsize": [62, 46]}, src=noisy,
           out=cv2.resize(noisy, (62, 46), interpolation=cv2.INTER_LANCZOS4))

    kernel = cv2.getGaussianKernel(101, 11, cv2.CV_64F).ravel()
    # The source is the formula `blob` (not stored): 255 inside an ellipse, 0 outside.
    y, x = np.mgrid[0:110, 0:96]
    blob = np.where(((x - 50.0) / 35.0) ** 2 + ((y - 60.0) / 45.0) ** 2 < 1.0, 255.0, 0.0)
    once = cv2.GaussianBlur(blob, (101, 101), 11)
    twice = cv2.GaussianBlur(once, (101, 101), 11)
    f.case("gaussian_blur", {"op": "blur", "height": 110, "width": 96}, kernel=kernel, once=once, twice=twice)

    template = np.array([[192.98138, 239.94708], [318.90277, 240.1936], [256.63416, 314.01935],
                         [201.26117, 371.41043], [313.08905, 371.15118]])
    lms, affines, inliers = [], [], []
    for k in range(24):
        s = rng.uniform(0.08, 1.5)
        th = rng.uniform(-0.6, 0.6)
        rot = s * np.array([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        lm = (template - 256.0) @ rot.T + rng.uniform(20, 300, 2) + rng.normal(0, [0.3, 2.0, 6.0][k % 3] * s, (5, 2))
        if k % 4 == 3:
            lm[rng.integers(5)] += rng.normal(0, 60 * s, 2)
        lm = lm.astype(np.float32)
        a, inl = cv2.estimateAffinePartial2D(lm, template, method=cv2.LMEDS)
        lms.append(lm)
        affines.append(a)
        inliers.append(inl.ravel())
    f.case("lmeds", {"op": "lmeds"}, landmarks=np.stack(lms), template=template, affine=np.stack(affines),
           inliers=np.stack(inliers).astype(np.uint8))
    inv = np.stack([cv2.invertAffineTransform(a) for a in affines])
    f.case("invert_affine", {"op": "invert"}, m=np.stack(affines), inverse=inv)
    f.write()


def local_goldens(out_dir):
    """Official widths (recipe weights): GFPGAN and ParseNet on one 512 face, and two_faces end to end."""
    os.makedirs(out_dir, exist_ok=True)
    rel = os.path.relpath(os.path.join(out_dir, "full.safetensors"), FIXTURES)
    g = GoldenFile(rel)
    m = gfpgan(512, 1, 512)
    recipe.apply(m, gain=GAIN_GFPGAN)
    m.eval()
    inject_noise(m, recipe_noises(m.stylegan_decoder.num_layers))
    x = normalized(astronaut(512, 512))
    with torch.no_grad():
        y = m(x, return_rgb=False)[0]
    g.case("gfpgan_512", {"op": "gfpgan", "out_size": 512, "narrow": 1, "num_style_feat": 512,
                          "gain": GAIN_GFPGAN}, input=x, output=y)
    p = parsenet(in_size=512, out_size=512)
    recipe.apply(p, gain=GAIN_PARSE)
    p.eval()
    with torch.no_grad():
        mask, img = p(x)
    g.case("parsenet_512", {"op": "parsenet", "in_size": 512, "out_size": 512, "gain": GAIN_PARSE},
           input=x, out_mask=mask, out_img=img)
    g.write()
    raw = RawFile(os.path.relpath(os.path.join(out_dir, "full_pipeline.safetensors"), FIXTURES))
    frame = astronaut(120, 120)
    r = enhance(make_restorer(m, p, TWO_FACES_DETS), frame)
    raw.case("two_faces_full", {"kind": "e2e_full", "faces": len(r["crops"])}, frame=frame, dets=TWO_FACES_DETS,
             affine=r["affine"], inverse_affine=r["inverse_affine"], output=r["output"])
    raw.write()


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--local":
        local_goldens(sys.argv[2])
        return
    generator_goldens()
    pipeline_goldens()
    cv_goldens()


if __name__ == "__main__":
    main()
