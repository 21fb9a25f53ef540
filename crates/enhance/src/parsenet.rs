//! facexlib's `parsing/parsenet.py`: `ParseNet` (from PSFRGAN), the 19-class face parser GFPGANer's
//! `FaceRestoreHelper` runs on each restored face (`use_parse=True`) to shape the paste mask.
//!
//! Module and parameter names mirror the reference (`encoder.0.conv2d`, `body.3.conv1.norm.norm`,
//! `decoder.1.shortcut_func.conv2d`, `out_mask_conv`, ...); `parsing_parsenet.pth` is a plain state dict.
//! Only what `init_parsing_model('parsenet')` builds is supported: batch norm, LeakyReLU(0.2).

use candle_core::Tensor;
use sadtalker_gpu::{GpuTensor, context};
use sadtalker_nn::{Activations, BatchNorm, Conv2d, ConvParams, Weights};
use sadtalker_ops::Resize;

use crate::{EnhanceError, Result};

/// `ParseNet`'s constructor arguments (`relu_type='LeakyReLU'`, `norm_type='bn'` fixed).
#[derive(Clone, Debug, PartialEq)]
pub struct ParseNetConfig {
    /// Input side (512).
    pub in_size: usize,
    /// Output side (512).
    pub out_size: usize,
    /// Feature size at the bottleneck (32).
    pub min_feat_size: usize,
    /// Channels after the first convolution (64).
    pub base_ch: usize,
    /// Classes (19).
    pub parsing_ch: usize,
    /// Residual blocks at the bottleneck (10).
    pub res_depth: usize,
    /// Channel clip `[min, max]` (`[32, 256]`).
    pub ch_range: [usize; 2],
}

impl ParseNetConfig {
    /// `init_parsing_model(model_name='parsenet')`: `ParseNet(in_size=512, out_size=512, parsing_ch=19)`.
    pub fn facexlib() -> Self {
        Self {
            in_size: 512,
            out_size: 512,
            min_feat_size: 32,
            base_ch: 64,
            parsing_ch: 19,
            res_depth: 10,
            ch_range: [32, 256],
        }
    }
}

/// `ConvLayer`'s `scale`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scale {
    None,
    Up,
    Down,
}

/// `ConvLayer(in, out, 3, scale, norm_type, relu_type)`: nearest ×2 when `up`, reflection pad 1, 3×3
/// convolution (stride 2 when `down`), batch norm or nothing, LeakyReLU(0.2) or nothing. The
/// `nn.ReflectionPad2d` is the convolution's `padding_mode='reflect'` here (the same values; on a
/// GPU no padded copy).
#[derive(Debug)]
struct ConvLayer {
    scale: Scale,
    conv2d: Conv2d,
    norm: Option<BatchNorm>,
    relu: bool,
}

impl ConvLayer {
    fn load(w: &Weights, cin: usize, cout: usize, scale: Scale, bn: bool, relu: bool) -> Result<Self> {
        let stride = if scale == Scale::Down { 2 } else { 1 };
        Ok(Self {
            scale,
            // `if norm_type in ['bn']: bias = False`.
            conv2d: Conv2d::load(
                &w.pp("conv2d"),
                cin,
                cout,
                [3, 3],
                ConvParams::padding(1).with_stride(stride),
                !bn,
            )?
            .with_reflection_padding(),
            norm: if bn {
                Some(BatchNorm::load(&w.pp("norm").pp("norm"), cout, BatchNorm::EPS)?)
            } else {
                None
            },
            relu,
        })
    }

    fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let out = if self.scale == Scale::Up {
            x.interpolate_nearest(&Resize::Scale(vec![2.0, 2.0]))?
        } else {
            x.clone()
        };
        let out = self.conv2d.forward(&out)?;
        let out = match &self.norm {
            Some(bn) => bn.forward(&out)?,
            None => out,
        };
        Ok(if self.relu { out.leaky_relu(0.2)? } else { out })
    }
}

/// `ResidualBlock(c_in, c_out, relu_type, norm_type, scale)`.
#[derive(Debug)]
struct ResidualBlock {
    shortcut_func: Option<ConvLayer>,
    conv1: ConvLayer,
    conv2: ConvLayer,
}

impl ResidualBlock {
    fn load(w: &Weights, c_in: usize, c_out: usize, scale: Scale) -> Result<Self> {
        let shortcut_func = if scale == Scale::None && c_in == c_out {
            None
        } else {
            Some(ConvLayer::load(
                &w.pp("shortcut_func"),
                c_in,
                c_out,
                scale,
                false,
                false,
            )?)
        };
        let (s1, s2) = match scale {
            Scale::Down => (Scale::None, Scale::Down),
            Scale::Up => (Scale::Up, Scale::None),
            Scale::None => (Scale::None, Scale::None),
        };
        Ok(Self {
            shortcut_func,
            conv1: ConvLayer::load(&w.pp("conv1"), c_in, c_out, s1, true, true)?,
            conv2: ConvLayer::load(&w.pp("conv2"), c_out, c_out, s2, true, false)?,
        })
    }

