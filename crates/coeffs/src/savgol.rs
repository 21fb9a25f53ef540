//! Savitzky–Golay smoothing of the predicted head pose, as `test_audio2coeff.py` applies it:
//! `scipy.signal.savgol_filter(pose, window, 2, axis=1)` with the default `mode='interp'`.
//!
//! `mode='interp'` filters the interior by convolution with the least-squares coefficients, and
//! replaces the first and last `window // 2` samples by the values of a polynomial fitted to the
//! first/last `window` samples. The reference pose is `float32`, and scipy (1.17, the reference
//! environment) treats the two parts differently, which we mirror to get the same bits:
//! - the interior convolution (`ndimage.convolve1d`) runs in double precision with `float64`
//!   coefficients, rounded to `float32` at the end;
//! - the edge fit (`scipy.signal._polyutils.polyfit`/`polyval`) works in the input's `float32`:
//!   a column-normalised `float32` Vandermonde matrix, a least-squares solve (numpy computes it
//!   in double and rounds the result to `float32`), then `float32` Horner evaluation.

use thiserror::Error;

/// The window length the reference uses for sequences of at least 13 frames.
pub const POSE_WINDOW: usize = 13;
/// The polynomial order the reference uses.
pub const POSE_POLYORDER: usize = 2;

/// Invalid Savitzky–Golay parameters.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SavgolError {
    /// scipy requires `polyorder < window_length`.
    #[error("polyorder {polyorder} must be less than the window length {window}")]
    OrderTooHigh {
        /// Window length.
        window: usize,
        /// Polynomial order.
        polyorder: usize,
    },
    /// `mode='interp'` requires the window to fit in the sequence.
    #[error("window length {window} is longer than the sequence ({len} frames)")]
    WindowTooLong {
        /// Window length.
        window: usize,
        /// Sequence length.
        len: usize,
    },
    /// The window must be odd in interp mode here (the reference always passes an odd one).
    #[error("window length {0} must be odd")]
    EvenWindow(usize),
}

/// `savgol_filter(x, window, polyorder, axis=0, mode='interp')` on a row-major `rows × cols`
/// array: every column is smoothed along the rows.
pub fn savgol_filter(
    x: &[f32],
    rows: usize,
    cols: usize,
    window: usize,
    polyorder: usize,
) -> Result<Vec<f32>, SavgolError> {
    assert_eq!(x.len(), rows * cols, "savgol_filter: data does not match {rows}×{cols}");
    if polyorder >= window {
        return Err(SavgolError::OrderTooHigh { window, polyorder });
    }
    if window.is_multiple_of(2) {
        return Err(SavgolError::EvenWindow(window));
    }
    if window > rows {
        return Err(SavgolError::WindowTooLong { window, len: rows });
    }
    let hat = hat_matrix(window, polyorder);
    let half = window / 2;
    let mut y = vec![0f32; x.len()];
    let mut column = vec![0f32; rows];
    for c in 0..cols {
        for (r, v) in column.iter_mut().enumerate() {
            *v = x[r * cols + c];
        }
        // Interior: the middle row of the hat matrix is the (symmetric) convolution kernel.
        for r in half..rows - half {
            let s: f64 = (0..window)
                .map(|j| hat[half][j] * f64::from(column[r - half + j]))
                .sum();
            y[r * cols + c] = s as f32;
        }
        // Edges: the polynomial fitted to the first/last `window` samples, evaluated there.
        let head = fit_edge_f32(&column[..window], 0..half, polyorder);
        let tail = fit_edge_f32(&column[rows - window..], window - half..window, polyorder);
        for (i, v) in head.into_iter().enumerate() {
            y[i * cols + c] = v;
        }
        for (i, v) in tail.into_iter().enumerate() {
            y[(rows - half + i) * cols + c] = v;
        }
    }
    Ok(y)
}

/// Smooths a `frames × cols` pose sequence with the reference's window choice: 13 frames, or for
/// shorter sequences the largest odd length not above the sequence (`int((T-1)/2)*2+1`).
///
/// Sequences of one or two frames are returned unchanged: there the window would be 1, which
/// scipy rejects for order 2 (the reference crashes on such short audio).
pub fn smooth_pose(pose: &[f32], frames: usize, cols: usize) -> Vec<f32> {
    let window = if frames < POSE_WINDOW {
        (frames.saturating_sub(1) / 2) * 2 + 1
    } else {
        POSE_WINDOW
    };
    match savgol_filter(pose, frames, cols, window, POSE_POLYORDER) {
        Ok(y) => y,
        // Only reachable for frames < 3 (window 1): nothing to smooth.
        Err(_) => pose.to_vec(),
    }
}

/// scipy's `_fit_edge` for one column in `float32`: fits a degree-`order` polynomial to
/// `values` at positions `0..len` and evaluates it at `at`.
fn fit_edge_f32(values: &[f32], at: std::ops::Range<usize>, order: usize) -> Vec<f32> {
    let (n, m) = (values.len(), order + 1);
    // lhs = x[:, None] ** powers (highest power first), scaled to unit column norms, in f32.
    let mut lhs: Vec<Vec<f32>> = (0..n)
        .map(|i| (0..m).map(|k| (i as f32).powi((order - k) as i32)).collect())
        .collect();
    let scale: Vec<f32> = (0..m)
        .map(|k| lhs.iter().fold(0f32, |s, row| s + row[k] * row[k]).sqrt())
        .collect();
    for row in &mut lhs {
        for (v, s) in row.iter_mut().zip(&scale) {
            *v /= s;
        }
    }
    // numpy's lstsq on float32 solves in double and rounds the solution to float32.
    let a: Vec<Vec<f64>> = lhs.iter().map(|r| r.iter().map(|&v| f64::from(v)).collect()).collect();
    let b: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
    let coef: Vec<f32> = least_squares(&a, &b)
        .iter()
        .zip(&scale)
        .map(|(&c, &s)| c as f32 / s)
        .collect();
    at.map(|t| {
        let t = t as f32;
        coef.iter().fold(0f32, |acc, &c| acc * t + c)
    })
    .collect()
}

