//! Face detection: facexlib's `RetinaFace(network_name='resnet50')` (`detection/retinaface.py`,
//! `retinaface_net.py`, `retinaface_utils.py`; weights `detection_Resnet50_Final.pth`) and its
//! `detect_faces`: priors, box and landmark decoding, the confidence threshold, NMS.
//!
//! Module and parameter names mirror the PyTorch ones (`body.layer2`, `fpn.output1.0`, `ssh1.conv3X3.0`,
//! `ClassHead.0.conv1x1`, ...). The reference strips a `module.` prefix from the file's keys; so does
//! [`RetinaFace::load_from_checkpoint`].

use candle_core::{Device, Tensor};
use image::RgbImage;
use sadtalker_gpu::{GpuTensor, context};
use sadtalker_nn::{Activations, BatchNorm, Conv2d, ConvParams, Weights};
use sadtalker_ops::Resize;

use crate::resnet::ResNet50;
use crate::{PreprocessError, Result};

/// `cfg_re50['min_sizes']`: anchor sizes per pyramid level.
const MIN_SIZES: [[u32; 2]; 3] = [[16, 32], [64, 128], [256, 512]];
/// `cfg_re50['steps']`: pyramid strides.
const STEPS: [u32; 3] = [8, 16, 32];
/// `cfg_re50['variance']`.
const VARIANCE: [f32; 2] = [0.1, 0.2];
/// `detect_faces`' default NMS IoU threshold.
pub const NMS_THRESHOLD: f32 = 0.4;
/// The confidence threshold the reference passes (`detect_faces(img, 0.97)`).
pub const CONF_THRESHOLD: f32 = 0.97;
/// `self.mean_tensor`: per-channel means subtracted, in the order of the array given (BGR).
const MEAN: [f32; 3] = [104.0, 117.0, 123.0];

/// `Conv2d(bias=False)` + `BatchNorm2d` (+ `LeakyReLU(0)` = ReLU where `relu`): facexlib's
/// `conv_bn`, `conv_bn_no_relu`, `conv_bn1X1` (leaky = 0 for 256 channels).
#[derive(Debug)]
struct ConvBn {
    conv: Conv2d,
    bn: BatchNorm,
    relu: bool,
}

impl ConvBn {
    fn load(w: &Weights, inp: usize, oup: usize, kernel: usize, relu: bool) -> Result<Self> {
        let params = ConvParams::padding(kernel / 2);
        Ok(Self {
            conv: Conv2d::load(&w.pp("0"), inp, oup, [kernel, kernel], params, false)?,
            bn: BatchNorm::load(&w.pp("1"), oup, BatchNorm::EPS)?,
            relu,
        })
    }

    fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let y = self.bn.forward(&self.conv.forward(x)?)?;
        Ok(if self.relu { y.relu()? } else { y })
    }
}

/// `FPN(in_channels_list=[512, 1024, 2048], out_channels=256)`.
#[derive(Debug)]
struct Fpn {
    output1: ConvBn,
    output2: ConvBn,
    output3: ConvBn,
    merge1: ConvBn,
    merge2: ConvBn,
}

impl Fpn {
    fn load(w: &Weights) -> Result<Self> {
        Ok(Self {
            output1: ConvBn::load(&w.pp("output1"), 512, 256, 1, true)?,
            output2: ConvBn::load(&w.pp("output2"), 1024, 256, 1, true)?,
            output3: ConvBn::load(&w.pp("output3"), 2048, 256, 1, true)?,
            merge1: ConvBn::load(&w.pp("merge1"), 256, 256, 3, true)?,
            merge2: ConvBn::load(&w.pp("merge2"), 256, 256, 3, true)?,
        })
    }

    fn forward<T: Activations>(&self, c2: &T, c3: &T, c4: &T) -> Result<[T; 3]> {
        let o1 = self.output1.forward(c2)?;
        let o2 = self.output2.forward(c3)?;
        let o3 = self.output3.forward(c4)?;
        let size = |t: &T| Resize::Size(t.dims()[2..].to_vec());
        let up3 = o3.interpolate_nearest(&size(&o2))?;
        let o2 = self.merge2.forward(&o2.add(&up3)?)?;
        let up2 = o2.interpolate_nearest(&size(&o1))?;
        let o1 = self.merge1.forward(&o1.add(&up2)?)?;
        Ok([o1, o2, o3])
    }
}

/// `SSH(256, 256)`: 3 × 3, "5 × 5" and "7 × 7" (stacked 3 × 3) branches, concatenated, ReLU.
#[derive(Debug)]
struct Ssh {
    conv3x3: ConvBn,
    conv5x5_1: ConvBn,
    conv5x5_2: ConvBn,
    conv7x7_2: ConvBn,
    conv7x7_3: ConvBn,
}

