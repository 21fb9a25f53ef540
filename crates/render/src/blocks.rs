//! The building blocks of `facerender/modules/util.py`, one struct per module.

use sadtalker_nn::{Activations, BatchNorm, Conv2d, Conv3d, ConvParams, InstanceNorm, Weights};
use sadtalker_ops::Resize;

use crate::Result;

/// `SameBlock2d`: conv → BatchNorm2d → ReLU (or LeakyReLU(0.01) with `lrelu`).
pub struct SameBlock2d {
    conv: Conv2d,
    norm: BatchNorm,
    lrelu: bool,
}

impl SameBlock2d {
    pub fn load(w: &Weights, fin: usize, fout: usize, kernel: usize, padding: usize, lrelu: bool) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::load(
                &w.pp("conv"),
                fin,
                fout,
                [kernel; 2],
                ConvParams::padding(padding),
                true,
            )?,
            norm: BatchNorm::load(&w.pp("norm"), fout, BatchNorm::EPS)?,
            lrelu,
        })
    }

    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let out = self.norm.forward(&self.conv.forward(x)?)?;
        Ok(if self.lrelu { out.leaky_relu(0.01)? } else { out.relu()? })
    }
}

/// `DownBlock2d`: conv 3×3 → BatchNorm2d → ReLU → AvgPool2d(2).
pub struct DownBlock2d {
    conv: Conv2d,
    norm: BatchNorm,
}

impl DownBlock2d {
    pub fn load(w: &Weights, fin: usize, fout: usize) -> Result<Self> {
        Ok(Self {
            conv: Conv2d::load(&w.pp("conv"), fin, fout, [3, 3], ConvParams::padding(1), true)?,
            norm: BatchNorm::load(&w.pp("norm"), fout, BatchNorm::EPS)?,
        })
    }

    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let out = self.norm.forward(&self.conv.forward(x)?)?.relu()?;
        Ok(out.avg_pool([2, 2])?)
    }
}

/// `DownBlock3d`: conv3d 3×3×3 → BatchNorm3d → ReLU → AvgPool3d((1, 2, 2)).
pub struct DownBlock3d {
    conv: Conv3d,
    norm: BatchNorm,
}

impl DownBlock3d {
    pub fn load(w: &Weights, fin: usize, fout: usize) -> Result<Self> {
        Ok(Self {
            conv: Conv3d::load(&w.pp("conv"), fin, fout, [3, 3, 3], ConvParams::padding(1), true)?,
            norm: BatchNorm::load(&w.pp("norm"), fout, BatchNorm::EPS)?,
        })
    }

    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let out = self.norm.forward(&self.conv.forward(x)?)?.relu()?;
        Ok(out.avg_pool([1, 2, 2])?)
    }
}

/// `UpBlock3d`: nearest upsampling by (1, 2, 2) → conv3d 3×3×3 → BatchNorm3d → ReLU.
pub struct UpBlock3d {
    conv: Conv3d,
    norm: BatchNorm,
}

impl UpBlock3d {
    pub fn load(w: &Weights, fin: usize, fout: usize) -> Result<Self> {
        Ok(Self {
            conv: Conv3d::load(&w.pp("conv"), fin, fout, [3, 3, 3], ConvParams::padding(1), true)?,
            norm: BatchNorm::load(&w.pp("norm"), fout, BatchNorm::EPS)?,
        })
    }

    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let up = x.interpolate_nearest(&Resize::Scale(vec![1.0, 2.0, 2.0]))?;
        Ok(self.norm.forward(&self.conv.forward(&up)?)?.relu()?)
    }
}

/// `ResBlock3d`: x + conv(relu(bn(conv(relu(bn(x)))))), 3×3×3 convs.
pub struct ResBlock3d {
    conv1: Conv3d,
    conv2: Conv3d,
    norm1: BatchNorm,
    norm2: BatchNorm,
}

