//! The OpenCV 5 calls facexlib's `FaceRestoreHelper` makes, reproduced to the bit where that is possible:
//! `estimateAffinePartial2D(method=LMEDS)`, `invertAffineTransform`, `warpAffine` (8-bit 3-channel and
//! 64-bit 1-channel, bilinear), `resize(INTER_LANCZOS4)` (8-bit) and `GaussianBlur((101, 101), 11)` (64-bit).
//!
//! Why hand-written: the enhanced frame is `mask * face + (1 - mask) * background` truncated to 8 bits, so
//! every rounding step of these calls shows in the output, and no Rust image crate follows OpenCV's
//! arithmetic (its fixed-point Lanczos weights, the 1/32-pixel grid of its 64-bit remap, the fused
//! multiply-adds of its AVX2 8-bit warp and its row filter). Each function states the OpenCV code path it
//! follows; all are checked value for value against `cv2` 5.0 in `tests/cv.rs`.
//!
//! Images are [`RgbImage`]s; OpenCV sees BGR, which only matters for border colours (given here in the
//! image's own channel order).

use image::RgbImage;
use rayon::prelude::*;

/// A 2×3 affine matrix `[[a, b, c], [d, e, f]]` mapping `(x, y)` to `(a x + b y + c, d x + e y + f)`.
pub type Affine = [[f64; 3]; 2];

// ---------------------------------------------------------------- fused multiply-add dispatch

/// Runs `f` in a function compiled with the FMA instruction set when the CPU has it, so that the
/// `mul_add`s inside become single instructions (they are exact either way: without the feature,
/// `mul_add` calls the C library's correctly rounded `fma`, only slower).
#[inline]
fn with_fma<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "fma")]
        fn fast<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports FMA (checked just above), the only requirement of `fast`.
            return unsafe { fast(f) };
        }
    }
    f()
}

// ---------------------------------------------------------------- affine matrices

/// `cv2.invertAffineTransform(m)` (and the inversion `warpAffine` does internally): the 2×2 inverse by its
/// determinant, in double, in OpenCV's order of operations. A singular matrix gives zeros, as there.
pub fn invert_affine_transform(m: &Affine) -> Affine {
    let d = m[0][0] * m[1][1] - m[0][1] * m[1][0];
    let d = if d != 0.0 { 1.0 / d } else { 0.0 };
    let a11 = m[1][1] * d;
    let a22 = m[0][0] * d;
    let a12 = -m[0][1] * d;
    let a21 = -m[1][0] * d;
    let b1 = -a11 * m[0][2] - a12 * m[1][2];
    let b2 = -a21 * m[0][2] - a22 * m[1][2];
    [[a11, a12, b1], [a21, a22, b2]]
}

/// OpenCV's `cv::RNG` (multiply-with-carry), which its LMedS estimator seeds with `(uint64)-1`.
struct CvRng(u64);

impl CvRng {
    fn next(&mut self) -> u32 {
        self.0 = u64::from(self.0 as u32)
            .wrapping_mul(4_164_903_690)
            .wrapping_add(self.0 >> 32);
        self.0 as u32
    }

    /// `RNG::uniform(a, b)` for `0 <= a < b`.
    fn uniform(&mut self, a: u32, b: u32) -> u32 {
        a + self.next() % (b - a)
    }
}

/// `RANSACUpdateNumIters(p, ep, model_points, max_iters)`.
fn ransac_update_num_iters(p: f64, ep: f64, model_points: i32, max_iters: i32) -> i32 {
    let p = p.clamp(0.0, 1.0);
    let ep = ep.clamp(0.0, 1.0);
    let num = (1.0 - p).max(f64::MIN_POSITIVE);
    let denom = 1.0 - (1.0 - ep).powi(model_points);
    if denom < f64::MIN_POSITIVE {
        return 0;
    }
    let (num, denom) = (num.ln(), denom.ln());
    if denom >= 0.0 || -num >= f64::from(max_iters) * -denom {
        max_iters
    } else {
        (num / denom).round_ties_even() as i32
    }
}

