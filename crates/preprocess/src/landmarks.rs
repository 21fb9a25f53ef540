//! Facial landmarks: facexlib's AWing `FAN` (`alignment/awing_arch.py`, copied by the reference as
//! `face3d/util/my_awing_arch.py`; `alignment_WFLW_4HG.pth`: 4 stacked hourglasses, 98 WFLW points +
//! a boundary map), its `get_landmarks` / `calculate_points`, and facexlib's `landmark_98_to_68`.
//!
//! Module and parameter names mirror the PyTorch ones (`conv1.conv`, `m0.coordconv.conv`, `m0.b1_4`,
//! `top_m_0`, `conv_last0`, `bn_end0`, `l0`, `bl0`, `al0`, ...), so the official file's `state_dict`
//! loads unchanged.

use candle_core::{Device, Tensor};
use image::RgbImage;
use sadtalker_gpu::{GpuTensor, context};
use sadtalker_nn::{Activations, BatchNorm, Conv2d, ConvParams, Param, Weights};
use sadtalker_ops::Resize;

use crate::imgproc::cv_resize_linear;
use crate::recon::image_to_tensor;
use crate::{PreprocessError, Result};

/// 68 facial landmarks `(x, y)` in pixels, in the iBUG 300-W order (jaw 0–16, brows 17–26, nose
/// 27–35, eyes 36–47, mouth 48–67), float32 as the reference keeps them.
#[derive(Clone, Debug, PartialEq)]
pub struct Landmarks68(pub [[f32; 2]; 68]);

impl Landmarks68 {
    /// From 68 `(x, y)` pairs.
    pub fn from_points(points: &[[f32; 2]]) -> Result<Self> {
        let arr: [[f32; 2]; 68] = points
            .try_into()
            .map_err(|_| PreprocessError::Landmarks(format!("expected 68 points (x, y), got {}", points.len())))?;
        if arr.iter().flatten().any(|v| !v.is_finite()) {
            return Err(PreprocessError::Landmarks(
                "a landmark coordinate is not a finite number".into(),
            ));
        }
        Ok(Landmarks68(arr))
    }

    /// Parses the reference's landmark text (`np.savetxt` of the 68 × 2 array flattened: 136
    /// numbers, whitespace or comma separated), or 68 lines of `x y`.
    pub fn parse(text: &str) -> Result<Self> {
        let values: Vec<f32> = text
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|t| !t.is_empty())
            .map(|t| {
                t.parse::<f64>()
                    .map(|v| v as f32)
                    .map_err(|_| PreprocessError::Landmarks(format!("`{t}` is not a number")))
            })
            .collect::<Result<_>>()?;
        if values.len() != 136 {
            return Err(PreprocessError::Landmarks(format!(
                "expected 136 numbers (68 points × (x, y)), found {}",
                values.len()
            )));
        }
        let pts: Vec<[f32; 2]> = values.chunks_exact(2).map(|c| [c[0], c[1]]).collect();
        Self::from_points(&pts)
    }

    /// The landmarks as text, one `x y` pair per line (readable by [`Landmarks68::parse`] and numpy).
    pub fn to_text(&self) -> String {
        self.0.iter().map(|p| format!("{:.6} {:.6}\n", p[0], p[1])).collect()
    }

    /// The reference's "no face" marker: every value -1 (its `np.mean(lm) == -1` test).
    pub fn is_missing(&self) -> bool {
        let sum: f64 = self.0.iter().flatten().map(|&v| f64::from(v)).sum();
        sum / 136.0 == -1.0
    }
}

/// facexlib's `landmark_98_to_68`: WFLW's 98 points to the 68-point layout (jaw every other point,
/// brows as midpoints of WFLW's upper and lower brow contours, six eye points of eight).
pub fn landmark_98_to_68(lm98: &[[f64; 2]; 98]) -> Landmarks68 {
    let mut out = [[0f32; 2]; 68];
    let to32 = |p: [f64; 2]| [p[0] as f32, p[1] as f32];
    let mid = |a: usize, b: usize| to32([(lm98[a][0] + lm98[b][0]) / 2.0, (lm98[a][1] + lm98[b][1]) / 2.0]);
    for i in (0..33).step_by(2) {
        out[i / 2] = to32(lm98[i]);
    }
    for i in 51..60 {
        out[i - 24] = to32(lm98[i]);
    }
    for i in 76..96 {
        out[i - 28] = to32(lm98[i]);
    }
    out[17] = to32(lm98[33]);
    for (k, (a, b)) in [
        (34, 41),
        (35, 40),
        (36, 39),
        (37, 38),
        (42, 50),
        (43, 49),
        (44, 48),
        (45, 47),
    ]
    .into_iter()
    .enumerate()
    {
        out[18 + k] = mid(a, b);
    }
    out[26] = to32(lm98[46]);
    for (dst, src) in (36..42).zip([60, 61, 63, 64, 65, 67]) {
        out[dst] = to32(lm98[src]);
    }
    for (dst, src) in (42..48).zip([68, 69, 71, 72, 73, 75]) {
        out[dst] = to32(lm98[src]);
    }
    Landmarks68(out)
}

