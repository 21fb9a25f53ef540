//! Paste-back for the `full` / `extfull` modes: the reference's `utils/paste_pic.py`, which resizes
//! each rendered frame to the face box and blends it into the full frame with OpenCV's
//! `seamlessClone(..., NORMAL_CLONE)` (Poisson image editing).
//!
//! Why hand-written: no lean Rust crate does Poisson blending, and OpenCV's particular set-up
//! matters for matching it: the all-255 mask loses its one-pixel border, the box's outer ring keeps
//! the frame's pixels (the Dirichlet boundary), a 3-pixel band inside it keeps the frame's gradients
//! (the mask is eroded against its parent's border), the rest of the interior takes the patch's, the
//! system is solved exactly with a discrete sine transform, and the result is truncated (not
//! rounded) to 8 bits. This module solves
//! the same system in f64 (via `rustfft`, already in the workspace for the audio front end), so it
//! differs from OpenCV's float32 FFT only where a value lies within float error of an integer
//! (`tests/paste.rs` measures the PSNR against `cv2.seamlessClone`).

use std::sync::Arc;

use image::RgbImage;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::crop::CropInfo;
use crate::imgproc::cv_resize_linear;
use crate::{PreprocessError, Result};

/// A discrete sine transform (type I) of length `n`, through an FFT of the odd extension
/// (length `2n + 2`), as OpenCV's `Cloning::dst` builds it.
struct Dst1 {
    n: usize,
    fft: Arc<dyn Fft<f64>>,
}

impl Dst1 {
    fn new(planner: &mut FftPlanner<f64>, n: usize) -> Self {
        Self {
            n,
            fft: planner.plan_fft_forward(2 * n + 2),
        }
    }

    /// `out[k] = Σ_j x[j] · sin(π (j + 1)(k + 1) / (n + 1))` for each of the `lines` lines of `data`
    /// (stride `stride`, element step `step`), in place.
    fn apply(&self, data: &mut [f64], lines: usize, line_stride: usize, step: usize) {
        let n = self.n;
        let m = 2 * n + 2;
        let mut buf = vec![Complex::new(0.0, 0.0); m];
        let mut scratch = vec![Complex::new(0.0, 0.0); self.fft.get_inplace_scratch_len()];
        for l in 0..lines {
            let base = l * line_stride;
            for v in buf.iter_mut() {
                *v = Complex::new(0.0, 0.0);
            }
            for j in 0..n {
                let x = data[base + j * step];
                buf[j + 1] = Complex::new(x, 0.0);
                buf[m - 1 - j] = Complex::new(-x, 0.0);
            }
            self.fft.process_with_scratch(&mut buf, &mut scratch);
            // FFT of the odd extension: Y_k = -2i Σ x_j sin(π k (j+1)/(n+1)).
            for k in 0..n {
                data[base + k * step] = -buf[k + 1].im / 2.0;
            }
        }
    }
}

/// Solves the 5-point Poisson equation on a `w × h` grid whose outer ring is fixed to `boundary`'s
/// values and whose interior has Laplacian `lap` (given on the whole grid): OpenCV's
/// `Cloning::poissonSolver` + `solve`. Returns the grid, the ring from `boundary`, the interior
/// truncated to 0..=255.
fn poisson_channel(boundary: &[f64], lap: &[f64], w: usize, h: usize, dx: &Dst1, dy: &Dst1) -> Vec<u8> {
    let (nx, ny) = (w - 2, h - 2);
    // Right-hand side: the guidance Laplacian minus the ring's contribution to each interior pixel.
    let mut f = vec![0f64; nx * ny];
    let on_ring = |x: usize, y: usize| x == 0 || y == 0 || x == w - 1 || y == h - 1;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let mut ring = 0.0;
            for (xx, yy) in [(x - 1, y), (x + 1, y), (x, y - 1), (x, y + 1)] {
                if on_ring(xx, yy) {
                    ring += boundary[yy * w + xx];
                }
            }
            f[(y - 1) * nx + (x - 1)] = lap[y * w + x] - ring;
        }
    }
    // Forward 2-D DST, divide by the eigenvalues, inverse (DST-I is its own inverse up to 2/(n+1)).
    dx.apply(&mut f, ny, nx, 1);
    dy.apply(&mut f, nx, 1, nx);
    for j in 0..ny {
        let ey = 2.0 * (std::f64::consts::PI * (j + 1) as f64 / (ny + 1) as f64).cos();
        for i in 0..nx {
            let ex = 2.0 * (std::f64::consts::PI * (i + 1) as f64 / (nx + 1) as f64).cos();
            f[j * nx + i] /= ex + ey - 4.0;
        }
    }
    dx.apply(&mut f, ny, nx, 1);
    dy.apply(&mut f, nx, 1, nx);
    let scale = 4.0 / ((nx + 1) as f64 * (ny + 1) as f64);
    let mut out = vec![0u8; w * h];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = if on_ring(x, y) {
                boundary[y * w + x] as u8
            } else {
                // OpenCV casts (truncates) instead of rounding.
                let v = f[(y - 1) * nx + (x - 1)] * scale;
                if v < 0.0 {
                    0
                } else if v > 255.0 {
                    255
                } else {
                    v as u8
                }
            }
        }
    }
    out
}

