//! gfpgan's `archs/stylegan2_clean_arch.py`: the StyleGAN2 generator without custom CUDA ops
//! (`ModulatedConv2d`, `StyleConv`, `ToRGB`, `ConstantInput`, `StyleGAN2GeneratorClean`).
//!
//! GFPGAN runs the generator with `input_is_latent=True`, so the style MLP (`style_mlp.*`, `NormStyleCode`)
//! never runs and is not loaded; nor are the stored `noises.noise*` buffers, which only serve
//! `randomize_noise=False` (GFPGANer draws fresh noise for every face).

use candle_core::{D, Tensor};
use sadtalker_nn::{Activations, ConvParams, Linear, Param, Weights};
use sadtalker_ops::Resize;

use crate::Result;

/// `F.interpolate(x, scale_factor=s, mode='bilinear', align_corners=False)`.
pub(crate) fn bilinear<T: Activations>(x: &T, scale: f64) -> Result<T> {
    Ok(x.interpolate_bilinear(&Resize::Scale(vec![scale, scale]), false)?)
}

/// Up- or downsampling before a modulated convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SampleMode {
    /// `sample_mode=None`.
    None,
    /// `'upsample'`: bilinear ×2 first.
    Upsample,
    /// `'downsample'`: bilinear ×0.5 first.
    Downsample,
}

/// `ModulatedConv2d`: a convolution whose weight is scaled per input channel by an affine map of the
/// style, optionally demodulated (each output filter normalised to unit norm), without bias.
#[derive(Debug)]
pub struct ModulatedConv2d {
    demodulate: bool,
    sample_mode: SampleMode,
    eps: f64,
    modulation: Linear,
    /// The fixed convolution with the parameter's `(1, out, in, k, k)` weight without its leading 1
    /// (see [`ModulatedConv2d::forward`]); a layer, so it runs on the thread's device.
    conv: sadtalker_nn::Conv2d,
    /// `(out, in)`: `Σ_k weight²`, so that the demodulation is one small matrix product.
    weight_energy: Tensor,
}

impl ModulatedConv2d {
    /// `ModulatedConv2d(in_channels, out_channels, kernel_size, num_style_feat, demodulate, sample_mode)`.
    pub fn load(
        w: &Weights,
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        num_style_feat: usize,
        demodulate: bool,
        sample_mode: SampleMode,
    ) -> Result<Self> {
        let weight = w
            .get(&[1, out_channels, in_channels, kernel_size, kernel_size], "weight")?
            .squeeze(0)?;
        let weight_energy = weight.sqr()?.sum(D::Minus1)?.sum(D::Minus1)?;
        Ok(Self {
            demodulate,
            sample_mode,
            eps: 1e-8,
            modulation: Linear::load(&w.pp("modulation"), num_style_feat, in_channels, true)?,
            conv: sadtalker_nn::Conv2d::from_tensors(weight, None, ConvParams::<2>::padding(kernel_size / 2))?,
            weight_energy,
        })
    }

    /// `forward(x, style)`: `x` `(b, in, h, w)`, `style` `(b, num_style_feat)`.
    pub fn forward<T: Activations>(&self, x: &T, style: &Tensor) -> Result<T> {
        let style = self.modulation.forward(style)?;
        let x = match self.sample_mode {
            SampleMode::None => x.clone(),
            SampleMode::Upsample => bilinear(x, 2.0)?,
            SampleMode::Downsample => bilinear(x, 0.5)?,
        };
        // The reference scales the weight by the style (and demodulates it) and convolves with that per
        // sample. Scaling the input's channels by the style, convolving with the fixed weight and scaling
        // the output's channels by the demodulation is the same sum in another order (equal to float
        // rounding), and lets the convolution keep its fast layouts (Winograd) from call to call instead
        // of rebuilding them for a new weight every time. The style vectors are a few hundred numbers a
        // sample: the host makes the scales, the device (where `x` is) applies them.
        let out = self.conv.forward(&x.scale_channels(&T::lift(&x, &style)?)?)?;
        if !self.demodulate {
            return Ok(out);
        }
        // demod[b, o] = 1 / sqrt(Σ_i s[b, i]² Σ_k w[o, i, k]² + eps).
        let energy = style.sqr()?.matmul(&self.weight_energy.t()?)?;
        let demod = (energy + self.eps)?.sqrt()?.recip()?;
        Ok(out.scale_channels(&T::lift(&out, &demod)?)?)
    }
}

