//! Keypoint arithmetic of `make_animation.py`: head-pose bins to degrees, rotation
//! matrices, and the canonical-to-posed keypoint transformation. The tensors involved are
//! tiny (15 keypoints × 3), so this is plain `f32` code following the reference's order of
//! operations.

use crate::{RenderError, Result};

/// Keypoints of a batch: `value[b][k] = (x, y, z)` in [-1, 1] volume coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct Keypoints {
    /// One list of keypoints per batch item.
    pub value: Vec<Vec<[f32; 3]>>,
}

/// What `MappingNet` (or the head-pose estimator) predicts for one batch item.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadPose {
    /// Logits over `num_bins` (66) yaw bins.
    pub yaw: Vec<f32>,
    /// Logits over the pitch bins.
    pub pitch: Vec<f32>,
    /// Logits over the roll bins.
    pub roll: Vec<f32>,
    /// Translation (only `t[1]` is used: the reference zeroes x and z).
    pub t: [f32; 3],
    /// Expression deltas, `3 * num_kp`.
    pub exp: Vec<f32>,
    /// `yaw_in`: a degree that replaces the predicted yaw (`--input-yaw`).
    pub yaw_in: Option<f32>,
    /// `pitch_in`: a degree that replaces the predicted pitch.
    pub pitch_in: Option<f32>,
    /// `roll_in`: a degree that replaces the predicted roll.
    pub roll_in: Option<f32>,
}

/// `headpose_pred_to_degree`: softmax over the bins, expectation of the bin index, `* 3 - 99`.
pub fn headpose_pred_to_degree(pred: &[f32]) -> f32 {
    let m = pred.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = pred.iter().map(|&v| (v - m).exp()).collect();
    let sum: f32 = e.iter().sum();
    let inv = 1.0 / sum;
    // Accumulated in f64: PyTorch's reductions are pairwise, closer to exact than a plain
    // f32 running sum.
    let expect: f64 = e.iter().enumerate().map(|(i, &v)| (v * inv * i as f32) as f64).sum();
    expect as f32 * 3.0 - 99.0
}

type Mat3 = [[f32; 3]; 3];

fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
    std::array::from_fn(|i| std::array::from_fn(|k| (0..3).map(|j| a[i][j] * b[j][k]).sum()))
}

/// `get_rotation_matrix(yaw, pitch, roll)` in degrees: `pitch_mat @ yaw_mat @ roll_mat`,
/// with the reference's `/ 180 * 3.14` (not π) conversion.
pub fn get_rotation_matrix(yaw: f32, pitch: f32, roll: f32) -> Mat3 {
    // The reference's 3.14, not π: matching it matters more than the 0.05 % angle error.
    #[allow(clippy::approx_constant)]
    let rad = |d: f32| d / 180.0 * 3.14;
    let (y, p, r) = (rad(yaw), rad(pitch), rad(roll));
    let pitch_mat = [[1.0, 0.0, 0.0], [0.0, p.cos(), -p.sin()], [0.0, p.sin(), p.cos()]];
    let yaw_mat = [[y.cos(), 0.0, y.sin()], [0.0, 1.0, 0.0], [-y.sin(), 0.0, y.cos()]];
    let roll_mat = [[r.cos(), -r.sin(), 0.0], [r.sin(), r.cos(), 0.0], [0.0, 0.0, 1.0]];
    matmul(&matmul(&pitch_mat, &yaw_mat), &roll_mat)
}

/// `keypoint_transformation(kp_canonical, he)`: rotate the canonical keypoints by the
/// predicted (or given) head pose, translate by `(0, t_y, 0)`, add the expression deltas.
pub fn keypoint_transformation(kp_canonical: &Keypoints, he: &[HeadPose]) -> Result<Keypoints> {
    if kp_canonical.value.len() != he.len() && kp_canonical.value.len() != 1 {
        return Err(RenderError::Input(format!(
            "keypoint transformation: {} canonical keypoint sets for {} poses",
            kp_canonical.value.len(),
            he.len()
        )));
    }
    let value = he
        .iter()
        .enumerate()
        .map(|(b, h)| {
            let kp = &kp_canonical.value[b.min(kp_canonical.value.len() - 1)];
            if h.exp.len() != 3 * kp.len() {
                return Err(RenderError::Input(format!(
                    "expression has {} values for {} keypoints",
                    h.exp.len(),
                    kp.len()
                )));
            }
            let yaw = h.yaw_in.unwrap_or_else(|| headpose_pred_to_degree(&h.yaw));
            let pitch = h.pitch_in.unwrap_or_else(|| headpose_pred_to_degree(&h.pitch));
            let roll = h.roll_in.unwrap_or_else(|| headpose_pred_to_degree(&h.roll));
            let rot = get_rotation_matrix(yaw, pitch, roll);
            Ok(kp
                .iter()
                .enumerate()
                .map(|(k, p)| {
                    std::array::from_fn(|m| {
                        let rotated = rot[m][0] * p[0] + rot[m][1] * p[1] + rot[m][2] * p[2];
                        let t = if m == 1 { h.t[1] } else { 0.0 };
                        (rotated + t) + h.exp[3 * k + m]
                    })
                })
                .collect())
        })
        .collect::<Result<_>>()?;
    Ok(Keypoints { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degrees_are_the_bin_expectation() {
        // All mass on bin 33 -> 33 * 3 - 99 = 0 degrees.
        let mut logits = vec![-1e4f32; 66];
        logits[33] = 0.0;
        assert!((headpose_pred_to_degree(&logits)).abs() < 1e-4);
        logits[33] = -1e4;
        logits[40] = 0.0;
        assert!((headpose_pred_to_degree(&logits) - 21.0).abs() < 1e-4);
    }

    #[test]
    fn zero_pose_is_identity() {
        let r = get_rotation_matrix(0.0, 0.0, 0.0);
        assert_eq!(r, [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        // 90° yaw (as 3.14 rad) maps x to about -z.
        let r = get_rotation_matrix(90.0, 0.0, 0.0);
        assert!((r[2][0] + 1.0).abs() < 1e-5 && r[0][0].abs() < 1e-3);
    }
}
