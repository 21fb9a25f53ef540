//! Splicing reference-video coefficients into a generated sequence: the head pose of a
//! `--ref-pose` video (`Audio2Coeff.using_refpose`) and the eye blinks (expression) of a
//! `--ref-eyeblink` video (`get_data` in `generate_batch.py`), plus the pose-style check.
//!
//! Both references repeat a shorter reference sequence (`[ref]*div + ref[:rem]`), which is frame
//! `i ↦ ref[i % len]`, and truncate a longer one.

use thiserror::Error;

use crate::file::CoeffTable;
use crate::types::{EXP, MOTION_DIM, MotionCoeff, POSE};

/// Number of pose styles Audio2Pose was trained with (`--pose_style` in `[0, 46)`).
pub const POSE_STYLES: u32 = 46;

/// A reference sequence that cannot be spliced.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum SpliceError {
    /// The reference has no frames.
    #[error("the {what} reference has no frames")]
    Empty {
        /// `pose` or `eye-blink`.
        what: &'static str,
    },
    /// The reference rows are too narrow.
    #[error("the {what} reference has {got} coefficients per frame, at least {need} are needed")]
    TooNarrow {
        /// `pose` or `eye-blink`.
        what: &'static str,
        /// Width found.
        got: usize,
        /// Width needed.
        need: usize,
    },
    /// A pose style out of range.
    #[error("pose style {0} is out of range: Audio2Pose knows styles 0 to 45")]
    PoseStyle(u32),
}

/// Checks a pose style index (the reference passes it to an embedding of 46 rows, which fails
/// with an opaque index error for anything else).
pub fn check_pose_style(style: u32) -> Result<u32, SpliceError> {
    if style < POSE_STYLES {
        Ok(style)
    } else {
        Err(SpliceError::PoseStyle(style))
    }
}

fn check(reference: &CoeffTable, what: &'static str, need: usize) -> Result<(), SpliceError> {
    if reference.rows == 0 {
        return Err(SpliceError::Empty { what });
    }
    if reference.width < need {
        return Err(SpliceError::TooNarrow {
            what,
            got: reference.width,
            need,
        });
    }
    Ok(())
}

/// `using_refpose`: adds the reference video's head motion relative to its first frame,
/// `coeffs[i, 64:70] += ref[i, 64:70] - ref[0, 64:70]` (in `f32`, like numpy on the float32
/// tables), with the reference repeated or truncated to the sequence length.
pub fn apply_ref_pose(coeffs: &mut [MotionCoeff], reference: &CoeffTable) -> Result<(), SpliceError> {
    check(reference, "pose", MOTION_DIM)?;
    let first = &reference.row(0)[POSE];
    for (i, c) in coeffs.iter_mut().enumerate() {
        let r = &reference.row(i % reference.rows)[POSE];
        for (k, col) in POSE.enumerate() {
            c.0[col] += r[k] - first[k];
        }
    }
    Ok(())
}

/// The eye-blink splice of `get_data`: each frame's expression (columns 0..64) is replaced by the
/// reference video's, repeated or truncated to the sequence length. (The caller also zeroes the
/// random blink ratio, as the reference does.)
pub fn apply_ref_eyeblink(coeffs: &mut [MotionCoeff], reference: &CoeffTable) -> Result<(), SpliceError> {
    check(reference, "eye-blink", EXP.end)?;
    for (i, c) in coeffs.iter_mut().enumerate() {
        let r = reference.row(i % reference.rows);
        c.0[EXP].copy_from_slice(&r[EXP]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize, width: usize) -> CoeffTable {
        CoeffTable::new(rows, width, (0..rows * width).map(|v| v as f32).collect())
    }

    #[test]
    fn ref_pose_is_relative_and_repeats() {
        let mut coeffs = vec![MotionCoeff([1.0; 70]); 5];
        let reference = table(2, 73);
        apply_ref_pose(&mut coeffs, &reference).unwrap();
        // Row 1 of the reference is 73 larger than row 0 in every column.
        let expected = [1.0, 74.0, 1.0, 74.0, 1.0];
        for (c, e) in coeffs.iter().zip(expected) {
            assert!(c.0[64..70].iter().all(|&v| v == e));
            assert!(c.0[..64].iter().all(|&v| v == 1.0));
        }
    }

    #[test]
    fn eyeblink_replaces_expression() {
        let mut coeffs = vec![MotionCoeff([0.5; 70]); 3];
        let reference = table(2, 70);
        apply_ref_eyeblink(&mut coeffs, &reference).unwrap();
        assert_eq!(coeffs[2].0[..64], reference.row(0)[..64]);
        assert_eq!(coeffs[1].0[..64], reference.row(1)[..64]);
        assert!(coeffs[1].0[64..].iter().all(|&v| v == 0.5));
        assert_eq!(
            apply_ref_eyeblink(&mut coeffs, &table(0, 70)),
            Err(SpliceError::Empty { what: "eye-blink" })
        );
    }

    #[test]
    fn pose_styles() {
        assert_eq!(check_pose_style(45), Ok(45));
        assert_eq!(check_pose_style(46), Err(SpliceError::PoseStyle(46)));
    }
}