impl ResBlock3d {
    pub fn load(w: &Weights, features: usize) -> Result<Self> {
        let conv = |name: &str| Conv3d::load(&w.pp(name), features, features, [3, 3, 3], ConvParams::padding(1), true);
        let norm = |name: &str| BatchNorm::load(&w.pp(name), features, BatchNorm::EPS);
        Ok(Self {
            conv1: conv("conv1")?,
            conv2: conv("conv2")?,
            norm1: norm("norm1")?,
            norm2: norm("norm2")?,
        })
    }

    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let out = self.conv1.forward(&self.norm1.forward(x)?.relu()?)?;
        let out = self.conv2.forward(&self.norm2.forward(&out)?.relu()?)?;
        Ok(out.add(x)?)
    }
}

/// `Encoder` of the 3-D hourglass: `num_blocks` DownBlock3d; returns every level's output
/// (the input first), as the reference's list.
pub struct Encoder {
    down_blocks: Vec<DownBlock3d>,
}

impl Encoder {
    pub fn load(
        w: &Weights,
        block_expansion: usize,
        in_features: usize,
        num_blocks: usize,
        max_features: usize,
    ) -> Result<Self> {
        let down_blocks = (0..num_blocks)
            .map(|i| {
                let fin = if i == 0 {
                    in_features
                } else {
                    max_features.min(block_expansion << i)
                };
                let fout = max_features.min(block_expansion << (i + 1));
                DownBlock3d::load(&w.pp("down_blocks").pp(i), fin, fout)
            })
            .collect::<Result<_>>()?;
        Ok(Self { down_blocks })
    }

    pub fn forward<T: Activations>(&self, x: &T) -> Result<Vec<T>> {
        let mut outs = vec![x.clone()];
        for block in &self.down_blocks {
            let next = block.forward(outs.last().unwrap_or(x))?;
            outs.push(next);
        }
        Ok(outs)
    }
}

/// `Decoder` of the 3-D hourglass: UpBlock3d per level, each followed by concatenation with
/// the encoder's skip, then conv3d → BatchNorm3d → ReLU.
pub struct Decoder {
    up_blocks: Vec<UpBlock3d>,
    conv: Conv3d,
    norm: BatchNorm,
}

impl Decoder {
    pub fn load(
        w: &Weights,
        block_expansion: usize,
        in_features: usize,
        num_blocks: usize,
        max_features: usize,
    ) -> Result<Self> {
        let up_blocks = (0..num_blocks)
            .rev()
            .enumerate()
            .map(|(k, i)| {
                let fin = if i == num_blocks - 1 { 1 } else { 2 } * max_features.min(block_expansion << (i + 1));
                let fout = max_features.min(block_expansion << i);
                UpBlock3d::load(&w.pp("up_blocks").pp(k), fin, fout)
            })
            .collect::<Result<_>>()?;
        let out_filters = block_expansion + in_features;
        Ok(Self {
            up_blocks,
            conv: Conv3d::load(
                &w.pp("conv"),
                out_filters,
                out_filters,
                [3, 3, 3],
                ConvParams::padding(1),
                true,
            )?,
            norm: BatchNorm::load(&w.pp("norm"), out_filters, BatchNorm::EPS)?,
        })
    }

    pub fn forward<T: Activations>(&self, mut x: Vec<T>) -> Result<T> {
        let missing = || crate::RenderError::Input("hourglass: encoder produced too few levels".into());
        let mut out = x.pop().ok_or_else(missing)?;
        for up in &self.up_blocks {
            out = up.forward(&out)?;
            let skip = x.pop().ok_or_else(missing)?;
            out = T::cat_channels(&[&out, &skip])?;
        }
        Ok(self.norm.forward(&self.conv.forward(&out)?)?.relu()?)
    }
}

/// `Hourglass`: Encoder + Decoder; `out_filters = block_expansion + in_features`.
pub struct Hourglass {
    encoder: Encoder,
    decoder: Decoder,
    pub out_filters: usize,
}

impl Hourglass {
    pub fn load(
        w: &Weights,
        block_expansion: usize,
        in_features: usize,
        num_blocks: usize,
        max_features: usize,
    ) -> Result<Self> {
        Ok(Self {
            encoder: Encoder::load(&w.pp("encoder"), block_expansion, in_features, num_blocks, max_features)?,
            decoder: Decoder::load(&w.pp("decoder"), block_expansion, in_features, num_blocks, max_features)?,
            out_filters: block_expansion + in_features,
        })
    }

    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        self.decoder.forward(self.encoder.forward(x)?)
    }
}