    fn forward<T: Activations>(&self, x: &T) -> Result<T> {
        let identity = match &self.shortcut_func {
            Some(s) => s.forward(x)?,
            None => x.clone(),
        };
        let res = self.conv2.forward(&self.conv1.forward(x)?)?;
        Ok(identity.add(&res)?)
    }
}

/// `ParseNet`: encoder (a convolution and downsampling residual blocks), residual body with a skip,
/// upsampling decoder, and two heads (`out_mask_conv`: class logits, `out_img_conv`: an image).
#[derive(Debug)]
pub struct ParseNet {
    config: ParseNetConfig,
    encoder_first: ConvLayer,
    encoder: Vec<ResidualBlock>,
    body: Vec<ResidualBlock>,
    decoder: Vec<ResidualBlock>,
    out_img_conv: ConvLayer,
    out_mask_conv: ConvLayer,
}

impl ParseNet {
    /// Loads the network from weights scoped at the module (`parsing_parsenet.pth` as it is).
    pub fn load(w: &Weights, config: &ParseNetConfig) -> Result<Self> {
        let cfg = config.clone();
        let [min_ch, max_ch] = cfg.ch_range;
        let clip = |x: usize| x.clamp(min_ch, max_ch.max(min_ch));
        let min_feat = cfg.min_feat_size.min(cfg.in_size);
        if min_feat == 0 || cfg.in_size < min_feat || cfg.out_size < min_feat {
            return Err(EnhanceError::Config(format!(
                "ParseNet sizes {cfg:?} do not fit together"
            )));
        }
        // int(np.log2(in_size // min_feat_size)).
        let down_steps = (cfg.in_size / min_feat).ilog2() as usize;
        let up_steps = (cfg.out_size / min_feat).ilog2() as usize;
        let enc = w.pp("encoder");
        let encoder_first = ConvLayer::load(&enc.pp(0), 3, cfg.base_ch, Scale::None, false, false)?;
        let mut head = cfg.base_ch;
        let mut encoder = Vec::new();
        for i in 0..down_steps {
            encoder.push(ResidualBlock::load(
                &enc.pp(i + 1),
                clip(head),
                clip(head * 2),
                Scale::Down,
            )?);
            head *= 2;
        }
        let body = (0..cfg.res_depth)
            .map(|i| ResidualBlock::load(&w.pp("body").pp(i), clip(head), clip(head), Scale::None))
            .collect::<Result<Vec<_>>>()?;
        let mut decoder = Vec::new();
        for i in 0..up_steps {
            decoder.push(ResidualBlock::load(
                &w.pp("decoder").pp(i),
                clip(head),
                clip(head / 2),
                Scale::Up,
            )?);
            head /= 2;
        }
        Ok(Self {
            out_img_conv: ConvLayer::load(&w.pp("out_img_conv"), clip(head), 3, Scale::None, false, false)?,
            out_mask_conv: ConvLayer::load(
                &w.pp("out_mask_conv"),
                clip(head),
                cfg.parsing_ch,
                Scale::None,
                false,
                false,
            )?,
            config: cfg,
            encoder_first,
            encoder,
            body,
            decoder,
        })
    }

    /// Loads from `parsing_parsenet.pth` (a plain state dict; a `params` or `module.` wrapper is accepted).
    pub fn load_from_checkpoint(root: &Weights, config: &ParseNetConfig) -> Result<Self> {
        for key in ["params", "module"] {
            if root.contains(&format!("{key}.encoder.0.conv2d.weight")) {
                return Self::load(&root.pp(key), config);
            }
        }
        Self::load(root, config)
    }

    /// The configuration the network was built with.
    pub fn config(&self) -> &ParseNetConfig {
        &self.config
    }

    /// `forward(x)`: `(out_mask, out_img)`, the class logits `(b, parsing_ch, out, out)` and the
    /// image, where `x` is (the host or a GPU).
    pub fn forward<T: Activations>(&self, x: &T) -> Result<(T, T)> {
        let mut feat = self.encoder_first.forward(x)?;
        for block in &self.encoder {
            feat = block.forward(&feat)?;
        }
        let mut body = feat.clone();
        for block in &self.body {
            body = block.forward(&body)?;
        }
        let mut x = feat.add(&body)?;
        for block in &self.decoder {
            x = block.forward(&x)?;
        }
        Ok((self.out_mask_conv.forward(&x)?, self.out_img_conv.forward(&x)?))
    }

    /// The per-pixel class (`out_mask.argmax(dim=1)`, the first maximum on ties) of one face,
    /// `out × out` values, row-major. On the thread's GPU when one is set: the face goes up, the
    /// class logits come back.
    pub fn parse(&self, x: &Tensor) -> Result<Vec<u8>> {
        let mask = match context::current() {
            Some(dev) => self.forward(&GpuTensor::from_tensor(&dev, x)?)?.0.to_host()?,
            None => self.forward(x)?.0,
        };
        let (_, c, h, w) = mask.dims4()?;
        let v = mask.flatten_all()?.to_vec1::<f32>()?;
        let plane = h * w;
        Ok((0..plane)
            .map(|p| {
                let mut best = 0usize;
                for k in 1..c {
                    // `>`: the first maximum wins; NaN never does.
                    if v[k * plane + p] > v[best * plane + p] {
                        best = k;
                    }
                }
                best as u8
            })
            .collect())
    }
}
