//! gfpgan's `archs/restoreformer_arch.py`: `RestoreFormer`, a VQ-VAE style face restorer. A
//! `MultiHeadEncoder` (ResNet blocks with GroupNorm + swish, self-attention at the lowest
//! resolution) gives the features `hs`; its output is quantised to the nearest codebook entry
//! (`VectorQuantizer`), and a `MultiHeadDecoderTransformer` decodes it, its attention layers taking
//! their queries from the encoder's features (`hs['mid_atten']`, `hs['block_{i}_atten']`).
//!
//! Weights load by the reference's parameter names (`encoder.down.{i}.block.{j}.norm1.weight`,
//! `encoder.mid.attn_1.q.weight`, `quantize.embedding.weight`, `decoder.up.{i}.upsample.conv.weight`,
//! ...), from RestoreFormer.pth's `params_ema` (see [`RestoreFormer::load_from_checkpoint`]). Dropout is
//! 0 and there is no timestep embedding (`temb_ch = 0`), as GFPGANer builds it.

use candle_core::Tensor;
use sadtalker_nn::{Activations, Conv2d, ConvParams, GroupNorm, Weights};
use sadtalker_ops::Resize;

use crate::{EnhanceError, Result};

/// The constructor arguments of `RestoreFormer` (GFPGANer uses the defaults: [`RestoreFormerConfig::official`]).
#[derive(Clone, Debug, PartialEq)]
pub struct RestoreFormerConfig {
    /// Codebook size (`n_embed`, 1024).
    pub n_embed: usize,
    /// Codebook vector width (`embed_dim`, 256).
    pub embed_dim: usize,
    /// Base channels (`ch`, 64).
    pub ch: usize,
    /// Output channels (`out_ch`, 3).
    pub out_ch: usize,
    /// Channel multiplier per level (`ch_mult`, `(1, 2, 2, 4, 4, 8)`).
    pub ch_mult: Vec<usize>,
    /// ResNet blocks per encoder level (`num_res_blocks`, 2; the decoder has one more).
    pub num_res_blocks: usize,
    /// Resolutions with attention (`attn_resolutions`, `(16,)`).
    pub attn_resolutions: Vec<usize>,
    /// Input channels (`in_channels`, 3).
    pub in_channels: usize,
    /// Face size (`resolution`, 512).
    pub resolution: usize,
    /// Latent channels (`z_channels`, 256).
    pub z_channels: usize,
    /// Attention heads (`head_size`, 8).
    pub head_size: usize,
}

impl RestoreFormerConfig {
    /// `RestoreFormer()` with its defaults, as GFPGANer builds it for `arch='RestoreFormer'`.
    pub fn official() -> Self {
        Self {
            n_embed: 1024,
            embed_dim: 256,
            ch: 64,
            out_ch: 3,
            ch_mult: vec![1, 2, 2, 4, 4, 8],
            num_res_blocks: 2,
            attn_resolutions: vec![16],
            in_channels: 3,
            resolution: 512,
            z_channels: 256,
            head_size: 8,
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(EnhanceError::Config(format!("RestoreFormer: {m}")));
        let levels = self.ch_mult.len();
        if levels == 0 || levels > 16 || self.ch == 0 || self.num_res_blocks == 0 || self.head_size == 0 {
            return bad("ch, num_res_blocks and head_size must be non-zero, ch_mult 1 to 16 levels".into());
        }
        if !self.resolution.is_multiple_of(1 << (levels - 1)) {
            return bad(format!(
                "resolution {} is not divisible by 2^{}",
                self.resolution,
                levels - 1
            ));
        }
        for &m in &self.ch_mult {
            let c = self.ch * m;
            if !c.is_multiple_of(32) || !c.is_multiple_of(self.head_size) {
                return bad(format!(
                    "{c} channels: GroupNorm(32) and {} heads need a multiple of both",
                    self.head_size
                ));
            }
        }
        if self.z_channels == 0 || self.embed_dim == 0 || self.n_embed == 0 {
            return bad("z_channels, embed_dim and n_embed must be non-zero".into());
        }
        // The decoder looks up the encoder's features of its attention levels by name; only the lowest
        // level has them (`hs['block_{last}_atten']`), so attention elsewhere fails in the reference too.
        let lowest = self.resolution >> (levels - 1);
        if self.attn_resolutions.iter().any(|&r| r != lowest) {
            return bad(format!(
                "attention only at the lowest resolution ({lowest}) is supported, got {:?}",
                self.attn_resolutions
            ));
        }
        Ok(())
    }
}

/// `nonlinearity`: swish, `x * sigmoid(x)`.
fn swish<T: Activations>(x: &T) -> Result<T> {
    Ok(x.mul(&x.sigmoid()?)?)
}

/// `Normalize(c)`: `GroupNorm(32, c, eps=1e-6, affine=True)`.
fn normalize(w: &Weights, c: usize) -> Result<GroupNorm> {
    Ok(GroupNorm::load(w, 32, c, 1e-6)?)
}

fn conv(w: &Weights, cin: usize, cout: usize, k: usize, stride: usize, pad: usize) -> Result<Conv2d> {
    let params = ConvParams {
        stride: [stride; 2],
        ..ConvParams::padding(pad)
    };
    Ok(Conv2d::load(w, cin, cout, [k, k], params, true)?)
}

/// `ResnetBlock(in_channels, out_channels, conv_shortcut=False, temb_channels=0)`.
#[derive(Debug)]
pub struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    norm2: GroupNorm,
    conv2: Conv2d,
    nin_shortcut: Option<Conv2d>,
}

