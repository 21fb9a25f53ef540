//! The yaw/pitch/roll paths of `--input_yaw/--input_pitch/--input_roll`:
//! `gen_camera_pose` of `generate_facerender_batch.py`.
//!
//! One value holds the angle for every frame. Several values are waypoints: the path moves
//! between consecutive waypoints at a constant total speed (`Σ|Δ| / (frames-1)` degrees per
//! frame), built with `np.arange` per segment, then cut or extended (repeating the last value) to
//! the frame count. Either way the list is padded to a multiple of the batch size with its last
//! value and laid out as `(batch_size, len / batch_size)`.

use thiserror::Error;

/// An angle list that has no path.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum CameraError {
    /// No values.
    #[error("the {axis} list is empty")]
    Empty {
        /// `yaw`, `pitch` or `roll`.
        axis: &'static str,
    },
    /// Two consecutive waypoints are equal (the reference divides by their difference).
    #[error(
        "{axis} waypoints {index} and {} are both {value}: consecutive waypoints must differ \
         (give one value to hold an angle)",
        index + 1
    )]
    RepeatedWaypoint {
        /// `yaw`, `pitch` or `roll`.
        axis: &'static str,
        /// Index of the first of the two.
        index: usize,
        /// The repeated value.
        value: f64,
    },
    /// A multi-waypoint path over a single frame (the reference divides by `frames - 1`).
    #[error("a {axis} path with several waypoints needs at least 2 video frames")]
    OneFrame {
        /// `yaw`, `pitch` or `roll`.
        axis: &'static str,
    },
    /// Zero frames or a zero batch size.
    #[error("no frames to place a {axis} path on (frames {frames}, batch size {batch_size})")]
    NoFrames {
        /// `yaw`, `pitch` or `roll`.
        axis: &'static str,
        /// Frame count.
        frames: usize,
        /// Batch size.
        batch_size: usize,
    },
}

/// A per-frame angle path laid out as the renderer batches it.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraPath {
    /// `batch_size × (len / batch_size)` values in degrees, row-major.
    pub values: Vec<f32>,
    /// Batch size (rows).
    pub batch_size: usize,
}

impl CameraPath {
    /// Columns per batch row.
    pub fn per_batch(&self) -> usize {
        self.values.len() / self.batch_size.max(1)
    }
}

/// `gen_camera_pose(degrees, frame_num, batch_size)`. `axis` names the list in errors.
pub fn gen_camera_pose(
    degrees: &[f64],
    frame_num: usize,
    batch_size: usize,
    axis: &'static str,
) -> Result<CameraPath, CameraError> {
    if frame_num == 0 || batch_size == 0 {
        return Err(CameraError::NoFrames {
            axis,
            frames: frame_num,
            batch_size,
        });
    }
    let mut path: Vec<f64> = match degrees {
        [] => return Err(CameraError::Empty { axis }),
        [only] => vec![*only; frame_num],
        _ => {
            if frame_num == 1 {
                return Err(CameraError::OneFrame { axis });
            }
            for (index, w) in degrees.windows(2).enumerate() {
                if w[0] == w[1] {
                    return Err(CameraError::RepeatedWaypoint {
                        axis,
                        index,
                        value: w[0],
                    });
                }
            }
            let degree_sum: f64 = degrees.windows(2).fold(0.0, |s, w| s + (w[1] - w[0]).abs());
            let degree_per_frame = degree_sum / (frame_num - 1) as f64;
            let mut path = Vec::with_capacity(frame_num + 1);
            for w in degrees.windows(2) {
                let (last, next) = (w[0], w[1]);
                // Same operation order as the reference: (per_frame * |Δ|) / Δ.
                let step = degree_per_frame * (next - last).abs() / (next - last);
                path.extend(np_arange(last, next, step));
            }
            path.truncate(frame_num);
            // Non-empty: every segment yields at least its start value.
            let last = path.last().copied().unwrap_or(degrees[0]);
            path.resize(frame_num, last);
            path
        }
    };
    let remainder = frame_num % batch_size;
    if remainder != 0 {
        let last = path[path.len() - 1];
        path.extend(std::iter::repeat_n(last, batch_size - remainder));
    }
    Ok(CameraPath {
        values: path.into_iter().map(|v| v as f32).collect(),
        batch_size,
    })
}

/// `np.arange(start, stop, step)` for float64: `ceil((stop - start) / step)` values, the first
/// two `start` and `start + step`, the rest `start + i * delta` with `delta` the difference of the
/// first two (numpy's fill rule, reproduced for bit-identical paths).
fn np_arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    let len = ((stop - start) / step).ceil();
    if len.is_nan() || len <= 0.0 {
        return Vec::new();
    }
    let len = len as usize;
    let second = start + step;
    let delta = second - start;
    (0..len)
        .map(|i| match i {
            0 => start,
            1 => second,
            _ => start + i as f64 * delta,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_value_holds_and_pads() {
        let p = gen_camera_pose(&[20.0], 5, 2, "yaw").unwrap();
        assert_eq!(p.values, vec![20.0; 6]);
        assert_eq!(p.per_batch(), 3);
    }

    #[test]
    fn waypoints_move_at_constant_speed() {
        let p = gen_camera_pose(&[0.0, 10.0, 0.0], 11, 1, "yaw").unwrap();
        // Σ|Δ| = 20 over 10 steps: 2° per frame.
        let expect = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 8.0, 6.0, 4.0, 2.0, 2.0];
        assert_eq!(p.values, expect.map(|v| v as f32).to_vec());
    }

    #[test]
    fn errors() {
        assert!(matches!(
            gen_camera_pose(&[1.0, 1.0], 10, 1, "roll"),
            Err(CameraError::RepeatedWaypoint { index: 0, .. })
        ));
        assert_eq!(
            gen_camera_pose(&[1.0, 2.0], 1, 1, "yaw"),
            Err(CameraError::OneFrame { axis: "yaw" })
        );
        assert_eq!(
            gen_camera_pose(&[], 3, 1, "yaw"),
            Err(CameraError::Empty { axis: "yaw" })
        );
    }
}