impl Ssh {
    fn load(w: &Weights) -> Result<Self> {
        Ok(Self {
            conv3x3: ConvBn::load(&w.pp("conv3X3"), 256, 128, 3, false)?,
            conv5x5_1: ConvBn::load(&w.pp("conv5X5_1"), 256, 64, 3, true)?,
            conv5x5_2: ConvBn::load(&w.pp("conv5X5_2"), 64, 64, 3, false)?,
            conv7x7_2: ConvBn::load(&w.pp("conv7X7_2"), 64, 64, 3, true)?,
            conv7x7_3: ConvBn::load(&w.pp("conv7x7_3"), 64, 64, 3, false)?,
        })
    }

    fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let a = self.conv3x3.forward(x)?;
        let b1 = self.conv5x5_1.forward(x)?;
        let b = self.conv5x5_2.forward(&b1)?;
        let c = self.conv7x7_3.forward(&self.conv7x7_2.forward(&b1)?)?;
        Ok(T::cat_channels(&[&a, &b, &c])?.relu()?)
    }
}

/// The raw outputs of `RetinaFace.forward` (batch 1): per prior, box offsets, class
/// probabilities (softmax) and landmark offsets.
#[derive(Clone, Debug)]
pub struct RawDetections {
    /// `(P, 4)` box regressions.
    pub loc: Vec<[f32; 4]>,
    /// `(P, 2)` softmax over (background, face).
    pub conf: Vec<[f32; 2]>,
    /// `(P, 10)` landmark regressions (5 points).
    pub landms: Vec<[f32; 10]>,
}

/// One detected face, in image pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    /// `(x1, y1, x2, y2)`.
    pub bbox: [f32; 4],
    /// Face probability.
    pub score: f32,
    /// Five points `(x, y)`: eyes, nose, mouth corners.
    pub landmarks: [f32; 10],
}

impl Detection {
    /// Box area (zero for a degenerate box).
    pub fn area(&self) -> f32 {
        (self.bbox[2] - self.bbox[0]).max(0.0) * (self.bbox[3] - self.bbox[1]).max(0.0)
    }
}

/// What [`RetinaFace::detect_faces`] found.
#[derive(Clone, Debug)]
pub struct DetectOutcome {
    /// Detections above the threshold after NMS, by descending score (the reference's order).
    pub faces: Vec<Detection>,
    /// The highest face probability over all priors (for the "no face" message).
    pub best_score: f32,
}

/// facexlib's `RetinaFace` with the ResNet-50 backbone.
#[derive(Debug)]
pub struct RetinaFace {
    body: ResNet50,
    fpn: Fpn,
    ssh: [Ssh; 3],
    /// Per pyramid level, `BboxHead.i`, `ClassHead.i` and `LandmarkHead.i` (1 × 1 convolutions of
    /// the same features, 2 anchors each) as one layer, their outputs stacked in that order
    /// (`HEAD_WIDTHS`): one call, and on a GPU one read-back per level.
    heads: Vec<Conv2d>,
}

/// Channels per position of the stacked heads: box (2 anchors × 4), class (2 × 2), landmarks
/// (2 × 10).
const HEAD_WIDTHS: [usize; 3] = [8, 4, 20];

impl RetinaFace {
    /// Loads the network from `w`, scoped at the module (holding `body.*`, `fpn.*`, ...).
    pub fn load(w: &Weights) -> Result<Self> {
        let head = |name: &str, ch: usize| -> Result<Vec<Conv2d>> {
            (0..3)
                .map(|i| {
                    Ok(Conv2d::load(
                        &w.pp(name).pp(i).pp("conv1x1"),
                        256,
                        ch,
                        [1, 1],
                        ConvParams::default(),
                        true,
                    )?)
                })
                .collect()
        };
        Ok(Self {
            body: ResNet50::load(&w.pp("body"))?,
            fpn: Fpn::load(&w.pp("fpn"))?,
            ssh: [
                Ssh::load(&w.pp("ssh1"))?,
                Ssh::load(&w.pp("ssh2"))?,
                Ssh::load(&w.pp("ssh3"))?,
            ],
            heads: {
                let (bbox, class, landmark) = (head("BboxHead", 8)?, head("ClassHead", 4)?, head("LandmarkHead", 20)?);
                (0..3)
                    .map(|i| Conv2d::concat_out(&[&bbox[i], &class[i], &landmark[i]]))
                    .collect::<sadtalker_nn::Result<_>>()?
            },
        })
    }

    /// Loads from `detection_Resnet50_Final.pth`'s weights, with or without the `module.` prefix
    /// the reference strips.
    pub fn load_from_checkpoint(root: &Weights) -> Result<Self> {
        if root.contains("body.conv1.weight") || !root.contains("module.body.conv1.weight") {
            Self::load(root)
        } else {
            Self::load(&root.pp("module"))
        }
    }