/// Least-squares solution of `a x ≈ b` (`a` is `n × m`, full column rank) by Householder QR.
fn least_squares(a: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let (n, m) = (a.len(), a[0].len());
    let mut r: Vec<Vec<f64>> = a.to_vec();
    let mut qtb = b.to_vec();
    for k in 0..m {
        let norm = (k..n).map(|i| r[i][k] * r[i][k]).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let alpha = if r[k][k] > 0.0 { -norm } else { norm };
        let mut v: Vec<f64> = (k..n).map(|i| r[i][k]).collect();
        v[0] -= alpha;
        let vnorm2: f64 = v.iter().map(|x| x * x).sum();
        if vnorm2 == 0.0 {
            continue;
        }
        for j in k..m {
            let dot: f64 = r[k..].iter().zip(&v).map(|(row, vi)| vi * row[j]).sum();
            let f = 2.0 * dot / vnorm2;
            for (row, vi) in r[k..].iter_mut().zip(&v) {
                row[j] -= f * vi;
            }
        }
        let dot: f64 = qtb[k..].iter().zip(&v).map(|(q, vi)| vi * q).sum();
        let f = 2.0 * dot / vnorm2;
        for (q, vi) in qtb[k..].iter_mut().zip(&v) {
            *q -= f * vi;
        }
    }
    let mut x = vec![0f64; m];
    for k in (0..m).rev() {
        let s: f64 = (k + 1..m).map(|j| r[k][j] * x[j]).sum();
        x[k] = (qtb[k] - s) / r[k][k];
    }
    x
}

/// The least-squares projection matrix `H = V (VᵀV)⁻¹ Vᵀ` for a polynomial of degree `order` on
/// sample positions `0..n`: `(H x)[i]` is the fitted polynomial's value at position `i`; its
/// middle row is `savgol_coeffs(n, order)`.
fn hat_matrix(n: usize, order: usize) -> Vec<Vec<f64>> {
    let m = order + 1;
    // Centre and scale positions for conditioning; the projection is unchanged by this.
    let centre = (n as f64 - 1.0) / 2.0;
    let scale = centre.max(1.0);
    let t: Vec<f64> = (0..n).map(|i| (i as f64 - centre) / scale).collect();
    let v: Vec<Vec<f64>> = t
        .iter()
        .map(|&ti| (0..m).map(|k| ti.powi(k as i32)).collect())
        .collect();
    // Gram matrix VᵀV and its inverse (m ≤ a few: Gauss–Jordan with partial pivoting).
    let mut g = vec![vec![0f64; m]; m];
    for row in &v {
        for a in 0..m {
            for b in 0..m {
                g[a][b] += row[a] * row[b];
            }
        }
    }
    let ginv = invert(g);
    let mut h = vec![vec![0f64; n]; n];
    for i in 0..n {
        // w = (VᵀV)⁻¹ vᵢ
        let w: Vec<f64> = (0..m).map(|a| (0..m).map(|b| ginv[a][b] * v[i][b]).sum()).collect();
        for j in 0..n {
            h[i][j] = (0..m).map(|a| v[j][a] * w[a]).sum();
        }
    }
    h
}

fn invert(mut a: Vec<Vec<f64>>) -> Vec<Vec<f64>> {
    let n = a.len();
    let mut inv: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
        .collect();
    for col in 0..n {
        let pivot = (col..n)
            .max_by(|&x, &y| a[x][col].abs().total_cmp(&a[y][col].abs()))
            .unwrap_or(col);
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let p = a[col][col];
        for j in 0..n {
            a[col][j] /= p;
            inv[col][j] /= p;
        }
        for r in 0..n {
            if r != col {
                let f = a[r][col];
                for j in 0..n {
                    a[r][j] -= f * a[col][j];
                    inv[r][j] -= f * inv[col][j];
                }
            }
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_coefficients() {
        // The textbook 5-point quadratic smoother: (-3, 12, 17, 12, -3) / 35.
        let h = hat_matrix(5, 2);
        let expect = [-3.0, 12.0, 17.0, 12.0, -3.0].map(|v| v / 35.0);
        for (a, b) in h[2].iter().zip(expect) {
            assert!((a - b).abs() < 1e-14, "{a} vs {b}");
        }
    }

    #[test]
    fn quadratics_pass_through_unchanged() {
        let rows = 20;
        let x: Vec<f32> = (0..rows)
            .map(|i| (0.5 * (i * i) as f32) - 3.0 * i as f32 + 1.0)
            .collect();
        let y = savgol_filter(&x, rows, 1, 13, 2).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn errors_and_short_sequences() {
        assert_eq!(
            savgol_filter(&[0.0; 5], 5, 1, 7, 2),
            Err(SavgolError::WindowTooLong { window: 7, len: 5 })
        );
        assert_eq!(
            savgol_filter(&[0.0; 5], 5, 1, 1, 2),
            Err(SavgolError::OrderTooHigh {
                window: 1,
                polyorder: 2
            })
        );
        assert_eq!(smooth_pose(&[1.0, 2.0], 2, 1), vec![1.0, 2.0]);
    }
}
