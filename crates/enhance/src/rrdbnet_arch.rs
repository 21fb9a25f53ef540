//! basicsr's `archs/rrdbnet_arch.py`: `RRDBNet`, the ESRGAN generator Real-ESRGAN uses
//! (`RealESRGAN_x2plus.pth`: `RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23,
//! num_grow_ch=32, scale=2)`). For scale 2 the input is pixel-unshuffled by 2 (`arch_util.pixel_unshuffle`)
//! and the trunk's features are upsampled ×4 (two nearest ×2 + conv), so the image grows ×2.
//!
//! Weights load by the reference's names (`conv_first`, `body.{i}.rdb{1,2,3}.conv{1..5}`, `conv_body`,
//! `conv_up1`, `conv_up2`, `conv_hr`, `conv_last`), from the checkpoint's `params_ema` (else `params`),
//! as `RealESRGANer` loads it.

use candle_core::Tensor;
use sadtalker_gpu::{GpuTensor, context};
use sadtalker_nn::{Activations, Conv2d, ConvParams, Weights};
use sadtalker_ops::Resize;

use crate::{EnhanceError, Result};

/// The constructor arguments of `RRDBNet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RrdbConfig {
    /// `num_in_ch` (3).
    pub num_in_ch: usize,
    /// `num_out_ch` (3).
    pub num_out_ch: usize,
    /// `scale`: 1, 2 or 4 (2 for RealESRGAN_x2plus).
    pub scale: usize,
    /// `num_feat` (64).
    pub num_feat: usize,
    /// `num_block` (23).
    pub num_block: usize,
    /// `num_grow_ch` (32).
    pub num_grow_ch: usize,
}

impl RrdbConfig {
    /// `RRDBNet(num_in_ch=3, num_out_ch=3, num_feat=64, num_block=23, num_grow_ch=32, scale=2)`, as
    /// SadTalker's face_enhancer.py builds it for `--background_enhancer realesrgan`.
    pub fn x2plus() -> Self {
        Self {
            num_in_ch: 3,
            num_out_ch: 3,
            scale: 2,
            num_feat: 64,
            num_block: 23,
            num_grow_ch: 32,
        }
    }

    /// How much the input is pixel-unshuffled before the trunk (1 = not).
    fn unshuffle(&self) -> usize {
        match self.scale {
            2 => 2,
            1 => 4,
            _ => 1,
        }
    }
}

fn conv3(w: &Weights, cin: usize, cout: usize) -> Result<Conv2d> {
    Ok(Conv2d::load(w, cin, cout, [3, 3], ConvParams::padding(1), true)?)
}

fn lrelu<T: Activations>(x: &T) -> Result<T> {
    Ok(x.leaky_relu(0.2)?)
}

/// `x * 0.2 + x0`: the scaled residual, rounded as PyTorch rounds it (multiply, then add).
fn residual<T: Activations>(x: &T, x0: &T) -> Result<T> {
    Ok(x.scale(0.2)?.add(x0)?)
}

/// `ResidualDenseBlock(num_feat, num_grow_ch)`: five 3×3 convolutions, each seeing all earlier outputs.
#[derive(Debug)]
pub struct ResidualDenseBlock {
    convs: [Conv2d; 5],
}

impl ResidualDenseBlock {
    /// Loads `conv1` … `conv5`.
    pub fn load(w: &Weights, nf: usize, gc: usize) -> Result<Self> {
        Ok(Self {
            convs: [
                conv3(&w.pp("conv1"), nf, gc)?,
                conv3(&w.pp("conv2"), nf + gc, gc)?,
                conv3(&w.pp("conv3"), nf + 2 * gc, gc)?,
                conv3(&w.pp("conv4"), nf + 3 * gc, gc)?,
                conv3(&w.pp("conv5"), nf + 4 * gc, nf)?,
            ],
        })
    }

    /// `forward(x)`.
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let mut feats = vec![x.clone()];
        for conv in &self.convs[..4] {
            let y = lrelu(&cat(&feats)?.conv(conv)?)?;
            feats.push(y);
        }
        let x5 = cat(&feats)?.conv(&self.convs[4])?;
        residual(&x5, x)
    }
}

/// `torch.cat(feats, 1)`.
fn cat<T: Activations>(feats: &[T]) -> Result<T> {
    Ok(T::cat_channels(&feats.iter().collect::<Vec<_>>())?)
}

/// `RRDB(num_feat, num_grow_ch)`: three dense blocks and a scaled residual.
#[derive(Debug)]
pub struct Rrdb {
    rdb: [ResidualDenseBlock; 3],
}

impl Rrdb {
    /// Loads `rdb1` … `rdb3`.
    pub fn load(w: &Weights, nf: usize, gc: usize) -> Result<Self> {
        Ok(Self {
            rdb: [
                ResidualDenseBlock::load(&w.pp("rdb1"), nf, gc)?,
                ResidualDenseBlock::load(&w.pp("rdb2"), nf, gc)?,
                ResidualDenseBlock::load(&w.pp("rdb3"), nf, gc)?,
            ],
        })
    }