/// `KPHourglass`: 2-D DownBlocks, a 1×1 conv to `reshape_features`, a reshape to 3-D, then
/// 3-D UpBlocks.
pub struct KpHourglass {
    down_blocks: Vec<DownBlock2d>,
    conv: Conv2d,
    up_blocks: Vec<UpBlock3d>,
    reshape_depth: usize,
    pub out_filters: usize,
}

impl KpHourglass {
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        w: &Weights,
        block_expansion: usize,
        in_features: usize,
        reshape_features: usize,
        reshape_depth: usize,
        num_blocks: usize,
        max_features: usize,
    ) -> Result<Self> {
        let down_blocks = (0..num_blocks)
            .map(|i| {
                let fin = if i == 0 {
                    in_features
                } else {
                    max_features.min(block_expansion << i)
                };
                let fout = max_features.min(block_expansion << (i + 1));
                DownBlock2d::load(&w.pp("down_blocks").pp(format!("down{i}")), fin, fout)
            })
            .collect::<Result<_>>()?;
        let in_filters = max_features.min(block_expansion << num_blocks);
        let conv = Conv2d::load(
            &w.pp("conv"),
            in_filters,
            reshape_features,
            [1, 1],
            ConvParams::default(),
            true,
        )?;
        let mut out_filters = 0;
        let up_blocks = (0..num_blocks)
            .map(|i| {
                let fin = max_features.min(block_expansion << (num_blocks - i));
                out_filters = max_features.min(block_expansion << (num_blocks - i - 1));
                UpBlock3d::load(&w.pp("up_blocks").pp(format!("up{i}")), fin, out_filters)
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            down_blocks,
            conv,
            up_blocks,
            reshape_depth,
            out_filters,
        })
    }

    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let mut out = x.clone();
        for b in &self.down_blocks {
            out = b.forward(&out)?;
        }
        out = self.conv.forward(&out)?;
        let &[bs, c, h, w] = out.dims() else {
            return Err(sadtalker_ops::OpError::Shape {
                op: "KPHourglass",
                msg: format!("expected (N, C, H, W), got {:?}", out.dims()),
            }
            .into());
        };
        out = out.reshape(&[bs, c / self.reshape_depth, self.reshape_depth, h, w])?;
        for b in &self.up_blocks {
            out = b.forward(&out)?;
        }
        Ok(out)
    }
}

/// `AntiAliasInterpolation2d`: Gaussian blur (the `weight` buffer, stored in the
/// checkpoint) then subsampling by `1/scale`. The reference pads by `ka`, convolves, and
/// keeps every `1/scale`-th pixel; the kernel size is always odd, so that is exactly a
/// depthwise convolution with padding `ka` and stride `1/scale`, computed here without the
/// discarded pixels.
pub struct AntiAliasInterpolation2d {
    conv: Option<Conv2d>,
}

impl AntiAliasInterpolation2d {
    pub fn load(w: &Weights, channels: usize, scale: f64) -> Result<Self> {
        if scale == 1.0 {
            return Ok(Self { conv: None });
        }
        let sigma = (1.0 / scale - 1.0) / 2.0;
        // Python's round() rounds half to even.
        let kernel_size = 2 * (sigma * 4.0).round_ties_even() as usize + 1;
        let ka = kernel_size / 2;
        let stride = (1.0 / scale) as usize;
        let weight = w.get(&[channels, 1, kernel_size, kernel_size], "weight")?;
        let params = ConvParams::padding(ka).with_stride(stride).with_groups(channels);
        Ok(Self {
            conv: Some(Conv2d::from_tensors(weight, None, params)?),
        })
    }

    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        match &self.conv {
            Some(c) => Ok(c.forward(x)?),
            None => Ok(x.clone()),
        }
    }
}

