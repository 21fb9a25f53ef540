//! realesrgan's `utils.py`: `RealESRGANer`, the background upsampler of SadTalker's
//! `--background_enhancer realesrgan`, as face_enhancer.py builds it: `RealESRGANer(scale=2,
//! model_path='RealESRGAN_x2plus.pth', model=RRDBNet(…, scale=2), tile=400, tile_pad=10, pre_pad=0)`,
//! called by GFPGANer as `bg_upsampler.enhance(img, outscale=2)[0]`.
//!
//! `enhance` on an 8-bit RGB frame: values `/ 255` in f32, the frame reflect-padded to even sides
//! (`mod_scale = 2`), cut into 400 × 400 tiles, each run with 10 pixels of context on every side and
//! its centre kept, clamped to `[0, 1]`, `× 255` rounded half to even. Memory is bounded by the tile:
//! one tile's activations plus the output frame, whatever the frame size.
//!
//! The reference runs the network in half precision on CUDA (`half=True`); on the CPU, as here, it is
//! f32 (the reference's own CPU path skips the background upsampler altogether, see
//! [`crate::gfpganer`]).

use candle_core::{Device, Tensor};
use image::RgbImage;
use sadtalker_checkpoint::Weights;
use sadtalker_ops::reflection_pad2d;

use crate::rrdbnet_arch::{RRDBNet, RrdbConfig};
use crate::{EnhanceError, Result};

/// The background enhancer's weights file, as the model store names it.
pub const REALESRGAN_FILE: &str = "RealESRGAN_x2plus.pth";

/// The tile size SadTalker uses (`tile=400`).
pub const TILE: usize = 400;

/// The context around each tile (`tile_pad=10`).
pub const TILE_PAD: usize = 10;

/// Largest frame side accepted (the output is twice that).
pub const MAX_SIDE: u32 = 8192;

/// `RealESRGANer` with its network, tile settings and device.
#[derive(Debug)]
pub struct RealESRGANer {
    model: RRDBNet,
    tile: usize,
    tile_pad: usize,
    device: Device,
}

impl RealESRGANer {
    /// Wraps a network with SadTalker's settings (tile 400, tile_pad 10, pre_pad 0).
    pub fn new(model: RRDBNet, device: &Device) -> Self {
        Self::with_tiles(model, TILE, TILE_PAD, device)
    }

    /// Wraps a network with other tile settings (`tile = 0`: the whole frame at once, as the
    /// reference's `tile=0`).
    pub fn with_tiles(model: RRDBNet, tile: usize, tile_pad: usize, device: &Device) -> Self {
        Self {
            model,
            tile,
            tile_pad,
            device: device.clone(),
        }
    }

    /// Loads `RealESRGAN_x2plus.pth` (`params_ema`, else `params`). Errors name the file and the
    /// `sadtalker models fetch --for realesrgan` that installs it.
    pub fn load(path: &std::path::Path, device: &Device) -> Result<Self> {
        let model = Weights::from_file(path, device)
            .map_err(EnhanceError::from)
            .and_then(|w| RRDBNet::load_from_checkpoint(&w, &RrdbConfig::x2plus()))
            .map_err(|e| EnhanceError::ModelFile {
                what: "Real-ESRGAN x2plus",
                path: path.to_path_buf(),
                feature: "realesrgan",
                error: Box::new(e),
            })?;
        Ok(Self::new(model, device))
    }

    /// The network's scale factor.
    pub fn scale(&self) -> usize {
        self.model.config().scale
    }

    /// `enhance(img, outscale=scale)[0]` on an RGB frame: the frame `scale` times larger.
    pub fn enhance(&self, image: &RgbImage) -> Result<RgbImage> {
        let (ow, oh, out) = self.enhance_raw(image)?;
        let rgb = (0..oh * ow * 3)
            .map(|i| {
                let (p, c) = (i / 3, i % 3);
                let v = out[c * oh * ow + p].clamp(0.0, 1.0);
                (v * 255.0).round_ties_even() as u8
            })
            .collect();
        RgbImage::from_raw(ow as u32, oh as u32, rgb)
            .ok_or_else(|| EnhanceError::BadFrame("the upscaled frame has an inconsistent size".into()))
    }

