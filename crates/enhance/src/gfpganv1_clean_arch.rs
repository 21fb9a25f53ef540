//! gfpgan's `archs/gfpganv1_clean_arch.py`: `GFPGANv1Clean`, a U-Net encoder whose bottleneck gives the
//! StyleGAN2 latents and whose decoder levels give per-resolution SFT scale/shift maps, and
//! `StyleGAN2GeneratorCSFT`, the StyleGAN2 decoder applying them (`sft_half`: to half of the channels).
//!
//! Weights load by the reference's parameter names (`conv_body_first`, `conv_body_down.{i}.conv1`,
//! `final_linear`, `stylegan_decoder.style_convs.{j}.modulated_conv.weight`, `condition_scale.{i}.0`, ...),
//! from GFPGANv1.4.pth's `params_ema` (see [`GFPGANv1Clean::load_from_checkpoint`]). The `toRGB.*`
//! layers only serve `return_rgb=True`, which GFPGANer does not ask for; they are not loaded.

use candle_core::Tensor;
use sadtalker_nn::{Activations, Conv2d, ConvParams, Linear, Weights};

use crate::stylegan2_clean_arch::{NoiseSource, StyleGAN2GeneratorClean, bilinear, channels};
use crate::{EnhanceError, Result};

/// The constructor arguments of `GFPGANv1Clean` that vary (GFPGANer fixes `decoder_load_path=None`,
/// `fix_decoder=False`, `num_mlp=8`, `input_is_latent=True`, `different_w=True`, `sft_half=True`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GfpganConfig {
    /// Face size in and out (512).
    pub out_size: usize,
    /// Style width (512).
    pub num_style_feat: usize,
    /// StyleGAN2's channel multiplier (2).
    pub channel_multiplier: usize,
    /// Channel width factor (1).
    pub narrow: f64,
}

impl GfpganConfig {
    /// What GFPGANer builds for GFPGANv1.4 (`arch='clean'`, `channel_multiplier=2`).
    pub fn v1_4() -> Self {
        Self {
            out_size: 512,
            num_style_feat: 512,
            channel_multiplier: 2,
            narrow: 1.0,
        }
    }
}

/// `StyleGAN2GeneratorCSFT`: the clean StyleGAN2 generator with SFT conditions.
#[derive(Debug)]
pub struct StyleGAN2GeneratorCSFT {
    base: StyleGAN2GeneratorClean,
    sft_half: bool,
}

impl StyleGAN2GeneratorCSFT {
    /// `StyleGAN2GeneratorCSFT(out_size, num_style_feat, num_mlp, channel_multiplier, narrow, sft_half)`.
    pub fn load(w: &Weights, cfg: &GfpganConfig, sft_half: bool) -> Result<Self> {
        Ok(Self {
            base: StyleGAN2GeneratorClean::load(
                w,
                cfg.out_size,
                cfg.num_style_feat,
                cfg.channel_multiplier,
                cfg.narrow,
            )?,
            sft_half,
        })
    }

    /// The number of noise layers (`num_layers`).
    pub fn num_layers(&self) -> usize {
        self.base.num_layers
    }

    /// `forward([latent], conditions, input_is_latent=True, noise=...)` with per-layer latents
    /// `latent` `(b, num_latent, num_style_feat)`; returns the image.
    /// The conditions are where the decoder runs (the host or a GPU); the latents and the
    /// noise are made on the host.
    pub fn forward<T: Activations>(&self, latent: &Tensor, conditions: &[T], noise: &mut dyn NoiseSource) -> Result<T> {
        let g = &self.base;
        let b = latent.dim(0)?;
        let style = |i: usize| -> Result<Tensor> { Ok(latent.narrow(1, i, 1)?.squeeze(1)?) };
        let Some(like) = conditions.first() else {
            return Err(EnhanceError::Config(
                "the StyleGAN2 decoder got no SFT conditions".into(),
            ));
        };
        let mut out = T::lift(like, &g.constant_input.forward(b)?)?;
        let n0 = noise.noise(0, b, 4, 4)?;
        out = g.style_conv1.forward(&out, &style(0)?, &n0)?;
        let mut skip = g.to_rgb1.forward(&out, &style(1)?, None)?;
        let mut i = 1;
        for (j, to_rgb) in g.to_rgbs.iter().enumerate() {
            let (conv1, conv2) = (&g.style_convs[2 * j], &g.style_convs[2 * j + 1]);
            let size = 8usize << j;
            let n1 = noise.noise(2 * j + 1, b, size, size)?;
            out = conv1.forward(&out, &style(i)?, &n1)?;
            // The conditions may have fewer levels.
            if i < conditions.len() {
                let (scale, shift) = (&conditions[i - 1], &conditions[i]);
                let channels = out.dims().get(1).copied().unwrap_or(0);
                if self.sft_half {
                    let half = channels / 2;
                    let same = out.narrow(1, 0, half)?;
                    let sft = out.narrow(1, half, channels - half)?;
                    let sft = sft.mul(scale)?.add(shift)?;
                    out = T::cat_channels(&[&same, &sft])?;
                } else {
                    out = out.mul(scale)?.add(shift)?;
                }
            }
            let n2 = noise.noise(2 * j + 2, b, size, size)?;
            out = conv2.forward(&out, &style(i + 1)?, &n2)?;
            skip = to_rgb.forward(&out, &style(i + 2)?, Some(&skip))?;
            i += 2;
        }
        Ok(skip)
    }
}