/// `calculate_points`: heatmaps `(N, H·W)` (N landmarks, H = W = 64) to points in heatmap pixels:
/// the argmax, moved a quarter pixel towards the larger neighbour on each axis, plus one half.
///
/// Mirrors the reference's quirks exactly: neighbours are read in the flattened map (so the right
/// neighbour of the last column is the next row's first pixel); the left neighbour of index 0 wraps to
/// the last pixel (numpy's index -1); and if *any* landmark's argmax lies in the last row (or the
/// first row, or at index W), *every* landmark uses the map's last (first) pixel as its lower (upper)
/// neighbour. Where the reference raises (an argmax at the very last pixel) the right neighbour wraps
/// to index 0.
pub fn calculate_points(heatmaps: &[f32], n: usize, h: usize, w: usize) -> Vec<[f64; 2]> {
    let hw = h * w;
    let rows: Vec<&[f32]> = heatmaps.chunks_exact(hw).take(n).collect();
    let idx: Vec<usize> = rows
        .iter()
        .map(|r| {
            // numpy's argmax: the first maximum.
            let mut best = 0;
            for (i, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = i;
                }
            }
            best
        })
        .collect();
    let any_bottom = idx.iter().any(|&i| i + w >= 4096);
    let any_top = idx.iter().any(|&i| i as i64 - w as i64 <= 0);
    rows.iter()
        .zip(&idx)
        .map(|(r, &i)| {
            let x_up = r[(i + 1) % hw];
            let x_down = r[(i + hw - 1) % hw];
            let y_up = if any_bottom { r[4095.min(hw - 1)] } else { r[i + w] };
            let y_down = if any_top { r[0] } else { r[i - w] };
            let sign = |v: f32| {
                if v > 0.0 {
                    1.0f32
                } else if v < 0.0 {
                    -1.0
                } else {
                    0.0
                }
            };
            let dx = sign(x_up - x_down) * 0.25;
            let dy = sign(y_up - y_down) * 0.25;
            [
                (i % w) as f64 + f64::from(dx) + 0.5,
                (i / w) as f64 + f64::from(dy) + 0.5,
            ]
        })
        .collect()
}

/// `AddCoordsTh` + the convolution of `CoordConvTh` (with `with_r=True`).
#[derive(Debug)]
struct CoordConv {
    conv: Conv2d,
    dim: usize,
    with_boundary: bool,
    /// `xx`, `yy`, `rr` channels, `(1, 3, dim, dim)`, computed once (and uploaded once).
    coords: Param,
}

impl CoordConv {
    #[allow(clippy::too_many_arguments, reason = "mirrors CoordConvTh's constructor arguments")]
    fn load(
        w: &Weights,
        dim: usize,
        with_boundary: bool,
        first_one: bool,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        params: ConvParams<2>,
    ) -> Result<Self> {
        let extra = 3 + if with_boundary && !first_one { 2 } else { 0 };
        let conv = Conv2d::load(
            &w.pp("conv"),
            in_channels + extra,
            out_channels,
            [kernel, kernel],
            params,
            true,
        )?;
        // xx varies along rows (dim 2), yy along columns (dim 3): the reference's permute(0, 3, 2, 1).
        let d1 = (dim - 1) as f32;
        let mut xx = vec![0f32; dim * dim];
        let mut yy = vec![0f32; dim * dim];
        for a in 0..dim {
            for b in 0..dim {
                xx[a * dim + b] = a as f32 / d1 * 2.0 - 1.0;
                yy[a * dim + b] = b as f32 / d1 * 2.0 - 1.0;
            }
        }
        let r: Vec<f32> = xx.iter().zip(&yy).map(|(x, y)| (x * x + y * y).sqrt()).collect();
        let rmax = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let rr: Vec<f32> = r.iter().map(|v| v / rmax).collect();
        let data: Vec<f32> = xx.into_iter().chain(yy).chain(rr).collect();
        let coords = Tensor::from_vec(data, (1, 3, dim, dim), w.device())?;
        Ok(Self {
            conv,
            dim,
            with_boundary,
            coords: Param::new(coords),
        })
    }