/// Where `StyleConv` gets its noise.
pub trait NoiseSource {
    /// The noise for style layer `layer` (0 = `style_conv1`, then the `style_convs` in order): a
    /// `(1, 1, h, w)` tensor, or `(b, 1, h, w)` for a batch of `b`.
    fn noise(&mut self, layer: usize, batch: usize, height: usize, width: usize) -> Result<Tensor>;
}

/// `StyleConv`: modulated convolution, `× √2`, noise injection (`weight · noise`), bias, LeakyReLU(0.2).
#[derive(Debug)]
pub struct StyleConv {
    modulated_conv: ModulatedConv2d,
    /// The noise strength, `(1,)`.
    weight: Tensor,
    /// `(1, out, 1, 1)`, kept as `(out)`.
    bias: Param,
}

impl StyleConv {
    /// `StyleConv(in_channels, out_channels, kernel_size, num_style_feat, demodulate, sample_mode)`.
    pub fn load(
        w: &Weights,
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        num_style_feat: usize,
        sample_mode: SampleMode,
    ) -> Result<Self> {
        Ok(Self {
            modulated_conv: ModulatedConv2d::load(
                &w.pp("modulated_conv"),
                in_channels,
                out_channels,
                kernel_size,
                num_style_feat,
                true,
                sample_mode,
            )?,
            weight: w.get(&[1], "weight")?,
            bias: Param::new(w.get(&[1, out_channels, 1, 1], "bias")?.flatten_all()?),
        })
    }

    /// `forward(x, style, noise)`.
    pub fn forward<T: Activations>(&self, x: &T, style: &Tensor, noise: &Tensor) -> Result<T> {
        let out = self.modulated_conv.forward(x, style)?.scale(std::f32::consts::SQRT_2)?;
        let out = out.add_one_channel(&T::lift(&out, &noise.broadcast_mul(&self.weight)?)?)?;
        let out = out.shift_channels(&self.bias.on(&out)?)?;
        Ok(out.leaky_relu(0.2)?)
    }
}

/// `ToRGB`: a 1×1 modulated convolution to 3 channels (no demodulation) plus bias, added to the
/// bilinearly upsampled previous RGB.
#[derive(Debug)]
pub struct ToRGB {
    upsample: bool,
    modulated_conv: ModulatedConv2d,
    /// `(1, 3, 1, 1)`, kept as `(3)`.
    bias: Param,
}

impl ToRGB {
    /// `ToRGB(in_channels, num_style_feat, upsample)`.
    pub fn load(w: &Weights, in_channels: usize, num_style_feat: usize, upsample: bool) -> Result<Self> {
        Ok(Self {
            upsample,
            modulated_conv: ModulatedConv2d::load(
                &w.pp("modulated_conv"),
                in_channels,
                3,
                1,
                num_style_feat,
                false,
                SampleMode::None,
            )?,
            bias: Param::new(w.get(&[1, 3, 1, 1], "bias")?.flatten_all()?),
        })
    }

    /// `forward(x, style, skip)`.
    pub fn forward<T: Activations>(&self, x: &T, style: &Tensor, skip: Option<&T>) -> Result<T> {
        let out = self.modulated_conv.forward(x, style)?;
        let out = out.shift_channels(&self.bias.on(&out)?)?;
        Ok(match skip {
            Some(skip) => {
                let skip = if self.upsample {
                    bilinear(skip, 2.0)?
                } else {
                    skip.clone()
                };
                out.add(&skip)?
            }
            None => out,
        })
    }
}