/// `AffinePartial2DEstimatorCallback::runKernel`: the similarity through two point pairs, or `None` when the
/// two source points coincide.
fn similarity_from_two(from: [[f32; 2]; 2], to: [[f32; 2]; 2]) -> Option<Affine> {
    let (x1, y1, x2, y2) = (
        f64::from(from[0][0]),
        f64::from(from[0][1]),
        f64::from(from[1][0]),
        f64::from(from[1][1]),
    );
    let (cx1, cy1, cx2, cy2) = (
        f64::from(to[0][0]),
        f64::from(to[0][1]),
        f64::from(to[1][0]),
        f64::from(to[1][1]),
    );
    let d = 1.0 / ((x1 - x2) * (x1 - x2) + (y1 - y2) * (y1 - y2));
    if !d.is_finite() {
        return None;
    }
    let s0 = d * ((cx1 - cx2) * (x1 - x2) + (cy1 - cy2) * (y1 - y2));
    let s1 = d * ((cy1 - cy2) * (x1 - x2) - (cx1 - cx2) * (y1 - y2));
    let s2 =
        d * ((cy1 - cy2) * (x1 * y2 - x2 * y1) - (cx1 * y2 - cx2 * y1) * (y1 - y2) - (cx1 * x2 - cx2 * x1) * (x1 - x2));
    let s3 = d
        * (-(cx1 - cx2) * (x1 * y2 - x2 * y1) - (cy1 * x2 - cy2 * x1) * (x1 - x2) - (cy1 * y2 - cy2 * y1) * (y1 - y2));
    Some([[s0, -s1, s2], [s1, s0, s3]])
}

/// `Affine2DEstimatorCallback::computeError`: squared reprojection errors, in `f32` as OpenCV computes them.
fn reprojection_errors(m: &Affine, from: &[[f32; 2]], to: &[[f32; 2]]) -> Vec<f32> {
    let f = [
        m[0][0] as f32,
        m[0][1] as f32,
        m[0][2] as f32,
        m[1][0] as f32,
        m[1][1] as f32,
        m[1][2] as f32,
    ];
    from.iter()
        .zip(to)
        .map(|(p, t)| {
            let a = f[0] * p[0] + f[1] * p[1] + f[2] - t[0];
            let b = f[3] * p[0] + f[4] * p[1] + f[5] - t[1];
            a * a + b * b
        })
        .collect()
}

/// The least-squares similarity (`x' = a x - b y + tx`, `y' = b x + a y + ty`) through the given pairs, in
/// double, by the closed form on centred coordinates.
fn least_squares_similarity(from: &[[f32; 2]], to: &[[f32; 2]]) -> Option<Affine> {
    let n = from.len() as f64;
    let mean = |pts: &[[f32; 2]], k: usize| pts.iter().map(|p| f64::from(p[k])).sum::<f64>() / n;
    let (mx, my, tx, ty) = (mean(from, 0), mean(from, 1), mean(to, 0), mean(to, 1));
    let (mut sxx, mut sa, mut sb) = (0.0, 0.0, 0.0);
    for (p, q) in from.iter().zip(to) {
        let (x, y) = (f64::from(p[0]) - mx, f64::from(p[1]) - my);
        let (u, v) = (f64::from(q[0]) - tx, f64::from(q[1]) - ty);
        sxx += x * x + y * y;
        sa += x * u + y * v;
        sb += x * v - y * u;
    }
    if sxx <= 0.0 || !sxx.is_finite() {
        return None;
    }
    let (a, b) = (sa / sxx, sb / sxx);
    Some([[a, -b, tx - (a * mx - b * my)], [b, a, ty - (b * mx + a * my)]])
}