    fn forward<T: Activations>(&self, x: &T, heatmap: Option<&T>) -> Result<T> {
        let &[b, _, h, w] = x.dims() else {
            return Err(PreprocessError::Internal(format!(
                "CoordConv expects (N, C, H, W), got {:?}",
                x.dims()
            )));
        };
        if (h, w) != (self.dim, self.dim) {
            return Err(PreprocessError::Internal(format!(
                "CoordConv expects {0}×{0} input, got {h}×{w}",
                self.dim
            )));
        }
        let coords = match b {
            1 => self.coords.on(x)?,
            _ => T::lift(x, &self.coords.value().repeat((b, 1, 1, 1))?)?,
        };
        let mut parts = vec![x.clone(), coords.clone()];
        if let (true, Some(hm)) = (self.with_boundary, heatmap) {
            let c = hm.dims()[1];
            // `where(clamp(hm[:, -1:], 0, 1) > 0.05, xx | yy, 0)`: the clamp cannot change the
            // comparison, and xx, yy times a 0/1 mask are xx, yy or zero.
            let mask = hm.narrow(1, c - 1, 1)?.greater(0.05)?;
            parts.push(coords.narrow(1, 0, 2)?.mul_one_channel(&mask)?);
        }
        Ok(T::cat_channels(&parts.iter().collect::<Vec<_>>())?.conv(&self.conv)?)
    }
}

/// `ConvBlock(in_planes, out_planes)`: pre-activation 3 × 3 convolutions to out/2, out/4, out/4,
/// concatenated, plus the (projected) input.
#[derive(Debug)]
struct ConvBlock {
    bn1: BatchNorm,
    conv1: Conv2d,
    bn2: BatchNorm,
    conv2: Conv2d,
    bn3: BatchNorm,
    conv3: Conv2d,
    downsample: Option<(BatchNorm, Conv2d)>,
}

impl ConvBlock {
    fn load(w: &Weights, in_planes: usize, out_planes: usize) -> Result<Self> {
        let (half, quarter) = (out_planes / 2, out_planes / 4);
        let c3 = ConvParams::padding(1);
        let downsample = if in_planes != out_planes {
            let d = w.pp("downsample");
            Some((
                BatchNorm::load(&d.pp("0"), in_planes, BatchNorm::EPS)?,
                Conv2d::load(&d.pp("2"), in_planes, out_planes, [1, 1], ConvParams::default(), false)?,
            ))
        } else {
            None
        };
        Ok(Self {
            bn1: BatchNorm::load(&w.pp("bn1"), in_planes, BatchNorm::EPS)?,
            conv1: Conv2d::load(&w.pp("conv1"), in_planes, half, [3, 3], c3, false)?,
            bn2: BatchNorm::load(&w.pp("bn2"), half, BatchNorm::EPS)?,
            conv2: Conv2d::load(&w.pp("conv2"), half, quarter, [3, 3], c3, false)?,
            bn3: BatchNorm::load(&w.pp("bn3"), quarter, BatchNorm::EPS)?,
            conv3: Conv2d::load(&w.pp("conv3"), quarter, quarter, [3, 3], c3, false)?,
            downsample,
        })
    }

    fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let out1 = self.bn1.forward(x)?.relu()?.conv(&self.conv1)?;
        let out2 = self.bn2.forward(&out1)?.relu()?.conv(&self.conv2)?;
        let out3 = self.bn3.forward(&out2)?.relu()?.conv(&self.conv3)?;
        let cat = T::cat_channels(&[&out1, &out2, &out3])?;
        let residual = match &self.downsample {
            Some((bn, conv)) => bn.forward(x)?.relu()?.conv(conv)?,
            None => x.clone(),
        };
        Ok(cat.add(&residual)?)
    }
}

/// `HourGlass(1, depth, 256, first_one)` with its `CoordConvTh` in front.
#[derive(Debug)]
struct HourGlass {
    coordconv: CoordConv,
    depth: usize,
    /// `b1_L`, `b2_L`, `b3_L` for L = depth..1, at index `L - 1`.
    b1: Vec<ConvBlock>,
    b2: Vec<ConvBlock>,
    b3: Vec<ConvBlock>,
    b2_plus_1: ConvBlock,
}