impl ResnetBlock {
    /// Loads `norm1`, `conv1`, `norm2`, `conv2` and, when the width changes, `nin_shortcut` (1×1).
    pub fn load(w: &Weights, cin: usize, cout: usize) -> Result<Self> {
        Ok(Self {
            norm1: normalize(&w.pp("norm1"), cin)?,
            conv1: conv(&w.pp("conv1"), cin, cout, 3, 1, 1)?,
            norm2: normalize(&w.pp("norm2"), cout)?,
            conv2: conv(&w.pp("conv2"), cout, cout, 3, 1, 1)?,
            nin_shortcut: (cin != cout)
                .then(|| conv(&w.pp("nin_shortcut"), cin, cout, 1, 1, 0))
                .transpose()?,
        })
    }

    /// `forward(x, temb=None)`.
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let h = swish(&self.norm1.forward(x)?)?.conv(&self.conv1)?;
        let h = swish(&self.norm2.forward(&h)?)?.conv(&self.conv2)?;
        let x = match &self.nin_shortcut {
            Some(s) => x.conv(s)?,
            None => x.clone(),
        };
        Ok(x.add(&h)?)
    }
}

/// `MultiHeadAttnBlock(in_channels, head_size)`: attention over the pixels; queries from `y` (another
/// feature map, normalised by `norm2`) when given, else from `x`.
#[derive(Debug)]
pub struct MultiHeadAttnBlock {
    norm1: GroupNorm,
    norm2: GroupNorm,
    q: Conv2d,
    k: Conv2d,
    v: Conv2d,
    proj_out: Conv2d,
    head_size: usize,
}

impl MultiHeadAttnBlock {
    /// Loads `norm1`, `norm2`, `q`, `k`, `v`, `proj_out` (1×1 convolutions).
    pub fn load(w: &Weights, c: usize, head_size: usize) -> Result<Self> {
        Ok(Self {
            norm1: normalize(&w.pp("norm1"), c)?,
            norm2: normalize(&w.pp("norm2"), c)?,
            q: conv(&w.pp("q"), c, c, 1, 1, 0)?,
            k: conv(&w.pp("k"), c, c, 1, 1, 0)?,
            v: conv(&w.pp("v"), c, c, 1, 1, 0)?,
            proj_out: conv(&w.pp("proj_out"), c, c, 1, 1, 0)?,
            head_size,
        })
    }

    /// `forward(x, y=None)`.
    pub fn forward<T: Activations>(&self, x: &T, y: Option<&T>) -> Result<T> {
        let h_ = self.norm1.forward(x)?;
        let y = match y {
            Some(y) => self.norm2.forward(y)?,
            None => h_.clone(),
        };
        let q = y.conv(&self.q)?;
        let k = h_.conv(&self.k)?;
        let v = h_.conv(&self.v)?;
        let w_ = T::attention(&q, &k, &v, self.head_size)?;
        Ok(x.add(&w_.conv(&self.proj_out)?)?)
    }
}

/// One encoder or decoder level: its blocks, attention layers and resampling conv.
#[derive(Debug)]
struct Level {
    block: Vec<ResnetBlock>,
    attn: Vec<MultiHeadAttnBlock>,
    resample: Option<Conv2d>,
}