/// `ConstantInput`: the learned `(1, c, 4, 4)` start of the generator.
#[derive(Debug)]
pub struct ConstantInput {
    weight: Tensor,
}

impl ConstantInput {
    /// `ConstantInput(num_channel, size)`.
    pub fn load(w: &Weights, num_channel: usize, size: usize) -> Result<Self> {
        Ok(Self {
            weight: w.get(&[1, num_channel, size, size], "weight")?,
        })
    }

    /// `forward(batch)`.
    pub fn forward(&self, batch: usize) -> Result<Tensor> {
        Ok(self.weight.repeat((batch, 1, 1, 1))?)
    }
}

/// StyleGAN2's channel table: `int(c * narrow)` per resolution (`channels` in the reference).
pub fn channels(resolution: usize, channel_multiplier: usize, narrow: f64) -> usize {
    let base = match resolution {
        4 | 8 | 16 | 32 => 512.0,
        64 => 256.0 * channel_multiplier as f64,
        128 => 128.0 * channel_multiplier as f64,
        256 => 64.0 * channel_multiplier as f64,
        512 => 32.0 * channel_multiplier as f64,
        _ => 16.0 * channel_multiplier as f64,
    };
    // Python's int() truncates.
    (base * narrow) as usize
}

/// `StyleGAN2GeneratorClean` without its style MLP (see the module docs): constant input, `style_conv1`,
/// `to_rgb1`, then per resolution 8 … `out_size` an upsampling and a plain `StyleConv` and a `ToRGB`.
#[derive(Debug)]
pub struct StyleGAN2GeneratorClean {
    pub(crate) constant_input: ConstantInput,
    pub(crate) style_conv1: StyleConv,
    pub(crate) to_rgb1: ToRGB,
    pub(crate) style_convs: Vec<StyleConv>,
    pub(crate) to_rgbs: Vec<ToRGB>,
    /// `int(log2(out_size))`.
    pub log_size: usize,
    /// `(log_size - 2) * 2 + 1` noise layers.
    pub num_layers: usize,
    /// `log_size * 2 - 2` latents.
    pub num_latent: usize,
}

impl StyleGAN2GeneratorClean {
    /// `StyleGAN2GeneratorClean(out_size, num_style_feat, num_mlp, channel_multiplier, narrow)`.
    pub fn load(
        w: &Weights,
        out_size: usize,
        num_style_feat: usize,
        channel_multiplier: usize,
        narrow: f64,
    ) -> Result<Self> {
        let ch = |r: usize| channels(r, channel_multiplier, narrow);
        let log_size = out_size.ilog2() as usize;
        let mut style_convs = Vec::new();
        let mut to_rgbs = Vec::new();
        let mut in_channels = ch(4);
        for (j, i) in (3..=log_size).enumerate() {
            let out_channels = ch(1 << i);
            style_convs.push(StyleConv::load(
                &w.pp("style_convs").pp(2 * j),
                in_channels,
                out_channels,
                3,
                num_style_feat,
                SampleMode::Upsample,
            )?);
            style_convs.push(StyleConv::load(
                &w.pp("style_convs").pp(2 * j + 1),
                out_channels,
                out_channels,
                3,
                num_style_feat,
                SampleMode::None,
            )?);
            to_rgbs.push(ToRGB::load(&w.pp("to_rgbs").pp(j), out_channels, num_style_feat, true)?);
            in_channels = out_channels;
        }
        Ok(Self {
            constant_input: ConstantInput::load(&w.pp("constant_input"), ch(4), 4)?,
            style_conv1: StyleConv::load(&w.pp("style_conv1"), ch(4), ch(4), 3, num_style_feat, SampleMode::None)?,
            to_rgb1: ToRGB::load(&w.pp("to_rgb1"), ch(4), num_style_feat, false)?,
            style_convs,
            to_rgbs,
            log_size,
            num_layers: (log_size - 2) * 2 + 1,
            num_latent: log_size * 2 - 2,
        })
    }
}