impl HourGlass {
    fn load(w: &Weights, depth: usize, first_one: bool) -> Result<Self> {
        let coordconv = CoordConv::load(
            &w.pp("coordconv"),
            64,
            true,
            first_one,
            256,
            256,
            1,
            ConvParams::default(),
        )?;
        let block = |name: String| ConvBlock::load(&w.pp(name), 256, 256);
        let mut b1 = Vec::with_capacity(depth);
        let mut b2 = Vec::with_capacity(depth);
        let mut b3 = Vec::with_capacity(depth);
        for level in 1..=depth {
            b1.push(block(format!("b1_{level}"))?);
            b2.push(block(format!("b2_{level}"))?);
            b3.push(block(format!("b3_{level}"))?);
        }
        Ok(Self {
            coordconv,
            depth,
            b1,
            b2,
            b3,
            b2_plus_1: block("b2_plus_1".into())?,
        })
    }

    fn forward_level<T: Activations>(&self, level: usize, inp: &T) -> Result<T> {
        let up1 = self.b1[level - 1].forward(inp)?;
        let low1 = inp.avg_pool([2, 2])?;
        let low1 = self.b2[level - 1].forward(&low1)?;
        let low2 = if level > 1 {
            self.forward_level(level - 1, &low1)?
        } else {
            self.b2_plus_1.forward(&low1)?
        };
        let low3 = self.b3[level - 1].forward(&low2)?;
        let up2 = low3.interpolate_nearest(&Resize::Scale(vec![2.0, 2.0]))?;
        Ok(up1.add(&up2)?)
    }

    fn forward<T: Activations>(&self, x: &T, heatmap: Option<&T>) -> Result<T> {
        let x = self.coordconv.forward(x, heatmap)?;
        self.forward_level(self.depth, &x)
    }
}

/// One stack of the FAN after its hourglass.
#[derive(Debug)]
struct Stack {
    hourglass: HourGlass,
    top_m: ConvBlock,
    conv_last: Conv2d,
    bn_end: BatchNorm,
    l: Conv2d,
    /// `bl{i}`, `al{i}`: feed the stack's features and heatmaps to the next one (all but the last).
    next: Option<(Conv2d, Conv2d)>,
}

/// facexlib's `FAN(num_modules=4, num_landmarks=98)` (AWing, WFLW).
#[derive(Debug)]
pub struct Fan {
    conv1: CoordConv,
    bn1: BatchNorm,
    conv2: ConvBlock,
    conv3: ConvBlock,
    conv4: ConvBlock,
    stacks: Vec<Stack>,
    num_landmarks: usize,
}

/// The file `alignment_WFLW_4HG.pth` holds `{'state_dict': ...}`.
const STATE_DICT_PREFIXES: [&str; 3] = ["state_dict", "state_dict.module", "module"];

impl Fan {
    /// Input side the network is built for (its coordinate channels are fixed to it).
    pub const INPUT_SIZE: u32 = 256;
    /// Number of stacked hourglasses in `alignment_WFLW_4HG.pth`.
    pub const NUM_MODULES: usize = 4;
    /// WFLW landmarks.
    pub const NUM_LANDMARKS: usize = 98;