/// `MultiHeadEncoder(..., double_z=False, enable_mid=True)`.
#[derive(Debug)]
pub struct MultiHeadEncoder {
    conv_in: Conv2d,
    down: Vec<Level>,
    mid_block_1: ResnetBlock,
    mid_attn_1: MultiHeadAttnBlock,
    mid_block_2: ResnetBlock,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

/// The encoder features the decoder's attention reads (`hs['block_{last}_atten']`, `hs['mid_atten']`),
/// and its output (`hs['out']`).
#[derive(Debug)]
pub struct EncoderFeatures<T> {
    /// After `mid.block_1` (`hs['block_{num_resolutions-1}_atten']`).
    pub block_atten: T,
    /// After `mid.block_2` (`hs['mid_atten']`).
    pub mid_atten: T,
    /// `conv_out`'s result (`hs['out']`).
    pub out: T,
}

impl MultiHeadEncoder {
    /// Loads the encoder of `cfg` from `w` (the `encoder.` prefix already applied).
    pub fn load(w: &Weights, cfg: &RestoreFormerConfig) -> Result<Self> {
        let ch = cfg.ch;
        let conv_in = conv(&w.pp("conv_in"), cfg.in_channels, ch, 3, 1, 1)?;
        let mut curr_res = cfg.resolution;
        let levels = cfg.ch_mult.len();
        let mut down = Vec::with_capacity(levels);
        let mut block_in = ch;
        for i in 0..levels {
            let wl = w.pp(format!("down.{i}"));
            block_in = ch * if i == 0 { 1 } else { cfg.ch_mult[i - 1] };
            let block_out = ch * cfg.ch_mult[i];
            let (mut block, mut attn) = (Vec::new(), Vec::new());
            for j in 0..cfg.num_res_blocks {
                block.push(ResnetBlock::load(&wl.pp(format!("block.{j}")), block_in, block_out)?);
                block_in = block_out;
                if cfg.attn_resolutions.contains(&curr_res) {
                    attn.push(MultiHeadAttnBlock::load(
                        &wl.pp(format!("attn.{j}")),
                        block_in,
                        cfg.head_size,
                    )?);
                }
            }
            let resample = if i + 1 != levels {
                curr_res /= 2;
                Some(conv(&wl.pp("downsample.conv"), block_in, block_in, 3, 2, 0)?)
            } else {
                None
            };
            down.push(Level { block, attn, resample });
        }
        Ok(Self {
            conv_in,
            down,
            mid_block_1: ResnetBlock::load(&w.pp("mid.block_1"), block_in, block_in)?,
            mid_attn_1: MultiHeadAttnBlock::load(&w.pp("mid.attn_1"), block_in, cfg.head_size)?,
            mid_block_2: ResnetBlock::load(&w.pp("mid.block_2"), block_in, block_in)?,
            norm_out: normalize(&w.pp("norm_out"), block_in)?,
            conv_out: conv(&w.pp("conv_out"), block_in, cfg.z_channels, 3, 1, 1)?,
        })
    }