/// `ResBlock`: residual block with bilinear down- or upsampling (`mode='down'|'up'`).
#[derive(Debug)]
pub struct ResBlock {
    conv1: Conv2d,
    conv2: Conv2d,
    skip: Conv2d,
    scale_factor: f64,
}

impl ResBlock {
    /// `ResBlock(in_channels, out_channels, mode)`; `up` selects `'up'`.
    pub fn load(w: &Weights, in_channels: usize, out_channels: usize, up: bool) -> Result<Self> {
        let p3 = ConvParams::padding(1);
        Ok(Self {
            conv1: Conv2d::load(&w.pp("conv1"), in_channels, in_channels, [3, 3], p3, true)?,
            conv2: Conv2d::load(&w.pp("conv2"), in_channels, out_channels, [3, 3], p3, true)?,
            skip: Conv2d::load(
                &w.pp("skip"),
                in_channels,
                out_channels,
                [1, 1],
                ConvParams::default(),
                false,
            )?,
            scale_factor: if up { 2.0 } else { 0.5 },
        })
    }

    /// `forward(x)`.
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let out = self.conv1.forward(x)?.leaky_relu(0.2)?;
        let out = bilinear(&out, self.scale_factor)?;
        let out = self.conv2.forward(&out)?.leaky_relu(0.2)?;
        let skip = self.skip.forward(&bilinear(x, self.scale_factor)?)?;
        Ok(out.add(&skip)?)
    }
}

/// One SFT condition branch: `Sequential(Conv2d(c, c, 3, 1, 1), LeakyReLU(0.2), Conv2d(c, c', 3, 1, 1))`.
#[derive(Debug)]
struct ConditionBranch {
    conv0: Conv2d,
    conv2: Conv2d,
}

impl ConditionBranch {
    fn load(w: &Weights, channels: usize, out_channels: usize) -> Result<Self> {
        let p = ConvParams::padding(1);
        Ok(Self {
            conv0: Conv2d::load(&w.pp("0"), channels, channels, [3, 3], p, true)?,
            conv2: Conv2d::load(&w.pp("2"), channels, out_channels, [3, 3], p, true)?,
        })
    }

    fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        Ok(self.conv2.forward(&self.conv0.forward(x)?.leaky_relu(0.2)?)?)
    }
}

/// `GFPGANv1Clean` as GFPGANer builds it: U-Net + StyleGAN2 decoder with SFT (`different_w=True`,
/// `input_is_latent=True`, `sft_half=True`).
#[derive(Debug)]
pub struct GFPGANv1Clean {
    config: GfpganConfig,
    log_size: usize,
    conv_body_first: Conv2d,
    conv_body_down: Vec<ResBlock>,
    final_conv: Conv2d,
    conv_body_up: Vec<ResBlock>,
    final_linear: Linear,
    stylegan_decoder: StyleGAN2GeneratorCSFT,
    condition_scale: Vec<ConditionBranch>,
    condition_shift: Vec<ConditionBranch>,
}