/// `cv2.estimateAffinePartial2D(from, to, method=cv2.LMEDS)` with its defaults (confidence 0.99, at most
/// 2000 iterations, 10 refinement iterations): the similarity transform and the inlier mask, or `None` when
/// OpenCV returns no matrix (fewer than two points, or no usable pair).
///
/// The robust stage is OpenCV's exactly: the same random pairs (its generator and seed), the same `f32`
/// errors, least median, inlier threshold `2.5 · 1.4826 · (1 + 5 / (n − 2)) · √median`. OpenCV then refines
/// on the inliers with its Levenberg–Marquardt solver (10 iterations, geodesic acceleration); the problem is
/// linear, so this converges to the least-squares similarity, which is computed here in closed form. The two
/// agree to about 1e-5 px typically and 2e-3 px at worst (on 2000 random 5-point sets): the solver stops on
/// a relative-energy criterion, and its geodesic step amplifies rounding noise by 1e8, so OpenCV's own last
/// digits are noise. The warped face can then differ by one level in a few pixels.
pub fn estimate_affine_partial_2d(from: &[[f32; 2]], to: &[[f32; 2]]) -> Option<(Affine, Vec<bool>)> {
    const MODEL_POINTS: usize = 2;
    let count = from.len();
    if count != to.len() || count < MODEL_POINTS {
        return None;
    }
    if count == MODEL_POINTS {
        let m = similarity_from_two([from[0], from[1]], [to[0], to[1]])?;
        return Some((m, vec![true; count]));
    }
    let niters = ransac_update_num_iters(0.99, 0.45, MODEL_POINTS as i32, 2000).max(3);
    let mut rng = CvRng(u64::MAX);
    let mut best: Option<(Affine, f64)> = None;
    for _ in 0..niters {
        // getSubset: two distinct indices (the collinearity check never rejects two points).
        let i0 = rng.uniform(0, count as u32) as usize;
        let i1 = loop {
            let i = rng.uniform(0, count as u32) as usize;
            if i != i0 {
                break i;
            }
        };
        let Some(model) = similarity_from_two([from[i0], from[i1]], [to[i0], to[i1]]) else {
            continue;
        };
        let mut err = reprojection_errors(&model, from, to);
        // std::nth_element at count / 2; a NaN median never wins.
        err.sort_by(f32::total_cmp);
        let median = f64::from(err[count / 2]);
        if median < best.map_or(f64::MAX, |b| b.1) {
            best = Some((model, median));
        }
    }
    let (model, median) = best?;
    let sigma = (2.5 * 1.4826 * (1.0 + 5.0 / (count - MODEL_POINTS) as f64) * median.sqrt()).max(0.001);
    let threshold = (sigma * sigma) as f32;
    let inliers: Vec<bool> = reprojection_errors(&model, from, to)
        .iter()
        .map(|&e| e <= threshold)
        .collect();
    if inliers.iter().filter(|&&i| i).count() < MODEL_POINTS {
        return None;
    }
    let (f, t): (Vec<[f32; 2]>, Vec<[f32; 2]>) = from
        .iter()
        .zip(to)
        .zip(&inliers)
        .filter(|(_, i)| **i)
        .map(|((p, q), _)| (*p, *q))
        .unzip();
    let refined = least_squares_similarity(&f, &t).unwrap_or(model);
    Some((refined, inliers))
}

// ---------------------------------------------------------------- warpAffine

