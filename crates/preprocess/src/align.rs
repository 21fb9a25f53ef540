//! `align_img` of the reference's `face3d/util/preprocess.py` (from Deep3DFaceRecon): the five-point
//! similarity fit of the landmarks to the standard 3-D face (`POS`), then the image scaled and cut to
//! the 224 × 224 input of the reconstruction network (`resize_n_crop_img`, PIL bicubic).

use image::RgbImage;

use crate::imgproc::{PilFilter, pil_resize_crop};
use crate::landmarks::Landmarks68;
use crate::{PreprocessError, Result};

/// The reconstruction network's input side (`target_size`).
pub const TARGET_SIZE: u32 = 224;
/// `rescale_factor` of `align_img`.
pub const RESCALE_FACTOR: f64 = 102.0;

/// Rows 30, 36, 39, 42, 45, 48, 54 (x, y, z) of `lm` in `similarity_Lm3D_all.mat` (the official
/// repository's `BFM/` file, float32), bit for bit: the landmarks `load_lm3d` builds its five
/// points from. `tests/align.rs` checks them against the `.mat` file.
const LM3D_ROWS: [[u32; 3]; 7] = [
    [0x3b55_38a7, 0xbd3d_2688, 0x3f0d_6cde],
    [0xbedc_a8c9, 0x3e95_7c89, 0x3dd5_0f60],
    [0xbe44_9b1a, 0x3e93_d7cd, 0x3e27_7350],
    [0x3e40_5bef, 0x3e93_d539, 0x3e24_0644],
    [0x3edd_0df3, 0x3e94_d73c, 0x3dd3_c8d0],
    [0xbe81_1c55, 0xbec3_3ee3, 0x3e65_6f48],
    [0x3e7e_6dec, 0xbec3_3771, 0x3e63_b1bc],
];

/// The rows of [`LM3D_ROWS`] as numbers.
pub fn lm3d_rows() -> [[f32; 3]; 7] {
    LM3D_ROWS.map(|r| r.map(f32::from_bits))
}

/// `load_lm3d`: the standard face's five points (eye centres, nose tip, mouth corners), float32 as
/// the reference computes them (means of float32 pairs), in the order left eye, right eye, nose,
/// left mouth, right mouth.
pub fn lm3d_std() -> [[f32; 3]; 5] {
    let r = lm3d_rows();
    let mean2 = |a: [f32; 3], b: [f32; 3]| [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0, (a[2] + b[2]) / 2.0];
    [mean2(r[1], r[2]), mean2(r[3], r[4]), r[0], r[5], r[6]]
}

/// `extract_5p`: five points from 68 landmarks (eye centres from the eye corners, nose tip, mouth
/// corners), float32.
pub fn extract_5p(lm: &Landmarks68) -> [[f32; 2]; 5] {
    extract_5p_from(&lm.0)
}

fn extract_5p_from(p: &[[f32; 2]; 68]) -> [[f32; 2]; 5] {
    let mean2 = |a: [f32; 2], b: [f32; 2]| [(a[0] + b[0]) / 2.0, (a[1] + b[1]) / 2.0];
    [mean2(p[36], p[39]), mean2(p[42], p[45]), p[30], p[48], p[54]]
}

/// `POS`: the least-squares affine camera `xp ≈ [R | t] x` from five 2-D/3-D point pairs; returns
/// the translation `t` and the scale `s` (mean norm of the two rows of `R`).
///
/// numpy solves the 10 × 8 system with `lstsq` (SVD). It decouples into two 5 × 4 problems with the
/// same matrix `[x y z 1]`, solved here by Householder QR in f64: both are backward stable, and the
/// results agree to ~1e-15 relative, far below what reaches an integer (`tests/align.rs`).
pub fn pos(xp: &[[f32; 2]; 5], x: &[[f32; 3]; 5]) -> ([f64; 2], f64) {
    let a: [[f64; 4]; 5] = x.map(|p| [f64::from(p[0]), f64::from(p[1]), f64::from(p[2]), 1.0]);
    let bx: [f64; 5] = xp.map(|p| f64::from(p[0]));
    let by: [f64; 5] = xp.map(|p| f64::from(p[1]));
    let kx = least_squares(a, bx);
    let ky = least_squares(a, by);
    let norm = |k: &[f64; 4]| (k[0] * k[0] + k[1] * k[1] + k[2] * k[2]).sqrt();
    let s = (norm(&kx) + norm(&ky)) / 2.0;
    ([kx[3], ky[3]], s)
}

