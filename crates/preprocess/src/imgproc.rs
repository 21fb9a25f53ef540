//! Image resampling bit-exact with the libraries the reference calls: OpenCV's `cv2.resize`
//! (`INTER_LINEAR`, 8-bit) and PIL's `Image.resize` (bicubic, Lanczos) and `Image.crop`.
//!
//! Why hand-written: the reference's crop, its 3DMM alignment and its landmark input all go through
//! these two libraries' fixed-point kernels, and the coefficients it extracts depend on every pixel.
//! No Rust crate reproduces either library's rounding (the `image` crate's and `fast_image_resize`'s
//! filters differ in support, normalisation and fixed-point precision), so both are written here from
//! their published algorithms and checked value for value against them (`tests/imgproc.rs`).
//!
//! Images are [`RgbImage`] (8-bit, interleaved, row-major), what both libraries see.

use image::RgbImage;
use rayon::prelude::*;

/// OpenCV's `INTER_RESIZE_COEF_BITS`: interpolation weights are integers in units of 1/2048.
const COEF_SCALE: f32 = 2048.0;

/// One output coordinate of a linear resize: the two source indices and their weights (1/2048).
#[derive(Clone, Copy, Debug)]
struct LinearTap {
    i0: usize,
    i1: usize,
    w0: i32,
    w1: i32,
}

/// The taps of `cv::resize(INTER_LINEAR)` along one axis. OpenCV computes the source position
/// `(d + 0.5) * scale - 0.5` in double, rounds it to float, and rounds the weights `1 - f` and `f`
/// (times 2048) half to even. Along x a position left of the first or right of the last pixel is
/// clamped with weight (1, 0); along y OpenCV 5 keeps the fractional weights and clamps only the row
/// indices (measured: this reproduces `cv2.resize` 5.0 exactly, the x rule makes no difference).
fn linear_taps(dst: usize, src: usize, clamp_weights: bool) -> Vec<LinearTap> {
    let inv_scale = dst as f64 / src as f64;
    let scale = 1.0 / inv_scale;
    let last = src as i64 - 1;
    (0..dst)
        .map(|d| {
            let mut f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            f -= s as f32;
            if clamp_weights {
                if s < 0 {
                    f = 0.0;
                    s = 0;
                }
                if s >= last {
                    f = 0.0;
                    s = last;
                }
            }
            LinearTap {
                i0: s.clamp(0, last) as usize,
                i1: (s + 1).clamp(0, last) as usize,
                w0: ((1.0 - f) * COEF_SCALE).round_ties_even() as i32,
                w1: (f * COEF_SCALE).round_ties_even() as i32,
            }
        })
        .collect()
}

/// `cv2.resize(img, (width, height))` with the default `INTER_LINEAR` on an 8-bit 3-channel image,
/// bit-exact with OpenCV 5 on x86 (SIMD path): a horizontal pass in exact integer arithmetic
/// (weights in 1/2048), then a vertical pass that drops 4 bits, multiplies by the 16-bit weights
/// keeping the high half, and rounds `(v + 2) >> 2`.
pub fn cv_resize_linear(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (dw, dh) = (width as usize, height as usize);
    if (sw, sh) == (dw, dh) || dw == 0 || dh == 0 || sw == 0 || sh == 0 {
        // OpenCV copies when the size is unchanged; degenerate sizes never reach it (callers check).
        return if (sw, sh) == (dw, dh) {
            src.clone()
        } else {
            RgbImage::new(width, height)
        };
    }
    let xt = linear_taps(dw, sw, true);
    let yt = linear_taps(dh, sh, false);
    let s = src.as_raw();
    // Horizontal pass, only for the rows the vertical pass reads.
    let mut needed = vec![false; sh];
    for t in &yt {
        needed[t.i0] = true;
        needed[t.i1] = true;
    }
    let rows: Vec<Option<Vec<i32>>> = (0..sh)
        .into_par_iter()
        .map(|y| {
            needed[y].then(|| {
                let row = &s[y * sw * 3..(y + 1) * sw * 3];
                let mut out = vec![0i32; dw * 3];
                for (dx, t) in xt.iter().enumerate() {
                    for c in 0..3 {
                        out[dx * 3 + c] = i32::from(row[t.i0 * 3 + c]) * t.w0 + i32::from(row[t.i1 * 3 + c]) * t.w1;
                    }
                }
                out
            })
        })
        .collect();
    let mut out = vec![0u8; dw * dh * 3];
    out.par_chunks_mut(dw * 3).zip(yt.par_iter()).for_each(|(o, t)| {
        let (Some(r0), Some(r1)) = (&rows[t.i0], &rows[t.i1]) else {
            return;
        };
        let (b0, b1) = (t.w0, t.w1);
        for ((o, &v0), &v1) in o.iter_mut().zip(r0).zip(r1) {
            // v_shr<4> + v_pack (saturating to i16) + v_mul_hi (high 16 bits of the product).
            let a = ((v0 >> 4).clamp(-32768, 32767) * b0) >> 16;
            let b = ((v1 >> 4).clamp(-32768, 32767) * b1) >> 16;
            // v_add on i16 saturates; v_rshr_pack_u<2> rounds and saturates to u8.
            let sum = (a + b).clamp(-32768, 32767);
            *o = ((sum + 2) >> 2).clamp(0, 255) as u8;
        }
    });
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

/// A PIL resampling filter (`Image.BICUBIC`, `Image.LANCZOS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PilFilter {
    /// Keys' cubic convolution with a = -0.5, support 2.
    Bicubic,
    /// Lanczos-3 (what PIL's old `ANTIALIAS` named).
    Lanczos,
}