/// The divergence of OpenCV's guidance field at the box's interior. The field is the patch's forward
/// differences where the (eroded) mask is set and the frame's elsewhere. OpenCV erodes the mask
/// with a 3 × 3 kernel three times *in place in its parent image*, whose one-pixel zero border lies
/// just outside the box: so the mask is cleared within 3 pixels of the box's edges, and there the
/// frame's own gradients are kept. Differences at the last row/column reflect (`BORDER_REFLECT_101`).
fn guidance_laplacian(frame: &[f64], patch: &[f64], w: usize, h: usize) -> Vec<f64> {
    let inside = |x: usize, y: usize| x >= 3 && y >= 3 && x + 4 <= w && y + 4 <= h;
    let at = |img: &[f64], x: usize, y: usize| img[y * w + x];
    // Forward differences with reflect-101 past the last column/row.
    let gx = |img: &[f64], x: usize, y: usize| {
        let next = if x + 1 < w { x + 1 } else { w - 2 };
        at(img, next, y) - at(img, x, y)
    };
    let gy = |img: &[f64], x: usize, y: usize| {
        let next = if y + 1 < h { y + 1 } else { h - 2 };
        at(img, x, next) - at(img, x, y)
    };
    let field_x = |x: usize, y: usize| if inside(x, y) { gx(patch, x, y) } else { gx(frame, x, y) };
    let field_y = |x: usize, y: usize| if inside(x, y) { gy(patch, x, y) } else { gy(frame, x, y) };
    let mut lap = vec![0f64; w * h];
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            lap[y * w + x] = field_x(x, y) - field_x(x - 1, y) + field_y(x, y) - field_y(x, y - 1);
        }
    }
    lap
}

/// `cv2.seamlessClone(src, dst, mask=255 everywhere, center, cv2.NORMAL_CLONE)`.
///
/// As OpenCV does, the mask's one-pixel border is dropped, so `src[1..h-1, 1..w-1]` is placed with
/// its top-left at `center - ((w - 2) / 2, (h - 2) / 2)`; the placed box's ring keeps `dst`'s pixels,
/// a 3-pixel band inside it keeps `dst`'s gradients and the rest takes `src`'s. OpenCV rejects a box
/// reaching outside `dst`; here it is an error too.
pub fn seamless_clone(src: &RgbImage, dst: &RgbImage, center: [i64; 2]) -> Result<RgbImage> {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    if sw < 5 || sh < 5 {
        return Err(PreprocessError::Geometry(format!(
            "seamless clone: the pasted picture is {sw}×{sh}; it needs at least 5×5 pixels"
        )));
    }
    let (w, h) = (sw - 2, sh - 2);
    let x0 = center[0] - (w / 2) as i64;
    let y0 = center[1] - (h / 2) as i64;
    let (dw, dh) = (i64::from(dst.width()), i64::from(dst.height()));
    if x0 < 0 || y0 < 0 || x0 + w as i64 > dw || y0 + h as i64 > dh {
        return Err(PreprocessError::Geometry(format!(
            "seamless clone: the {w}×{h} box at ({x0}, {y0}) reaches outside the {dw}×{dh} frame"
        )));
    }
    let (x0, y0) = (x0 as usize, y0 as usize);
    let mut planner = FftPlanner::new();
    let dx = Dst1::new(&mut planner, w - 2);
    let dy = Dst1::new(&mut planner, h - 2);
    let s = src.as_raw();
    let d = dst.as_raw();
    let mut out = dst.clone();
    let channels: Vec<Vec<u8>> = (0..3)
        .map(|c| {
            // The patch (src without its border) and the frame's box, as f64 planes.
            let patch: Vec<f64> = (0..h)
                .flat_map(|y| (0..w).map(move |x| f64::from(s[((y + 1) * sw + x + 1) * 3 + c])))
                .collect();
            let boundary: Vec<f64> = (0..h)
                .flat_map(|y| (0..w).map(move |x| f64::from(d[((y + y0) * dst.width() as usize + x + x0) * 3 + c])))
                .collect();
            let lap = guidance_laplacian(&boundary, &patch, w, h);
            poisson_channel(&boundary, &lap, w, h, &dx, &dy)
        })
        .collect();
    let buf: &mut [u8] = &mut out;
    let stride = dst.width() as usize;
    for y in 0..h {
        for x in 0..w {
            for (c, ch) in channels.iter().enumerate() {
                buf[((y + y0) * stride + x + x0) * 3 + c] = ch[y * w + x];
            }
        }
    }
    Ok(out)
}

/// `paste_pic` for one rendered frame: resize it to the face box of `info` (`cv2.resize`), and
/// blend it into `full` (the source frame) at the box centre.
///
/// The box is the quad box, or the crop box in the `ext*` modes (`extended_crop`), as the
/// reference's `paste_pic` takes it; like it, this assumes the frame was not shrunk (`rsize` equal to
/// the source size), which holds for any face under ~2000 pixels.
pub fn paste_back(full: &RgbImage, rendered: &RgbImage, info: &CropInfo) -> Result<RgbImage> {
    let [ox1, oy1, ox2, oy2] = info.paste_box();
    let (bw, bh) = (ox2 - ox1, oy2 - oy1);
    if bw <= 0 || bh <= 0 {
        return Err(PreprocessError::Geometry(format!(
            "paste-back: the face box {:?} is empty",
            info.paste_box()
        )));
    }
    let patch = cv_resize_linear(rendered, bw as u32, bh as u32);
    seamless_clone(&patch, full, [(ox1 + ox2).div_euclid(2), (oy1 + oy2).div_euclid(2)])
}