/// `SPADE`: parameter-free instance norm of `x`, modulated by γ and β predicted from the
/// segmentation map (resized to `x` with nearest): `norm(x) * (1 + γ) + β`.
pub struct Spade {
    param_free_norm: InstanceNorm,
    mlp_shared: Conv2d,
    /// `mlp_gamma` and `mlp_beta` (loaded by those names) as one layer: both read `actv`, so one
    /// call computes γ then β (each channel exactly as its own layer would).
    mlp_gamma_beta: Conv2d,
}

impl Spade {
    const NHIDDEN: usize = 128;

    pub fn load(w: &Weights, norm_nc: usize, label_nc: usize) -> Result<Self> {
        let p = ConvParams::padding(1);
        let nh = Self::NHIDDEN;
        Ok(Self {
            param_free_norm: InstanceNorm::load(w, norm_nc, 1e-5, false)?,
            mlp_shared: Conv2d::load(&w.pp("mlp_shared").pp(0), label_nc, nh, [3, 3], p, true)?,
            mlp_gamma_beta: Conv2d::concat_out(&[
                &Conv2d::load(&w.pp("mlp_gamma"), nh, norm_nc, [3, 3], p, true)?,
                &Conv2d::load(&w.pp("mlp_beta"), nh, norm_nc, [3, 3], p, true)?,
            ])?,
        })
    }

    pub fn forward<T: Activations>(&self, x: &T, segmap: &T) -> Result<T> {
        let &[_, _, h, w] = x.dims() else {
            return Err(sadtalker_ops::OpError::Shape {
                op: "SPADE",
                msg: format!("expected (N, C, H, W), got {:?}", x.dims()),
            }
            .into());
        };
        let segmap = segmap.interpolate_nearest(&Resize::Size(vec![h, w]))?;
        let actv = self.mlp_shared.forward(&segmap)?.relu()?;
        // normalized * (1 + gamma) + beta, fused.
        let gamma_beta = self.mlp_gamma_beta.forward(&actv)?;
        Ok(self.param_free_norm.forward_modulated(x, &gamma_beta)?)
    }
}

/// `SPADEResnetBlock` with `norm_G = 'spadespectralinstance'`: spectral-normalised convs,
/// SPADE norms, LeakyReLU(0.2), and a learned 1×1 shortcut when `fin != fout`.
pub struct SpadeResnetBlock {
    conv_0: Conv2d,
    conv_1: Conv2d,
    conv_s: Option<Conv2d>,
    norm_0: Spade,
    norm_1: Spade,
    norm_s: Option<Spade>,
}

impl SpadeResnetBlock {
    pub fn load(w: &Weights, fin: usize, fout: usize, label_nc: usize) -> Result<Self> {
        let learned_shortcut = fin != fout;
        let fmiddle = fin.min(fout);
        let p = ConvParams::padding(1);
        Ok(Self {
            conv_0: Conv2d::load_spectral(&w.pp("conv_0"), fin, fmiddle, [3, 3], p, true)?,
            conv_1: Conv2d::load_spectral(&w.pp("conv_1"), fmiddle, fout, [3, 3], p, true)?,
            conv_s: learned_shortcut
                .then(|| Conv2d::load_spectral(&w.pp("conv_s"), fin, fout, [1, 1], ConvParams::default(), false))
                .transpose()?,
            norm_0: Spade::load(&w.pp("norm_0"), fin, label_nc)?,
            norm_1: Spade::load(&w.pp("norm_1"), fmiddle, label_nc)?,
            norm_s: learned_shortcut
                .then(|| Spade::load(&w.pp("norm_s"), fin, label_nc))
                .transpose()?,
        })
    }

    pub fn forward<T: Activations>(&self, x: &T, seg: &T) -> Result<T> {
        let x_s = match (&self.conv_s, &self.norm_s) {
            (Some(conv), Some(norm)) => conv.forward(&norm.forward(x, seg)?)?,
            _ => x.clone(),
        };
        let dx = self.conv_0.forward(&self.norm_0.forward(x, seg)?.leaky_relu(0.2)?)?;
        let dx = self.conv_1.forward(&self.norm_1.forward(&dx, seg)?.leaky_relu(0.2)?)?;
        Ok(x_s.add(&dx)?)
    }
}