impl GFPGANv1Clean {
    /// Loads the network from weights scoped at the module (holding `conv_body_first.*`, ...).
    pub fn load(w: &Weights, config: &GfpganConfig) -> Result<Self> {
        let cfg = *config;
        if !cfg.out_size.is_power_of_two() || cfg.out_size < 8 {
            return Err(EnhanceError::Config(format!(
                "GFPGAN out_size {} must be a power of two ≥ 8",
                cfg.out_size
            )));
        }
        let unet_narrow = cfg.narrow * 0.5;
        let ch = |r: usize| channels(r, cfg.channel_multiplier, unet_narrow);
        let log_size = cfg.out_size.ilog2() as usize;
        let first_out_size = 1usize << log_size;
        let mut conv_body_down = Vec::new();
        let mut in_channels = ch(first_out_size);
        for (k, i) in (3..=log_size).rev().enumerate() {
            let out_channels = ch(1 << (i - 1));
            conv_body_down.push(ResBlock::load(
                &w.pp("conv_body_down").pp(k),
                in_channels,
                out_channels,
                false,
            )?);
            in_channels = out_channels;
        }
        let final_conv = Conv2d::load(
            &w.pp("final_conv"),
            in_channels,
            ch(4),
            [3, 3],
            ConvParams::padding(1),
            true,
        )?;
        let mut conv_body_up = Vec::new();
        let mut condition_scale = Vec::new();
        let mut condition_shift = Vec::new();
        let mut in_channels = ch(4);
        for (k, i) in (3..=log_size).enumerate() {
            let out_channels = ch(1 << i);
            conv_body_up.push(ResBlock::load(
                &w.pp("conv_body_up").pp(k),
                in_channels,
                out_channels,
                true,
            )?);
            in_channels = out_channels;
            // sft_half: the conditions cover half of the decoder's channels, which equal the U-Net's.
            condition_scale.push(ConditionBranch::load(
                &w.pp("condition_scale").pp(k),
                out_channels,
                out_channels,
            )?);
            condition_shift.push(ConditionBranch::load(
                &w.pp("condition_shift").pp(k),
                out_channels,
                out_channels,
            )?);
        }
        let linear_out = (log_size * 2 - 2) * cfg.num_style_feat;
        Ok(Self {
            config: cfg,
            log_size,
            conv_body_first: Conv2d::load(
                &w.pp("conv_body_first"),
                3,
                ch(first_out_size),
                [1, 1],
                ConvParams::default(),
                true,
            )?,
            conv_body_down,
            final_conv,
            conv_body_up,
            final_linear: Linear::load(&w.pp("final_linear"), ch(4) * 16, linear_out, true)?,
            stylegan_decoder: StyleGAN2GeneratorCSFT::load(&w.pp("stylegan_decoder"), &cfg, true)?,
            condition_scale,
            condition_shift,
        })
    }

    /// Loads from a GFPGAN checkpoint's weights: the `params_ema` dictionary when present (as GFPGANer
    /// prefers it), else `params`, else the top level.
    pub fn load_from_checkpoint(root: &Weights, config: &GfpganConfig) -> Result<Self> {
        for key in ["params_ema", "params"] {
            if root.contains(&format!("{key}.conv_body_first.weight")) {
                return Self::load(&root.pp(key), config);
            }
        }
        Self::load(root, config)
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &GfpganConfig {
        &self.config
    }

    /// Noise layers the decoder asks its [`NoiseSource`] for.
    pub fn num_noise_layers(&self) -> usize {
        self.stylegan_decoder.num_layers()
    }

    /// The encoder alone: the per-layer style code `(b, num_latent, num_style_feat)` and the SFT conditions
    /// (scale, shift per level).
    /// On a GPU the conditions stay there; the U-Net's 4×4 bottleneck comes back for the
    /// final linear layer (8192 numbers a face).
    pub fn encode<T: Activations>(&self, x: &T) -> Result<(Tensor, Vec<T>)> {
        let mut feat = self.conv_body_first.forward(x)?.leaky_relu(0.2)?;
        let mut unet_skips = Vec::with_capacity(self.log_size - 2);
        for down in &self.conv_body_down {
            feat = down.forward(&feat)?;
            unet_skips.push(feat.clone());
        }
        feat = self.final_conv.forward(&feat)?.leaky_relu(0.2)?;
        let bottleneck = feat.to_host()?;
        let b = bottleneck.dim(0)?;
        let style_code =
            self.final_linear
                .forward(&bottleneck.flatten_from(1)?)?
                .reshape((b, (), self.config.num_style_feat))?;
        let mut conditions = Vec::with_capacity(2 * (self.log_size - 2));
        for (k, up) in self.conv_body_up.iter().enumerate() {
            // `unet_skips.insert(0, feat)`: the deepest first.
            let skip = &unet_skips[unet_skips.len() - 1 - k];
            feat = up.forward(&feat.add(skip)?)?;
            conditions.push(self.condition_scale[k].forward(&feat)?);
            conditions.push(self.condition_shift[k].forward(&feat)?);
        }
        Ok((style_code, conditions))
    }

    /// `forward(x, return_rgb=False)`: the restored image `(b, 3, out_size, out_size)`, roughly in
    /// `[-1, 1]`, from a face `x` normalised to `[-1, 1]`.
    pub fn forward<T: Activations>(&self, x: &T, noise: &mut dyn NoiseSource) -> Result<T> {
        let (style_code, conditions) = self.encode(x)?;
        self.stylegan_decoder.forward(&style_code, &conditions, noise)
    }
}