/// `cv2.warpAffine(src, m, (width, height), flags=INTER_LINEAR, borderMode=BORDER_CONSTANT,
/// borderValue=border)` on an 8-bit 3-channel image, as OpenCV 5 computes it on an AVX2 machine
/// (`WarpAffineLinearInvoker_8UC3`): the inverse matrix in double, cast to `f32`; per row, source
/// coordinates `fma(m0, x, f32(y·m1) + m2)` for the SIMD blocks of 16 pixels (`x < width − 16`) and
/// `fma(x, m0, y·m1) + m2` for the rest; bilinear weights from the fractional parts; the two horizontal
/// and the vertical interpolation each one fused multiply-add in `f32`; rounding half to even, saturated.
/// Taps outside the source read `border`.
pub fn warp_affine_u8c3(src: &RgbImage, m: &Affine, width: u32, height: u32, border: [u8; 3]) -> RgbImage {
    const LANES: i64 = 16;
    let inv = invert_affine_transform(m);
    let mf = [
        inv[0][0] as f32,
        inv[0][1] as f32,
        inv[0][2] as f32,
        inv[1][0] as f32,
        inv[1][1] as f32,
        inv[1][2] as f32,
    ];
    let (sw, sh) = (i64::from(src.width()), i64::from(src.height()));
    let (dw, dh) = (width as usize, height as usize);
    let mut vector_end = 0i64;
    while vector_end < dw as i64 - LANES {
        vector_end += LANES;
    }
    let s = src.as_raw();
    let bval = [f32::from(border[0]), f32::from(border[1]), f32::from(border[2])];
    let mut out = vec![0u8; dw * dh * 3];
    with_fma(|| {
        out.par_chunks_mut((dw * 3).max(1)).enumerate().for_each(|(y, row)| {
            let yf = y as f32;
            let (ym1, ym4) = (yf * mf[1], yf * mf[4]);
            let (mx, my) = (ym1 + mf[2], ym4 + mf[5]);
            for x in 0..dw {
                let xf = x as f32;
                let (sx, sy) = if (x as i64) < vector_end {
                    (mf[0].mul_add(xf, mx), mf[3].mul_add(xf, my))
                } else {
                    (xf.mul_add(mf[0], ym1) + mf[2], xf.mul_add(mf[3], ym4) + mf[5])
                };
                let px = &mut row[x * 3..x * 3 + 3];
                // cvFloor; NaN and out-of-range coordinates saturate, and then read the border.
                let (ix, iy) = (sx.floor() as i64, sy.floor() as i64);
                if ix < -1 || ix >= sw || iy < -1 || iy >= sh {
                    px.copy_from_slice(&border);
                    continue;
                }
                let (a, b) = (sx - ix as f32, sy - iy as f32);
                let tap = |dy: i64, dx: i64, c: usize| -> f32 {
                    let (xx, yy) = (ix + dx, iy + dy);
                    if (0..sw).contains(&xx) && (0..sh).contains(&yy) {
                        f32::from(s[((yy * sw + xx) * 3) as usize + c])
                    } else {
                        bval[c]
                    }
                };
                for (c, o) in px.iter_mut().enumerate() {
                    let (p00, p01, p10, p11) = (tap(0, 0, c), tap(0, 1, c), tap(1, 0, c), tap(1, 1, c));
                    let v0 = a.mul_add(p01 - p00, p00);
                    let v1 = a.mul_add(p11 - p10, p10);
                    let v = b.mul_add(v1 - v0, v0);
                    *o = v.round_ties_even().clamp(0.0, 255.0) as u8;
                }
            }
        });
    });
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

/// A single-channel `f64` image, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct GrayF64 {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height` values.
    pub data: Vec<f64>,
}

impl GrayF64 {
    /// An image of zeros.
    pub fn zeros(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            data: vec![0.0; width * height],
        }
    }
}

/// `cv2.warpAffine(src, m, (width, height), flags=INTER_LINEAR)` (facexlib passes `flags=3`, `INTER_AREA`,
/// which `warpAffine` treats as linear) on a 64-bit 1-channel image, border constant 0: OpenCV's generic
/// remap path. Source coordinates on a 1/32-pixel grid in fixed point (`AB_BITS = 10`, rounding half to
/// even, `+16` before the shift), bilinear weights from OpenCV's `f32` table for that grid, the four taps
/// summed in double in the order `00, 01, 10, 11`.
pub fn warp_affine_f64(src: &GrayF64, m: &Affine, width: usize, height: usize) -> GrayF64 {
    const AB_SCALE: f64 = 1024.0;
    const ROUND_DELTA: i64 = 16;
    let inv = invert_affine_transform(m);
    let (sw, sh) = (src.width as i64, src.height as i64);
    let adelta: Vec<i64> = (0..width)
        .map(|x| (inv[0][0] * x as f64 * AB_SCALE).round_ties_even() as i64)
        .collect();
    let bdelta: Vec<i64> = (0..width)
        .map(|x| (inv[1][0] * x as f64 * AB_SCALE).round_ties_even() as i64)
        .collect();
    // initInterTab1D(INTER_LINEAR) and the 2-D products, in f32.
    let scale = 1.0f32 / 32.0;
    let tab: Vec<[f32; 2]> = (0..32).map(|i| [1.0 - i as f32 * scale, i as f32 * scale]).collect();
    let mut out = GrayF64::zeros(width, height);
    out.data.par_chunks_mut(width.max(1)).enumerate().for_each(|(y, row)| {
        let x0 = ((inv[0][1] * y as f64 + inv[0][2]) * AB_SCALE).round_ties_even() as i64 + ROUND_DELTA;
        let y0 = ((inv[1][1] * y as f64 + inv[1][2]) * AB_SCALE).round_ties_even() as i64 + ROUND_DELTA;
        for (x, o) in row.iter_mut().enumerate() {
            let xx = (x0 + adelta[x]) >> 5;
            let yy = (y0 + bdelta[x]) >> 5;
            let (sx, sy) = (xx >> 5, yy >> 5);
            let (fx, fy) = ((xx & 31) as usize, (yy & 31) as usize);
            if sx >= sw || sx + 1 < 0 || sy >= sh || sy + 1 < 0 {
                *o = 0.0;
                continue;
            }
            let w = [
                f64::from(tab[fy][0] * tab[fx][0]),
                f64::from(tab[fy][0] * tab[fx][1]),
                f64::from(tab[fy][1] * tab[fx][0]),
                f64::from(tab[fy][1] * tab[fx][1]),
            ];
            let tap = |dy: i64, dx: i64| -> f64 {
                let (px, py) = (sx + dx, sy + dy);
                if (0..sw).contains(&px) && (0..sh).contains(&py) {
                    src.data[(py * sw + px) as usize]
                } else {
                    0.0
                }
            };
            *o = tap(0, 0) * w[0] + tap(0, 1) * w[1] + tap(1, 0) * w[2] + tap(1, 1) * w[3];
        }
    });
    out
}