    /// `forward(x)`: the features the decoder needs, on the device `x` is on.
    pub fn forward<T: Activations>(&self, x: &T) -> Result<EncoderFeatures<T>> {
        let mut h = x.conv(&self.conv_in)?;
        for level in &self.down {
            for (j, block) in level.block.iter().enumerate() {
                h = block.forward(&h)?;
                if let Some(attn) = level.attn.get(j) {
                    h = attn.forward(&h, None)?;
                }
            }
            if let Some(conv) = &level.resample {
                // `F.pad(x, (0, 1, 0, 1))`: one zero column right, one zero row below.
                h = h.pad2d([0, 1, 0, 1])?.conv(conv)?;
            }
        }
        h = self.mid_block_1.forward(&h)?;
        let block_atten = h.clone();
        h = self.mid_attn_1.forward(&h, None)?;
        h = self.mid_block_2.forward(&h)?;
        let mid_atten = h.clone();
        let out = swish(&self.norm_out.forward(&h)?)?.conv(&self.conv_out)?;
        Ok(EncoderFeatures {
            block_atten,
            mid_atten,
            out,
        })
    }
}

/// `MultiHeadDecoderTransformer(..., enable_mid=True, give_pre_end=False)`.
#[derive(Debug)]
pub struct MultiHeadDecoderTransformer {
    conv_in: Conv2d,
    mid_block_1: ResnetBlock,
    mid_attn_1: MultiHeadAttnBlock,
    mid_block_2: ResnetBlock,
    /// `up[i]`, indexed by level as in the reference (run from the last to the first).
    up: Vec<Level>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl MultiHeadDecoderTransformer {
    /// Loads the decoder of `cfg` from `w` (the `decoder.` prefix already applied).
    pub fn load(w: &Weights, cfg: &RestoreFormerConfig) -> Result<Self> {
        let levels = cfg.ch_mult.len();
        let mut block_in = cfg.ch * cfg.ch_mult[levels - 1];
        let mut curr_res = cfg.resolution >> (levels - 1);
        let conv_in = conv(&w.pp("conv_in"), cfg.z_channels, block_in, 3, 1, 1)?;
        let mid_block_1 = ResnetBlock::load(&w.pp("mid.block_1"), block_in, block_in)?;
        let mid_attn_1 = MultiHeadAttnBlock::load(&w.pp("mid.attn_1"), block_in, cfg.head_size)?;
        let mid_block_2 = ResnetBlock::load(&w.pp("mid.block_2"), block_in, block_in)?;
        let mut up: Vec<Option<Level>> = (0..levels).map(|_| None).collect();
        for i in (0..levels).rev() {
            let wl = w.pp(format!("up.{i}"));
            let block_out = cfg.ch * cfg.ch_mult[i];
            let (mut block, mut attn) = (Vec::new(), Vec::new());
            for j in 0..=cfg.num_res_blocks {
                block.push(ResnetBlock::load(&wl.pp(format!("block.{j}")), block_in, block_out)?);
                block_in = block_out;
                if cfg.attn_resolutions.contains(&curr_res) {
                    attn.push(MultiHeadAttnBlock::load(
                        &wl.pp(format!("attn.{j}")),
                        block_in,
                        cfg.head_size,
                    )?);
                }
            }
            let resample = if i != 0 {
                curr_res *= 2;
                Some(conv(&wl.pp("upsample.conv"), block_in, block_in, 3, 1, 1)?)
            } else {
                None
            };
            up[i] = Some(Level { block, attn, resample });
        }
        Ok(Self {
            conv_in,
            mid_block_1,
            mid_attn_1,
            mid_block_2,
            up: up.into_iter().flatten().collect(),
            norm_out: normalize(&w.pp("norm_out"), block_in)?,
            conv_out: conv(&w.pp("conv_out"), block_in, cfg.out_ch, 3, 1, 1)?,
        })
    }

    /// `forward(z, hs)`, on the device `z` is on.
    pub fn forward<T: Activations>(&self, z: &T, hs: &EncoderFeatures<T>) -> Result<T> {
        let mut h = z.conv(&self.conv_in)?;
        h = self.mid_block_1.forward(&h)?;
        h = self.mid_attn_1.forward(&h, Some(&hs.mid_atten))?;
        h = self.mid_block_2.forward(&h)?;
        for level in self.up.iter().rev() {
            for (j, block) in level.block.iter().enumerate() {
                h = block.forward(&h)?;
                if let Some(attn) = level.attn.get(j) {
                    // Only the lowest level has attention (checked by the config): its features are
                    // `hs['block_{last}_atten']`.
                    h = attn.forward(&h, Some(&hs.block_atten))?;
                }
            }
            if let Some(conv) = &level.resample {
                let size = h.dims()[2..].iter().map(|s| s * 2).collect();
                h = h.interpolate_nearest(&Resize::Size(size))?.conv(conv)?;
            }
        }
        Ok(swish(&self.norm_out.forward(&h)?)?.conv(&self.conv_out)?)
    }
}

/// `VectorQuantizer(n_e, e_dim, beta)` in inference: each latent vector replaced by its nearest
/// codebook entry (squared distance `|z|² + |e|² - 2 z·e` in f32, the first minimum on ties).
#[derive(Debug)]
pub struct VectorQuantizer {
    embedding: Tensor,
    n_e: usize,
    e_dim: usize,
}

impl VectorQuantizer {
    /// Loads `embedding.weight` `(n_e, e_dim)`.
    pub fn load(w: &Weights, n_e: usize, e_dim: usize) -> Result<Self> {
        Ok(Self {
            embedding: w.get(&[n_e, e_dim], "embedding.weight")?,
            n_e,
            e_dim,
        })
    }

    /// The codebook indices chosen for `z` `(b, e_dim, h, w)`, in `(b, h, w)` order.
    pub fn indices(&self, z: &Tensor) -> Result<Vec<u32>> {
        let zf = z.permute((0, 2, 3, 1))?.contiguous()?.reshape(((), self.e_dim))?;
        let d = zf
            .sqr()?
            .sum_keepdim(1)?
            .broadcast_add(&self.embedding.sqr()?.sum(1)?.unsqueeze(0)?)?
            .broadcast_sub(&zf.matmul(&self.embedding.t()?)?.affine(2.0, 0.0)?)?;
        let d = d.to_vec2::<f32>()?;
        Ok(d.iter()
            .map(|row| {
                let mut best = 0usize;
                for (j, &v) in row.iter().enumerate() {
                    // NaN never wins; the first of equal minima does (torch.min on CPU).
                    if v < row[best] || row[best].is_nan() {
                        best = j;
                    }
                }
                best as u32
            })
            .collect())
    }