/// Minimises `|A k - b|` for a full-rank 5 × 4 `A` by Householder QR.
#[allow(
    clippy::needless_range_loop,
    reason = "row/column index arithmetic reads as the textbook algorithm"
)]
fn least_squares(mut a: [[f64; 4]; 5], mut b: [f64; 5]) -> [f64; 4] {
    for j in 0..4 {
        let norm = (j..5).map(|i| a[i][j] * a[i][j]).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let alpha = if a[j][j] > 0.0 { -norm } else { norm };
        let mut v = [0f64; 5];
        for i in j..5 {
            v[i] = a[i][j];
        }
        v[j] -= alpha;
        let vv: f64 = (j..5).map(|i| v[i] * v[i]).sum();
        if vv == 0.0 {
            continue;
        }
        for c in j..4 {
            let d: f64 = (j..5).map(|i| v[i] * a[i][c]).sum::<f64>() * 2.0 / vv;
            for i in j..5 {
                a[i][c] -= d * v[i];
            }
        }
        let d: f64 = (j..5).map(|i| v[i] * b[i]).sum::<f64>() * 2.0 / vv;
        for i in j..5 {
            b[i] -= d * v[i];
        }
    }
    let mut k = [0f64; 4];
    for j in (0..4).rev() {
        let s: f64 = (j + 1..4).map(|c| a[j][c] * k[c]).sum();
        k[j] = (b[j] - s) / a[j][j];
    }
    k
}

/// What `align_img` returns.
#[derive(Clone, Debug)]
pub struct Aligned {
    /// `trans_params`: `(w0, h0, s, tx, ty)` in float64; `s, tx, ty` become the 73-D coefficient's
    /// last three values.
    pub trans_params: [f64; 5],
    /// The 224 × 224 network input.
    pub image: RgbImage,
    /// The points moved into the 224 × 224 frame (y up, as given).
    pub landmarks: Vec<[f64; 2]>,
    /// The scaled image size `(w, h)` before the cut.
    pub resized: [i64; 2],
    /// The cut's top-left corner `(left, up)` in the scaled image.
    pub offset: [i64; 2],
}

/// `align_img(img, lm, lm3D)`: `lm` are 68 landmarks, or the 5 points themselves, with y pointing
/// **up** (`H - 1 - y`) as the reference passes them.
pub fn align_img(img: &RgbImage, lm: &[[f32; 2]], lm3d: &[[f32; 3]; 5]) -> Result<Aligned> {
    let (w0, h0) = (f64::from(img.width()), f64::from(img.height()));
    let lm5p: [[f32; 2]; 5] = match lm.len() {
        68 => {
            let mut a = [[0f32; 2]; 68];
            a.copy_from_slice(lm);
            extract_5p_from(&a)
        }
        5 => {
            let mut a = [[0f32; 2]; 5];
            a.copy_from_slice(lm);
            a
        }
        n => {
            return Err(PreprocessError::Landmarks(format!(
                "align_img needs 68 or 5 points, got {n}"
            )));
        }
    };
    let (t, s) = pos(&lm5p, lm3d);
    if !(s.is_finite() && s > 0.0 && t.iter().all(|v| v.is_finite())) {
        return Err(PreprocessError::Landmarks(format!(
            "the landmarks do not fit the standard face (scale {s}); they are degenerate (all points equal?)"
        )));
    }
    let s = RESCALE_FACTOR / s;
    // `resize_n_crop_img`: numpy's astype(int32) truncates toward zero.
    let target = f64::from(TARGET_SIZE);
    let w = (w0 * s) as i32 as i64;
    let h = (h0 * s) as i32 as i64;
    // The scaled image must stay a sane size: a tiny face in a large frame would need a huge one.
    const MAX_SCALED: i64 = 16384;
    if w <= 0 || h <= 0 || w > MAX_SCALED || h > MAX_SCALED {
        return Err(PreprocessError::Landmarks(format!(
            "aligning the face would scale the {}×{} picture to {w}×{h} (scale {s:.3}); the landmarks are \
             too small or too large for a face",
            img.width(),
            img.height()
        )));
    }
    let left = (w as f64 / 2.0 - target / 2.0 + (t[0] - w0 / 2.0) * s) as i32 as i64;
    let up = (h as f64 / 2.0 - target / 2.0 + (h0 / 2.0 - t[1]) * s) as i32 as i64;
    // `img.crop((left, up, left + 224., up + 224.))`: PIL rounds the float box.
    let size = i64::from(TARGET_SIZE);
    let image = pil_resize_crop(
        img,
        w as u32,
        h as u32,
        PilFilter::Bicubic,
        [left, up, left + size, up + size],
    );
    let landmarks = lm
        .iter()
        .map(|p| {
            let x = (f64::from(p[0]) - t[0] + w0 / 2.0) * s - (w as f64 / 2.0 - target / 2.0);
            let y = (f64::from(p[1]) - t[1] + h0 / 2.0) * s - (h as f64 / 2.0 - target / 2.0);
            [x, y]
        })
        .collect();
    Ok(Aligned {
        trans_params: [w0, h0, s, t[0], t[1]],
        image,
        landmarks,
        resized: [w, h],
        offset: [left, up],
    })
}