    /// The network's stitched output for `image` after `post_process` (the mod padding cut off), before
    /// the clamp: `(width, height, planes)` with the `3 × height × width` RGB planes.
    pub fn enhance_raw(&self, image: &RgbImage) -> Result<(usize, usize, Vec<f32>)> {
        let (w, h) = (image.width() as usize, image.height() as usize);
        if w == 0 || h == 0 || image.width() > MAX_SIDE || image.height() > MAX_SIDE {
            return Err(EnhanceError::BadFrame(format!(
                "the background enhancer takes frames of 1 to {MAX_SIDE} pixels per side, got {w}×{h}"
            )));
        }
        let scale = self.scale();
        // `img.astype(np.float32) / 255`, HWC → CHW.
        let raw = image.as_raw();
        let mut data = vec![0f32; 3 * w * h];
        for c in 0..3 {
            for (i, o) in data[c * w * h..(c + 1) * w * h].iter_mut().enumerate() {
                *o = f32::from(raw[i * 3 + c]) / 255.0;
            }
        }
        let mut img = Tensor::from_vec(data, (1, 3, h, w), &self.device)?;
        // `pre_process`: mod_scale 2 (scale 2) or 4 (scale 1), reflect-padded right and bottom.
        let modulo = match scale {
            2 => 2,
            1 => 4,
            _ => 1,
        };
        let (pad_h, pad_w) = ((modulo - h % modulo) % modulo, (modulo - w % modulo) % modulo);
        if pad_h > 0 || pad_w > 0 {
            img = reflection_pad2d(&img, [0, pad_w, 0, pad_h])?;
        }
        let out = if self.tile > 0 {
            self.tile_process(&img)?
        } else {
            self.model.forward(&img)?.squeeze(0)?.flatten_all()?.to_vec1::<f32>()?
        };
        // `post_process`: the mod padding cut off.
        let (ph, pw) = ((h + pad_h) * scale, (w + pad_w) * scale);
        let (oh, ow) = (h * scale, w * scale);
        if (ph, pw) == (oh, ow) {
            return Ok((ow, oh, out));
        }
        let mut cut = Vec::with_capacity(3 * oh * ow);
        for c in 0..3 {
            for y in 0..oh {
                let row = (c * ph + y) * pw;
                cut.extend_from_slice(&out[row..row + ow]);
            }
        }
        Ok((ow, oh, cut))
    }

    /// `tile_process`: the padded `(1, 3, H, W)` input tile by tile; returns the `(3, H·s, W·s)` output
    /// as a flat vector (only it and one tile's activations are held).
    fn tile_process(&self, img: &Tensor) -> Result<Vec<f32>> {
        let (_, _, height, width) = img.dims4()?;
        let s = self.scale();
        let (out_h, out_w) = (height * s, width * s);
        let mut output = vec![0f32; 3 * out_h * out_w];
        let (tile, pad) = (self.tile, self.tile_pad);
        let tiles_x = width.div_ceil(tile);
        let tiles_y = height.div_ceil(tile);
        for ty in 0..tiles_y {
            for tx in 0..tiles_x {
                let (x0, y0) = (tx * tile, ty * tile);
                let (x1, y1) = ((x0 + tile).min(width), (y0 + tile).min(height));
                let (x0p, y0p) = (x0.saturating_sub(pad), y0.saturating_sub(pad));
                let (x1p, y1p) = ((x1 + pad).min(width), (y1 + pad).min(height));
                let input = img.narrow(2, y0p, y1p - y0p)?.narrow(3, x0p, x1p - x0p)?.contiguous()?;
                let tile_out = self.model.forward(&input)?;
                let (_, _, th, tw) = tile_out.dims4()?;
                let v = tile_out.flatten_all()?.to_vec1::<f32>()?;
                let (ox, oy) = ((x0 - x0p) * s, (y0 - y0p) * s);
                let (cw, chh) = ((x1 - x0) * s, (y1 - y0) * s);
                for c in 0..3 {
                    for y in 0..chh {
                        let src = (c * th + oy + y) * tw + ox;
                        let dst = (c * out_h + y0 * s + y) * out_w + x0 * s;
                        output[dst..dst + cw].copy_from_slice(&v[src..src + cw]);
                    }
                }
            }
        }
        Ok(output)
    }
}