    /// Loads the network from `w`, scoped at the FAN module (holding `conv1.conv.weight`, ...).
    pub fn load(w: &Weights, num_modules: usize, num_landmarks: usize) -> Result<Self> {
        let c3 = ConvParams::padding(3).with_stride(2);
        let conv1 = CoordConv::load(&w.pp("conv1"), 256, false, false, 3, 64, 7, c3)?;
        let one = ConvParams::default();
        let stacks = (0..num_modules)
            .map(|i| {
                let next = if i + 1 < num_modules {
                    Some((
                        Conv2d::load(&w.pp(format!("bl{i}")), 256, 256, [1, 1], one, true)?,
                        Conv2d::load(&w.pp(format!("al{i}")), num_landmarks + 1, 256, [1, 1], one, true)?,
                    ))
                } else {
                    None
                };
                Ok(Stack {
                    hourglass: HourGlass::load(&w.pp(format!("m{i}")), 4, i == 0)?,
                    top_m: ConvBlock::load(&w.pp(format!("top_m_{i}")), 256, 256)?,
                    conv_last: Conv2d::load(&w.pp(format!("conv_last{i}")), 256, 256, [1, 1], one, true)?,
                    bn_end: BatchNorm::load(&w.pp(format!("bn_end{i}")), 256, BatchNorm::EPS)?,
                    l: Conv2d::load(&w.pp(format!("l{i}")), 256, num_landmarks + 1, [1, 1], one, true)?,
                    next,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            conv1,
            bn1: BatchNorm::load(&w.pp("bn1"), 64, BatchNorm::EPS)?,
            conv2: ConvBlock::load(&w.pp("conv2"), 64, 128)?,
            conv3: ConvBlock::load(&w.pp("conv3"), 128, 128)?,
            conv4: ConvBlock::load(&w.pp("conv4"), 128, 256)?,
            stacks,
            num_landmarks,
        })
    }

    /// Loads the 4-stack, 98-landmark network from `alignment_WFLW_4HG.pth`'s weights
    /// (`state_dict.*`), or from weights already scoped at the module.
    pub fn load_from_checkpoint(root: &Weights) -> Result<Self> {
        let scoped = STATE_DICT_PREFIXES
            .iter()
            .find(|p| root.contains(&format!("{p}.conv1.conv.weight")))
            .map_or_else(|| root.clone(), |p| root.pp(p));
        Self::load(&scoped, Self::NUM_MODULES, Self::NUM_LANDMARKS)
    }

    /// `FAN.forward`: `(N, 3, 256, 256)` → the heatmaps of every stack, `(N, L + 1, 64, 64)` each,
    /// on the device `x` is on.
    pub fn forward<T: Activations>(&self, x: &T) -> Result<Vec<T>> {
        let x = self.conv1.forward(x, None)?;
        let x = self.bn1.forward(&x)?.relu()?;
        let x = self.conv2.forward(&x)?.avg_pool([2, 2])?;
        let x = self.conv3.forward(&x)?;
        let mut previous = self.conv4.forward(&x)?;
        let mut outputs: Vec<T> = Vec::with_capacity(self.stacks.len());
        for s in &self.stacks {
            let hg = s.hourglass.forward(&previous, outputs.last())?;
            let ll = s.top_m.forward(&hg)?;
            let ll = s.bn_end.forward(&ll.conv(&s.conv_last)?)?.relu()?;
            let tmp_out = ll.conv(&s.l)?;
            if let Some((bl, al)) = &s.next {
                previous = previous.add(&ll.conv(bl)?)?.add(&tmp_out.conv(al)?)?;
            }
            outputs.push(tmp_out);
        }
        Ok(outputs)
    }

    /// The last stack's landmark heatmaps `(N, L, 64, 64)` (its boundary map left out), on the
    /// thread's GPU when one is set: the image goes up, the last stack's output comes back.
    fn landmark_heatmaps(&self, x: &Tensor) -> Result<Tensor> {
        fn last<T>(outputs: Vec<T>) -> Result<T> {
            outputs
                .into_iter()
                .next_back()
                .ok_or_else(|| PreprocessError::Internal("FAN has no stacks".into()))
        }
        let heat = match context::current() {
            Some(dev) => last(self.forward(&GpuTensor::from_tensor(&dev, x)?)?)?.to_host()?,
            None => last(self.forward(x)?)?,
        };
        Ok(heat.narrow(1, 0, self.num_landmarks)?)
    }

    /// `FAN.get_landmarks(img)` on a face crop (RGB): resized to 256 × 256 with `cv2.resize`,
    /// channels reversed (the reference feeds BGR), `/ 255`; returns the 98 points in the crop's pixels
    /// (float64, as the reference's `calculate_points`) and the last stack's landmark heatmaps.
    pub fn get_landmarks(&self, crop: &RgbImage, device: &Device) -> Result<([[f64; 2]; 98], Tensor)> {
        if self.num_landmarks != 98 {
            return Err(PreprocessError::Internal(
                "get_landmarks needs the 98-landmark FAN".into(),
            ));
        }
        let (w, h) = (f64::from(crop.width()), f64::from(crop.height()));
        let resized = cv_resize_linear(crop, Self::INPUT_SIZE, Self::INPUT_SIZE);
        let x = image_to_tensor(&resized, device, |v| f32::from(v) / 255.0)?;
        // RGB → BGR (`img[..., ::-1]`).
        let x = Tensor::cat(&[x.narrow(1, 2, 1)?, x.narrow(1, 1, 1)?, x.narrow(1, 0, 1)?], 1)?;
        let heat = self.landmark_heatmaps(&x)?;
        let (_, n, hh, ww) = heat.dims4()?;
        let values = heat.flatten_all()?.to_vec1::<f32>()?;
        let pts = calculate_points(&values, n, hh, ww);
        let mut out = [[0f64; 2]; 98];
        for (o, p) in out.iter_mut().zip(pts) {
            *o = [p[0] * (w / 64.0), p[1] * (h / 64.0)];
        }
        Ok((out, heat))
    }
}