    /// `forward(x)`.
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let mut out = x.clone();
        for r in &self.rdb {
            out = r.forward(&out)?;
        }
        residual(&out, x)
    }
}

/// `RRDBNet`.
#[derive(Debug)]
pub struct RRDBNet {
    conv_first: Conv2d,
    body: Vec<Rrdb>,
    conv_body: Conv2d,
    conv_up1: Conv2d,
    conv_up2: Conv2d,
    conv_hr: Conv2d,
    conv_last: Conv2d,
    config: RrdbConfig,
}

/// `arch_util.pixel_unshuffle(x, scale)`: `(b, c, h·s, w·s)` → `(b, c·s², h, w)`.
pub fn pixel_unshuffle(x: &Tensor, s: usize) -> Result<Tensor> {
    let (b, c, hh, hw) = x.dims4()?;
    if hh % s != 0 || hw % s != 0 {
        return Err(EnhanceError::BadFrame(format!(
            "pixel_unshuffle: {hh}×{hw} is not divisible by {s}"
        )));
    }
    let (h, w) = (hh / s, hw / s);
    Ok(x.reshape((b, c, h, s, w, s))?
        .permute((0, 1, 3, 5, 2, 4))?
        .contiguous()?
        .reshape((b, c * s * s, h, w))?)
}

impl RRDBNet {
    /// Loads the network from weights named as the module's `state_dict()`.
    pub fn load(w: &Weights, cfg: &RrdbConfig) -> Result<Self> {
        if !matches!(cfg.scale, 1 | 2 | 4) || cfg.num_feat == 0 || cfg.num_grow_ch == 0 {
            return Err(EnhanceError::Config(format!(
                "RRDBNet: unsupported configuration {cfg:?}"
            )));
        }
        let u = cfg.unshuffle();
        let nf = cfg.num_feat;
        Ok(Self {
            conv_first: conv3(&w.pp("conv_first"), cfg.num_in_ch * u * u, nf)?,
            body: (0..cfg.num_block)
                .map(|i| Rrdb::load(&w.pp(format!("body.{i}")), nf, cfg.num_grow_ch))
                .collect::<Result<_>>()?,
            conv_body: conv3(&w.pp("conv_body"), nf, nf)?,
            conv_up1: conv3(&w.pp("conv_up1"), nf, nf)?,
            conv_up2: conv3(&w.pp("conv_up2"), nf, nf)?,
            conv_hr: conv3(&w.pp("conv_hr"), nf, nf)?,
            conv_last: conv3(&w.pp("conv_last"), nf, cfg.num_out_ch)?,
            config: *cfg,
        })
    }

    /// Loads from a checkpoint as `RealESRGANer` does: `params_ema` if present, else `params`, else the top level.
    pub fn load_from_checkpoint(w: &Weights, cfg: &RrdbConfig) -> Result<Self> {
        for key in ["params_ema", "params"] {
            if w.contains(&format!("{key}.conv_first.weight")) {
                return Self::load(&w.pp(key), cfg);
            }
        }
        Self::load(w, cfg)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RrdbConfig {
        &self.config
    }

    /// `forward(x)`: `(b, 3, h, w)` in `[0, 1]` → `(b, 3, h·scale, w·scale)` (not clamped). The
    /// pixel unshuffle runs on the host; on the thread's GPU, when one is set, everything after it
    /// does (the unshuffled input goes up, the image comes back).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let u = self.config.unshuffle();
        let feat = if u > 1 { pixel_unshuffle(x, u)? } else { x.clone() };
        match context::current() {
            Some(dev) => Ok(self
                .forward_unshuffled(&GpuTensor::from_tensor(&dev, &feat)?)?
                .to_host()?),
            None => self.forward_unshuffled(&feat),
        }
    }

    /// `forward(x)` from `conv_first` on, `feat` already pixel-unshuffled, on the device `feat` is on.
    pub fn forward_unshuffled<T: Activations>(&self, feat: &T) -> Result<T> {
        let feat = feat.conv(&self.conv_first)?;
        let mut body = feat.clone();
        for block in &self.body {
            body = block.forward(&body)?;
        }
        let feat = feat.add(&body.conv(&self.conv_body)?)?;
        let up = |t: &T| t.interpolate_nearest(&Resize::Scale(vec![2.0, 2.0]));
        let feat = lrelu(&up(&feat)?.conv(&self.conv_up1)?)?;
        let feat = lrelu(&up(&feat)?.conv(&self.conv_up2)?)?;
        Ok(lrelu(&feat.conv(&self.conv_hr)?)?.conv(&self.conv_last)?)
    }
}