    /// `RetinaFace.forward` on `(1, 3, H, W)` (mean-subtracted): box regressions, softmaxed
    /// classifications and landmark regressions per prior. On the thread's GPU when one is set:
    /// the image goes up, each pyramid level's stacked heads come back.
    pub fn forward(&self, x: &Tensor) -> Result<RawDetections> {
        let levels = match context::current() {
            Some(dev) => self
                .head_outputs(&GpuTensor::from_tensor(&dev, x)?)?
                .iter()
                .map(|h| h.to_host())
                .collect::<sadtalker_nn::Result<Vec<_>>>()?,
            None => self.head_outputs(x)?.to_vec(),
        };
        let mut out = RawDetections {
            loc: Vec::new(),
            conf: Vec::new(),
            landms: Vec::new(),
        };
        let [wb, wc, wl] = HEAD_WIDTHS;
        for level in &levels {
            // permute(0, 2, 3, 1): per position, then per anchor (each head's own order).
            let rows = level.permute((0, 2, 3, 1))?.flatten_all()?.to_vec1::<f32>()?;
            for row in rows.chunks_exact(wb + wc + wl) {
                let (bbox, rest) = row.split_at(wb);
                let (class, landmarks) = rest.split_at(wc);
                for a in 0..2 {
                    let b = &bbox[a * 4..a * 4 + 4];
                    out.loc.push([b[0], b[1], b[2], b[3]]);
                    out.conf.push(softmax2([class[a * 2], class[a * 2 + 1]]));
                    let mut l = [0f32; 10];
                    l.copy_from_slice(&landmarks[a * 10..a * 10 + 10]);
                    out.landms.push(l);
                }
            }
        }
        Ok(out)
    }

    /// The body, FPN, SSH and the stacked heads where `x` is: per pyramid level `(1, 32, H, W)`.
    fn head_outputs<T: Activations>(&self, x: &T) -> Result<[T; 3]> {
        let stages = self.body.forward(x)?;
        let fpn = self.fpn.forward(&stages.layer2, &stages.layer3, &stages.layer4)?;
        let [a, b, c] = fpn;
        let level = |i: usize, f: &T| -> Result<T> { Ok(self.heads[i].forward(&self.ssh[i].forward(f)?)?) };
        Ok([level(0, &a)?, level(1, &b)?, level(2, &c)?])
    }

    /// `detect_faces(image, conf_threshold)` at the image's own size (`use_origin_size=True`).
    ///
    /// `image` is the array as the caller holds it; `swap_rb` converts it to BGR first, as the
    /// reference does for a PIL image (`transform`). The reference's first pass hands over the RGB
    /// numpy frame as it is (no swap): pass `false` there to reproduce it.
    pub fn detect_faces(
        &self,
        image: &RgbImage,
        swap_rb: bool,
        conf_threshold: f32,
        device: &Device,
    ) -> Result<DetectOutcome> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let raw = image.as_raw();
        let mut data = vec![0f32; 3 * w * h];
        for c in 0..3 {
            let src = if swap_rb { 2 - c } else { c };
            for (i, o) in data[c * w * h..(c + 1) * w * h].iter_mut().enumerate() {
                *o = f32::from(raw[i * 3 + src]) - MEAN[c];
            }
        }
        let x = Tensor::from_vec(data, (1, 3, h, w), device)?;
        let raw = self.forward(&x)?;
        let priors = prior_box(h, w);
        if priors.len() != raw.loc.len() {
            return Err(PreprocessError::Internal(format!(
                "RetinaFace produced {} predictions for {} priors",
                raw.loc.len(),
                priors.len()
            )));
        }
        Ok(postprocess(&raw, &priors, w, h, conf_threshold, NMS_THRESHOLD))
    }
}

fn softmax2(v: [f32; 2]) -> [f32; 2] {
    let m = v[0].max(v[1]);
    let e = [(v[0] - m).exp(), (v[1] - m).exp()];
    let s = e[0] + e[1];
    [e[0] / s, e[1] / s]
}

/// `PriorBox(cfg_re50, image_size=(h, w)).forward()`: anchors `(cx, cy, sx, sy)` relative to the
/// image, level by level, row-major, two sizes per position (computed in double, stored as float).
pub fn prior_box(h: usize, w: usize) -> Vec<[f32; 4]> {
    let mut out = Vec::new();
    let (hf, wf) = (h as f64, w as f64);
    for (k, &step) in STEPS.iter().enumerate() {
        let (fh, fw) = (h.div_ceil(step as usize), w.div_ceil(step as usize));
        let step = f64::from(step);
        for i in 0..fh {
            for j in 0..fw {
                for &min_size in &MIN_SIZES[k] {
                    let s_kx = f64::from(min_size) / wf;
                    let s_ky = f64::from(min_size) / hf;
                    let cx = (j as f64 + 0.5) * step / wf;
                    let cy = (i as f64 + 0.5) * step / hf;
                    out.push([cx as f32, cy as f32, s_kx as f32, s_ky as f32]);
                }
            }
        }
    }
    out
}

