//! The renderer's image boundary: the source image in (as `get_facerender_data` loads it:
//! `img_as_float32`, then `skimage.transform.resize` to `size × size`), frames out (as
//! `img_as_ubyte`: `rint(x · 255)`, clipped).
//!
//! Why hand-written: no Rust image crate reproduces scikit-image's resize (Gaussian
//! anti-aliasing then `scipy.ndimage.zoom` with `grid_mode=True` and mirror edges), and a
//! different resampler would change every rendered frame.

use candle_core::{Device, Tensor};

use crate::{RenderError, Result};

/// An RGB image as `f32` in [0, 1], `height × width × 3` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbF32 {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `height * width * 3` values.
    pub data: Vec<f32>,
}

impl RgbF32 {
    /// `img_as_float32` of an 8-bit RGB image.
    pub fn from_rgb8(width: usize, height: usize, rgb: &[u8]) -> Result<Self> {
        if rgb.len() != width * height * 3 || width == 0 || height == 0 {
            return Err(RenderError::Input(format!(
                "an RGB image of {width}x{height} needs {} bytes, got {}",
                width * height * 3,
                rgb.len()
            )));
        }
        Ok(Self {
            height,
            width,
            data: rgb.iter().map(|&v| v as f32 / 255.0).collect(),
        })
    }

    /// `skimage.transform.resize(img, (size, size, 3))` with its defaults (order 1,
    /// `mode='reflect'`, anti-aliasing when shrinking, clipping to the input's range).
    pub fn resize_like_skimage(&self, out_h: usize, out_w: usize) -> RgbF32 {
        if (out_h, out_w) == (self.height, self.width) {
            return self.clone();
        }
        let factors = [self.height as f64 / out_h as f64, self.width as f64 / out_w as f64];
        let anti_aliasing = out_h < self.height || out_w < self.width;
        let mut filtered = self.data.clone();
        if anti_aliasing {
            for (axis, &f) in factors.iter().enumerate() {
                let sigma = ((f - 1.0) / 2.0).max(0.0);
                if sigma > 1e-15 {
                    filtered = gaussian_filter_axis(&filtered, self.height, self.width, axis, sigma);
                }
            }
        }
        let rows = zoom_axis(self.height, out_h);
        let cols = zoom_axis(self.width, out_w);
        let (lo, hi) = self
            .data
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
        let mut data = Vec::with_capacity(out_h * out_w * 3);
        for &(r0, r1, tr) in &rows {
            for &(c0, c1, tc) in &cols {
                for ch in 0..3 {
                    let at = |r: usize, c: usize| filtered[(r * self.width + c) * 3 + ch] as f64;
                    let top = at(r0, c0) * (1.0 - tc) + at(r0, c1) * tc;
                    let bottom = at(r1, c0) * (1.0 - tc) + at(r1, c1) * tc;
                    let v = (top * (1.0 - tr) + bottom * tr) as f32;
                    data.push(v.clamp(lo, hi));
                }
            }
        }
        RgbF32 {
            height: out_h,
            width: out_w,
            data,
        }
    }

    /// The `(1, 3, H, W)` tensor the networks take.
    pub fn to_tensor(&self) -> Result<Tensor> {
        let plane = self.height * self.width;
        let mut chw = vec![0f32; 3 * plane];
        for (i, px) in self.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * plane + i] = px[c];
            }
        }
        Ok(Tensor::from_vec(chw, (1, 3, self.height, self.width), &Device::Cpu)?)
    }
}

/// scipy's `mirror` boundary: `-1 → 1`, `n → n - 2`.
fn mirror(i: isize, n: usize) -> usize {
    if n == 1 {
        return 0;
    }
    let period = 2 * (n as isize - 1);
    let mut i = i.rem_euclid(period);
    if i >= n as isize {
        i = period - i;
    }
    i as usize
}

/// `scipy.ndimage.gaussian_filter1d` (truncate 4, mirror edges) along rows (axis 0) or
/// columns (axis 1) of an `h × w × 3` image; the result is rounded to `f32` as scipy
/// stores each axis' pass in the input's dtype.
fn gaussian_filter_axis(img: &[f32], h: usize, w: usize, axis: usize, sigma: f64) -> Vec<f32> {
    let radius = (4.0 * sigma + 0.5) as isize;
    let weights: Vec<f64> = (-radius..=radius)
        .map(|x| (-0.5 / (sigma * sigma) * (x * x) as f64).exp())
        .collect();
    let total: f64 = weights.iter().sum();
    let weights: Vec<f64> = weights.iter().map(|v| v / total).collect();
    let mut out = vec![0f32; img.len()];
    let n = if axis == 0 { h } else { w };
    for r in 0..h {
        for c in 0..w {
            let pos = if axis == 0 { r } else { c } as isize;
            for ch in 0..3 {
                let mut acc = 0f64;
                for (k, wt) in weights.iter().enumerate() {
                    let j = mirror(pos + k as isize - radius, n);
                    let (rr, cc) = if axis == 0 { (j, c) } else { (r, j) };
                    acc += wt * img[(rr * w + cc) * 3 + ch] as f64;
                }
                out[(r * w + c) * 3 + ch] = acc as f32;
            }
        }
    }
    out
}

/// `scipy.ndimage.zoom(..., order=1, mode='mirror', grid_mode=True)` along one axis: for
/// each output index, the two source indices and the weight of the second.
fn zoom_axis(n_in: usize, n_out: usize) -> Vec<(usize, usize, f64)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let c = (o as f64 + 0.5) * scale - 0.5;
            let f = c.floor();
            (mirror(f as isize, n_in), mirror(f as isize + 1, n_in), c - f)
        })
        .collect()
}

/// `img_as_ubyte` of one rendered frame `(3, H, W)` in [0, 1]: packed RGB bytes.
pub fn frame_to_rgb8(frame: &Tensor) -> Result<(usize, usize, Vec<u8>)> {
    let (c, h, w) = frame.dims3()?;
    if c != 3 {
        return Err(RenderError::Input(format!("a frame has 3 channels, got {c}")));
    }
    let chw = frame.flatten_all()?.to_vec1::<f32>()?;
    let plane = h * w;
    let mut rgb = vec![0u8; 3 * plane];
    for i in 0..plane {
        for ch in 0..3 {
            // np.rint rounds half to even, as round_ties_even does.
            rgb[i * 3 + ch] = (chw[ch * plane + i] * 255.0).round_ties_even().clamp(0.0, 255.0) as u8;
        }
    }
    Ok((w, h, rgb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_matches_scipy() {
        let got: Vec<usize> = (-3..7).map(|i| mirror(i, 4)).collect();
        assert_eq!(got, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
    }

    #[test]
    fn same_size_is_identity_and_bytes_round_trip() {
        let rgb: Vec<u8> = (0..4 * 3 * 3).map(|v| (v * 7 % 256) as u8).collect();
        let img = RgbF32::from_rgb8(4, 3, &rgb).unwrap();
        assert_eq!(img.resize_like_skimage(3, 4), img);
        let t = img.to_tensor().unwrap().squeeze(0).unwrap();
        assert_eq!(frame_to_rgb8(&t).unwrap().2, rgb);
    }
}