// ---------------------------------------------------------------- resize (Lanczos)

/// OpenCV's `interpolateLanczos4(x)`: the 8 weights at offset `x` in `[0, 1)`, normalised in `f32`.
fn lanczos4(x: f32) -> [f32; 8] {
    const S45: f64 = std::f64::consts::FRAC_1_SQRT_2;
    const CS: [[f64; 2]; 8] = [
        [1.0, 0.0],
        [-S45, -S45],
        [0.0, 1.0],
        [S45, -S45],
        [-1.0, 0.0],
        [S45, S45],
        [0.0, -1.0],
        [-S45, S45],
    ];
    let y0 = -f64::from(x + 3.0) * std::f64::consts::PI * 0.25;
    let (s0, c0) = (y0.sin(), y0.cos());
    let mut c = [0f32; 8];
    let mut sum = 0f32;
    for (i, ci) in c.iter_mut().enumerate() {
        let y0i = x + 3.0 - i as f32;
        *ci = if y0i.abs() >= 1e-6 {
            let y = -f64::from(y0i) * std::f64::consts::PI * 0.25;
            ((CS[i][0] * s0 + CS[i][1] * c0) / (y * y)) as f32
        } else {
            1e30
        };
        sum += *ci;
    }
    let inv = 1.0 / sum;
    for ci in &mut c {
        *ci *= inv;
    }
    c
}

/// Per output coordinate: the 8 source indices (clamped to the edge) and fixed-point weights (1/2048).
fn lanczos_taps(dst: usize, src: usize) -> Vec<([usize; 8], [i32; 8])> {
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let s = f.floor();
            let frac = f - s;
            let s = s as i64;
            let w = lanczos4(frac);
            let mut idx = [0usize; 8];
            let mut iw = [0i32; 8];
            for k in 0..8 {
                idx[k] = (s - 3 + k as i64).clamp(0, src as i64 - 1) as usize;
                iw[k] = (w[k] * 2048.0).round_ties_even().clamp(-32768.0, 32767.0) as i32;
            }
            (idx, iw)
        })
        .collect()
}