/// `decode(loc, priors, variances)`: center-size offsets to corner boxes, in float32 as torch.
pub fn decode(loc: &[f32; 4], prior: &[f32; 4]) -> [f32; 4] {
    let cx = prior[0] + loc[0] * VARIANCE[0] * prior[2];
    let cy = prior[1] + loc[1] * VARIANCE[0] * prior[3];
    let w = prior[2] * (loc[2] * VARIANCE[1]).exp();
    let h = prior[3] * (loc[3] * VARIANCE[1]).exp();
    let x1 = cx - w / 2.0;
    let y1 = cy - h / 2.0;
    [x1, y1, w + x1, h + y1]
}

/// `decode_landm(pre, priors, variances)`: five points.
pub fn decode_landm(pre: &[f32; 10], prior: &[f32; 4]) -> [f32; 10] {
    let mut out = [0f32; 10];
    for k in 0..5 {
        out[2 * k] = prior[0] + pre[2 * k] * VARIANCE[0] * prior[2];
        out[2 * k + 1] = prior[1] + pre[2 * k + 1] * VARIANCE[0] * prior[3];
    }
    out
}

/// `torchvision.ops.nms(boxes, scores, iou_threshold)`: indices kept, by descending score. IoU in
/// float32 without the `+1` pixel convention.
pub fn nms(boxes: &[[f32; 4]], scores: &[f32], iou_threshold: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    // Descending score; ties keep input order (the input is already sorted by the caller).
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let area = |b: &[f32; 4]| (b[2] - b[0]) * (b[3] - b[1]);
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let bi = &boxes[i];
        let ia = area(bi);
        for &j in &order[pos + 1..] {
            if suppressed[j] {
                continue;
            }
            let bj = &boxes[j];
            let w = (bi[2].min(bj[2]) - bi[0].max(bj[0])).max(0.0);
            let h = (bi[3].min(bj[3]) - bi[1].max(bj[1])).max(0.0);
            let inter = w * h;
            let ovr = inter / (ia + area(bj) - inter);
            if ovr > iou_threshold {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// The post-processing of `detect_faces`: decode, scale to pixels, threshold, sort by score
/// (descending; equal scores in descending index order, as numpy's `argsort()[::-1]` gives for small
/// arrays), NMS.
pub fn postprocess(
    raw: &RawDetections,
    priors: &[[f32; 4]],
    width: usize,
    height: usize,
    conf_threshold: f32,
    nms_threshold: f32,
) -> DetectOutcome {
    let (wf, hf) = (width as f32, height as f32);
    let scale = [wf, hf, wf, hf];
    let mut best_score = f32::NEG_INFINITY;
    let mut cand: Vec<Detection> = Vec::new();
    for ((loc, conf), (landm, prior)) in raw.loc.iter().zip(&raw.conf).zip(raw.landms.iter().zip(priors)) {
        let score = conf[1];
        best_score = best_score.max(score);
        // `scores > conf_threshold`: a NaN score is not above it.
        if score <= conf_threshold || score.is_nan() {
            continue;
        }
        let b = decode(loc, prior);
        let l = decode_landm(landm, prior);
        let mut bbox = [0f32; 4];
        for k in 0..4 {
            bbox[k] = b[k] * scale[k];
        }
        let mut landmarks = [0f32; 10];
        for k in 0..10 {
            landmarks[k] = l[k] * if k % 2 == 0 { wf } else { hf };
        }
        cand.push(Detection { bbox, score, landmarks });
    }
    // numpy: argsort ascending (stable for the few candidates there are), reversed.
    let mut idx: Vec<usize> = (0..cand.len()).collect();
    idx.sort_by(|&a, &b| cand[a].score.total_cmp(&cand[b].score));
    idx.reverse();
    let sorted: Vec<Detection> = idx.into_iter().map(|i| cand[i]).collect();
    let boxes: Vec<[f32; 4]> = sorted.iter().map(|d| d.bbox).collect();
    let scores: Vec<f32> = sorted.iter().map(|d| d.score).collect();
    let keep = nms(&boxes, &scores, nms_threshold);
    DetectOutcome {
        faces: keep.into_iter().map(|i| sorted[i]).collect(),
        best_score,
    }
}

/// Orders detections for selection: by box area × score, largest first. The reference takes the
/// first detection by score alone; a larger, clearer face is the better default when several are
/// found, and `--face-index` picks another.
pub fn rank_faces(faces: &[Detection]) -> Vec<Detection> {
    let mut v = faces.to_vec();
    v.sort_by(|a, b| (b.area() * b.score).total_cmp(&(a.area() * a.score)));
    v
}