impl PilFilter {
    fn support(self) -> f64 {
        match self {
            PilFilter::Bicubic => 2.0,
            PilFilter::Lanczos => 3.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            PilFilter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            PilFilter::Lanczos => {
                fn sinc(x: f64) -> f64 {
                    if x == 0.0 {
                        1.0
                    } else {
                        let x = x * std::f64::consts::PI;
                        x.sin() / x
                    }
                }
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

/// PIL's `PRECISION_BITS` for 8-bit images: coefficients are integers in units of 2^-22.
const PRECISION_BITS: u32 = 22;

/// PIL's `precompute_coeffs` + `normalize_coeffs_8bpc` for output indices `range` of one axis:
/// per output index, the first source index and the fixed-point weights.
fn pil_coeffs(
    in_size: usize,
    out_size: usize,
    filter: PilFilter,
    range: std::ops::Range<usize>,
) -> Vec<(usize, Vec<i32>)> {
    // PIL passes the box edges as C floats; for a whole-image box they are exact.
    let scale = in_size as f32 as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale;
    range
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // `(int)` truncates toward zero, as in C.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let n = xmax.saturating_sub(xmin);
            let mut k: Vec<f64> = (0..n)
                .map(|x| filter.eval((x as f64 + xmin as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().sum::<f64>();
            // PIL sums in order; `iter().sum()` on f64 is a sequential left fold too.
            if ww != 0.0 {
                for v in &mut k {
                    *v /= ww;
                }
            }
            let one = f64::from(1u32 << PRECISION_BITS);
            let fixed = k
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * one) as i32
                    } else {
                        (0.5 + v * one) as i32
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

/// PIL's `clip8`: the fixed-point sum back to 8 bits (arithmetic shift, clamped).
#[inline]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// `Image.resize((width, height), resample=filter)` then `.crop(window)`, computing only the
/// window's pixels (PIL's passes are separable and each output pixel depends only on its own
/// coordinates, so this equals resizing everything and cropping). `window` is
/// `(left, top, right, bottom)` in the resized image and may reach outside it (filled with zeros, as
/// `Image.crop` does).
pub fn pil_resize_crop(src: &RgbImage, width: u32, height: u32, filter: PilFilter, window: [i64; 4]) -> RgbImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (dw, dh) = (width as usize, height as usize);
    let [left, top, right, bottom] = window;
    let (ow, oh) = ((right - left).max(0) as usize, (bottom - top).max(0) as usize);
    let mut out = RgbImage::new(ow as u32, oh as u32);
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
        return out;
    }
    // The part of the window inside the resized image.
    let x0 = left.clamp(0, dw as i64) as usize;
    let x1 = right.clamp(0, dw as i64) as usize;
    let y0 = top.clamp(0, dh as i64) as usize;
    let y1 = bottom.clamp(0, dh as i64) as usize;
    if x0 >= x1 || y0 >= y1 {
        return out;
    }
    let need_h = dw != sw;
    let need_v = dh != sh;
    let s = src.as_raw();
    // Horizontal pass over every source row the vertical pass needs (PIL: horizontal first).
    let hcoef = need_h.then(|| pil_coeffs(sw, dw, filter, x0..x1));
    let vcoef = need_v.then(|| pil_coeffs(sh, dh, filter, y0..y1));
    let (ry0, ry1) = match &vcoef {
        Some(v) => (
            v.iter().map(|(m, _)| *m).min().unwrap_or(0),
            v.iter().map(|(m, k)| m + k.len()).max().unwrap_or(0),
        ),
        None => (y0, y1),
    };
    let cols = x1 - x0;
    let horiz: Vec<u8> = (ry0..ry1)
        .into_par_iter()
        .flat_map_iter(|y| {
            let row = &s[y * sw * 3..(y + 1) * sw * 3];
            let mut o = vec![0u8; cols * 3];
            match &hcoef {
                Some(h) => {
                    for (xi, (xmin, k)) in h.iter().enumerate() {
                        let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
                        for (j, &w) in k.iter().enumerate() {
                            let p = (xmin + j) * 3;
                            for c in 0..3 {
                                acc[c] += i32::from(row[p + c]) * w;
                            }
                        }
                        for c in 0..3 {
                            o[xi * 3 + c] = clip8(acc[c]);
                        }
                    }
                }
                None => o.copy_from_slice(&row[x0 * 3..x1 * 3]),
            }
            o
        })
        .collect();
    let stride = cols * 3;
    let rows: Vec<Vec<u8>> = (y0..y1)
        .into_par_iter()
        .map(|y| match &vcoef {
            Some(v) => {
                let (ymin, k) = &v[y - y0];
                let mut o = vec![0u8; stride];
                for (i, o) in o.iter_mut().enumerate() {
                    let mut acc = 1i32 << (PRECISION_BITS - 1);
                    for (j, &w) in k.iter().enumerate() {
                        acc += i32::from(horiz[(ymin + j - ry0) * stride + i]) * w;
                    }
                    *o = clip8(acc);
                }
                o
            }
            None => horiz[(y - ry0) * stride..(y - ry0 + 1) * stride].to_vec(),
        })
        .collect();
    let (ox, oy) = ((x0 as i64 - left) as usize, (y0 as i64 - top) as usize);
    let buf: &mut [u8] = &mut out;
    for (r, row) in rows.iter().enumerate() {
        let start = ((oy + r) * ow + ox) * 3;
        buf[start..start + stride].copy_from_slice(row);
    }
    out
}

/// `Image.resize((width, height), resample=filter)`.
pub fn pil_resize(src: &RgbImage, width: u32, height: u32, filter: PilFilter) -> RgbImage {
    if src.dimensions() == (width, height) {
        return src.clone();
    }
    pil_resize_crop(src, width, height, filter, [0, 0, i64::from(width), i64::from(height)])
}

/// `Image.crop((left, top, right, bottom))`: the window, zero where it leaves the image.
pub fn pil_crop(src: &RgbImage, window: [i64; 4]) -> RgbImage {
    let [left, top, right, bottom] = window;
    let (ow, oh) = ((right - left).max(0) as u32, (bottom - top).max(0) as u32);
    let mut out = RgbImage::new(ow, oh);
    let (w, h) = (i64::from(src.width()), i64::from(src.height()));
    for y in top.max(0)..bottom.min(h) {
        for x in left.max(0)..right.min(w) {
            out.put_pixel((x - left) as u32, (y - top) as u32, *src.get_pixel(x as u32, y as u32));
        }
    }
    out
}

/// numpy's `img[y0:y1, x0:x1]` for non-negative bounds: each end clamped to the image, empty when
/// the start passes the end.
pub fn slice(src: &RgbImage, x0: i64, y0: i64, x1: i64, y1: i64) -> RgbImage {
    let (w, h) = (i64::from(src.width()), i64::from(src.height()));
    let (x0, x1) = (x0.clamp(0, w), x1.clamp(0, w));
    let (y0, y1) = (y0.clamp(0, h), y1.clamp(0, h));
    let (ow, oh) = ((x1 - x0).max(0), (y1 - y0).max(0));
    let mut out = RgbImage::new(ow as u32, oh as u32);
    if ow == 0 || oh == 0 {
        return out;
    }
    let s = src.as_raw();
    let buf: &mut [u8] = &mut out;
    for r in 0..oh as usize {
        let from = ((y0 as usize + r) * w as usize + x0 as usize) * 3;
        buf[r * ow as usize * 3..(r + 1) * ow as usize * 3].copy_from_slice(&s[from..from + ow as usize * 3]);
    }
    out
}