/// `cv2.resize(src, (width, height), interpolation=cv2.INTER_LANCZOS4)` on an 8-bit 3-channel image:
/// OpenCV's generic separable path with 11-bit integer weights (`saturate_cast<short>(w * 2048)`), edge
/// pixels replicated, integer sums and `(v + 2^21) >> 22` with saturation.
pub fn resize_lanczos4_u8c3(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (dw, dh) = (width as usize, height as usize);
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
        return RgbImage::new(width, height);
    }
    let tx = lanczos_taps(dw, sw);
    let ty = lanczos_taps(dh, sh);
    let s = src.as_raw();
    // Horizontal pass over every source row: integer sums.
    let mut rows = vec![0i64; sh * dw * 3];
    rows.par_chunks_mut(dw * 3).enumerate().for_each(|(y, row)| {
        let line = &s[y * sw * 3..(y + 1) * sw * 3];
        for (x, (idx, w)) in tx.iter().enumerate() {
            for c in 0..3 {
                row[x * 3 + c] = (0..8).map(|k| i64::from(line[idx[k] * 3 + c]) * i64::from(w[k])).sum();
            }
        }
    });
    let mut out = vec![0u8; dw * dh * 3];
    out.par_chunks_mut(dw * 3).enumerate().for_each(|(y, orow)| {
        let (idx, w) = &ty[y];
        for (i, o) in orow.iter_mut().enumerate() {
            let v: i64 = (0..8).map(|k| rows[idx[k] * dw * 3 + i] * i64::from(w[k])).sum();
            *o = ((v + (1 << 21)) >> 22).clamp(0, 255) as u8;
        }
    });
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

// ---------------------------------------------------------------- GaussianBlur

/// `cv2.getGaussianKernel(101, 11, cv2.CV_64F)`, the kernel of facexlib's `GaussianBlur(mask, (101, 101),
/// 11)`: the first 51 values (the kernel is symmetric), as IEEE bit patterns. OpenCV computes it bit-exactly
/// with its own soft-float `exp`, which the C library's `exp` does not reproduce in the last bit, so the
/// values are taken from OpenCV (`tests/cv.rs` checks them against the golden).
const GAUSS_101_11: [u64; 51] = [
    0x3eb3d9320997c25b,
    0x3ebde17a7bf38417,
    0x3ec64e8ed67fb58c,
    0x3ed08402ac73792f,
    0x3ed8412e6ca94be9,
    0x3ee1a9d258b611ac,
    0x3ee983ce6e2d8b48,
    0x3ef246cb61c4022c,
    0x3ef9f7c2e4f210b2,
    0x3f024bcaeb80f233,
    0x3f0991c4ec5d6f8e,
    0x3f11b85423e811ab,
    0x3f185bc1908d022e,
    0x3f209aa455fcb2a8,
    0x3f2673421a12de51,
    0x3f2e1add23bf2656,
    0x3f3404c85f10d7b6,
    0x3f3a677dc2924522,
    0x3f41452178d2dfc5,
    0x3f4667cb15ebc175,
    0x3f4cd4230959cfab,
    0x3f5264dd24853bf3,
    0x3f57477bd22f281b,
    0x3f5d382d89d4adaf,
    0x3f622fd1739f5a24,
    0x3f66740df70cfe47,
    0x3f6b7e1e31cfeb7c,
    0x3f70b165029af448,
    0x3f741ab7619e5c97,
    0x3f78037efebc0c46,
    0x3f7c727155fbb708,
    0x3f80b5f5ae5abc27,
    0x3f8378ad7eba8e32,
    0x3f8680578de9fdf6,
    0x3f89c9eb782d6717,
    0x3f8d502d0b5254c3,
    0x3f9085c4a7f64ae8,
    0x3f927904729ecf7b,
    0x3f947bada6c7b599,
    0x3f96867edea4945b,
    0x3f98913f51fae714,
    0x3f9a92eec6952cc7,
    0x3f9c82029c32f07f,
    0x3f9e54ae009f9925,
    0x3fa0009941ac006f,
    0x3fa0bf1ac50126f9,
    0x3fa1618b501c3bf9,
    0x3fa1e421299af7d2,
    0x3fa243bea305ece7,
    0x3fa27e11b8751b9c,
    0x3fa291ac05d51e68,
];

/// The 101 taps of [`GAUSS_101_11`].
pub fn gaussian_kernel_101_11() -> [f64; 101] {
    let mut k = [0f64; 101];
    for (i, v) in k.iter_mut().enumerate() {
        *v = f64::from_bits(GAUSS_101_11[i.min(100 - i)]);
    }
    k
}