    /// `forward(z)[0]`: `z + (z_q - z)` (the straight-through form, rounded as the reference rounds it).
    pub fn forward(&self, z: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = z.dims4()?;
        if c != self.e_dim {
            return Err(EnhanceError::Config(format!(
                "RestoreFormer quantiser: {c} channels, the codebook has {}",
                self.e_dim
            )));
        }
        let idx = self.indices(z)?;
        debug_assert!(idx.iter().all(|&i| (i as usize) < self.n_e));
        let ids = Tensor::from_vec(idx, (b * h * w,), z.device())?;
        let zq = self
            .embedding
            .index_select(&ids, 0)?
            .reshape((b, h, w, c))?
            .permute((0, 3, 1, 2))?
            .contiguous()?;
        Ok((z + (zq - z)?)?)
    }
}

/// `RestoreFormer`: encoder → `quant_conv` → quantiser → `post_quant_conv` → decoder.
#[derive(Debug)]
pub struct RestoreFormer {
    /// The encoder.
    pub encoder: MultiHeadEncoder,
    /// The decoder.
    pub decoder: MultiHeadDecoderTransformer,
    /// The codebook.
    pub quantize: VectorQuantizer,
    quant_conv: Conv2d,
    post_quant_conv: Conv2d,
    config: RestoreFormerConfig,
}

impl RestoreFormer {
    /// Loads the network from weights named as the module's `state_dict()`.
    pub fn load(w: &Weights, cfg: &RestoreFormerConfig) -> Result<Self> {
        cfg.check()?;
        Ok(Self {
            encoder: MultiHeadEncoder::load(&w.pp("encoder"), cfg)?,
            decoder: MultiHeadDecoderTransformer::load(&w.pp("decoder"), cfg)?,
            quantize: VectorQuantizer::load(&w.pp("quantize"), cfg.n_embed, cfg.embed_dim)?,
            quant_conv: conv(&w.pp("quant_conv"), cfg.z_channels, cfg.embed_dim, 1, 1, 0)?,
            post_quant_conv: conv(&w.pp("post_quant_conv"), cfg.embed_dim, cfg.z_channels, 1, 1, 0)?,
            config: cfg.clone(),
        })
    }

    /// Loads from a checkpoint as GFPGANer does: `params_ema` if present, else `params`, else the top level.
    pub fn load_from_checkpoint(w: &Weights, cfg: &RestoreFormerConfig) -> Result<Self> {
        for key in ["params_ema", "params"] {
            if w.contains(&format!("{key}.quantize.embedding.weight")) {
                return Self::load(&w.pp(key), cfg);
            }
        }
        Self::load(w, cfg)
    }

    /// `quant_conv`: the encoder's output mapped to the codebook width (the quantiser's input).
    pub fn quant_conv<T: Activations>(&self, h: &T) -> Result<T> {
        Ok(h.conv(&self.quant_conv)?)
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &RestoreFormerConfig {
        &self.config
    }

    /// `forward(input)[0]`: the restored face, `(b, 3, s, s)` in `[-1, 1]` (not clamped), on the
    /// device `x` is on. The codebook lookup runs on the host: its squared distances are rounded
    /// as the reference's f32 ones, so near-ties pick the same entry (on a GPU the latents come
    /// back and the quantised ones go up, 16 × 16 × 256 values each way at the official size).
    pub fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let (c, h, w) = match *x.dims() {
            [_, c, h, w] => (c, h, w),
            ref d => {
                return Err(EnhanceError::BadFrame(format!(
                    "RestoreFormer takes (b, 3, h, w) faces, got {d:?}"
                )));
            }
        };
        let s = self.config.resolution;
        if c != self.config.in_channels || h != s || w != s {
            return Err(EnhanceError::BadFrame(format!(
                "RestoreFormer takes {}×{s}×{s} faces, got {c}×{h}×{w}",
                self.config.in_channels
            )));
        }
        let hs = self.encoder.forward(x)?;
        let z = self.quant_conv(&hs.out)?;
        let quant = T::lift(&z, &self.quantize.forward(&z.to_host()?)?)?;
        self.decoder.forward(&quant.conv(&self.post_quant_conv)?, &hs)
    }
}