/// `BORDER_REFLECT_101` (`gfedcb|abcdefgh|gfedcba`).
fn reflect_101(i: i64, n: i64) -> usize {
    if n == 1 {
        return 0;
    }
    let mut i = i;
    while i < 0 || i >= n {
        i = if i < 0 { -i } else { 2 * n - 2 - i };
    }
    i as usize
}

/// `cv2.GaussianBlur(src, (101, 101), 11)` on a 64-bit 1-channel image (border `REFLECT_101`), as OpenCV 5
/// computes it: the row filter sums taps left to right with fused multiply-adds, starting from
/// `k[0] · s[x − 50]`; the column filter uses the kernel's symmetry, `k[50] · s[y] + Σ k[50 + j] · (s[y + j]
/// + s[y − j])`, with separate multiplies and adds.
pub fn gaussian_blur_101_11(src: &GrayF64) -> GrayF64 {
    const R: usize = 50;
    let k = gaussian_kernel_101_11();
    let (w, h) = (src.width, src.height);
    if w == 0 || h == 0 {
        return src.clone();
    }
    let mut tmp = vec![0f64; w * h];
    with_fma(|| {
        tmp.par_chunks_mut(w).enumerate().for_each(|(y, row)| {
            let line = &src.data[y * w..(y + 1) * w];
            // The row with its border, as OpenCV's filter engine lays it out.
            let ext: Vec<f64> = (0..w + 2 * R)
                .map(|i| line[reflect_101(i as i64 - R as i64, w as i64)])
                .collect();
            for (x, o) in row.iter_mut().enumerate() {
                let taps = &ext[x..x + 2 * R + 1];
                let mut s = k[0] * taps[0];
                for j in 1..=2 * R {
                    s = k[j].mul_add(taps[j], s);
                }
                *o = s;
            }
        });
    });
    let rows: Vec<Vec<usize>> = (0..h)
        .map(|y| {
            (0..=2 * R)
                .map(|j| reflect_101(y as i64 + j as i64 - R as i64, h as i64))
                .collect()
        })
        .collect();
    let mut out = GrayF64::zeros(w, h);
    out.data.par_chunks_mut(w).enumerate().for_each(|(y, orow)| {
        let r = &rows[y];
        let center = &tmp[r[R] * w..(r[R] + 1) * w];
        for (x, o) in orow.iter_mut().enumerate() {
            let mut s = k[R] * center[x];
            for j in 1..=R {
                s += k[R + j] * (tmp[r[R + j] * w + x] + tmp[r[R - j] * w + x]);
            }
            *o = s;
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_matches_opencv_first_draws() {
        // cv::RNG((uint64)-1).next(): state = 0xffffffff * 4164903690 + 0xffffffff.
        let mut r = CvRng(u64::MAX);
        let expect = (0xffff_ffffu64 * 4_164_903_690 + 0xffff_ffff) as u32;
        assert_eq!(r.next(), expect);
    }

    #[test]
    fn lmeds_iterations_are_opencvs() {
        assert_eq!(ransac_update_num_iters(0.99, 0.45, 2, 2000), 13);
    }

    #[test]
    fn least_squares_recovers_an_exact_similarity() {
        let m: Affine = [[0.8, -0.3, 12.0], [0.3, 0.8, -7.0]];
        let from = [[10.0f32, 20.0], [40.0, 22.0], [25.0, 35.0], [14.0, 50.0], [38.0, 49.0]];
        let to: Vec<[f32; 2]> = from
            .iter()
            .map(|p| {
                let (x, y) = (f64::from(p[0]), f64::from(p[1]));
                [
                    (m[0][0] * x + m[0][1] * y + m[0][2]) as f32,
                    (m[1][0] * x + m[1][1] * y + m[1][2]) as f32,
                ]
            })
            .collect();
        let (est, inl) = estimate_affine_partial_2d(&from, &to).expect("a similarity");
        assert!(inl.iter().all(|&i| i));
        for r in 0..2 {
            for c in 0..3 {
                assert!((est[r][c] - m[r][c]).abs() < 1e-4, "{est:?}");
            }
        }
    }

    #[test]
    fn coincident_points_give_no_matrix() {
        let p = [[5.0f32, 5.0]; 3];
        assert!(estimate_affine_partial_2d(&p, &p).is_none());
    }
}
