//! The three coefficient vectors and the conversions between them.

use std::ops::Range;

use thiserror::Error;

/// Width of the full 3DMM vector ([`Coeff3dmm`]).
pub const COEFF_3DMM_DIM: usize = 257;
/// Width of the first-frame coefficient ([`FirstFrameCoeff`]).
pub const FIRST_FRAME_DIM: usize = 73;
/// Width of the motion coefficient ([`MotionCoeff`]).
pub const MOTION_DIM: usize = 70;

/// Expression columns of the 70/73-D layouts.
pub const EXP: Range<usize> = 0..64;
/// Rotation angles (pitch, yaw, roll in radians, the reconstruction net's order) of the 70/73-D layouts.
pub const ANGLE: Range<usize> = 64..67;
/// Translation columns of the 70/73-D layouts.
pub const TRANS: Range<usize> = 67..70;
/// Head pose (angles + translation) of the 70/73-D layouts: what Audio2Pose predicts.
pub const POSE: Range<usize> = 64..70;
/// Crop parameters of the 73-D layout.
pub const CROP: Range<usize> = 70..73;

/// Column ranges of the 257-D layout (`split_coeff` in the reference's `utils/preprocess.py`).
mod full {
    use std::ops::Range;
    pub const ID: Range<usize> = 0..80;
    pub const EXP: Range<usize> = 80..144;
    pub const TEX: Range<usize> = 144..224;
    pub const ANGLE: Range<usize> = 224..227;
    pub const GAMMA: Range<usize> = 227..254;
    pub const TRANS: Range<usize> = 254..257;
}

/// A slice has the wrong number of values for the vector it should become.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("{what} needs {expected} values, got {got}{}", hint(*expected, *got))]
pub struct WidthError {
    /// The vector kind.
    pub what: &'static str,
    /// Its width.
    pub expected: usize,
    /// The width given.
    pub got: usize,
}

/// A hint naming what a width usually is, for the "expected 70, got 73" class of mistakes.
pub(crate) fn hint(expected: usize, got: usize) -> String {
    let kind = match got {
        MOTION_DIM => "a 70-D motion coefficient (exp+angle+trans)",
        FIRST_FRAME_DIM => "a 73-D first-frame coefficient (exp+angle+trans+crop)",
        COEFF_3DMM_DIM => "a 257-D full 3DMM vector",
        _ => return String::new(),
    };
    let fix = match (got, expected) {
        (FIRST_FRAME_DIM, MOTION_DIM) => "; drop the crop parameters (`sadtalker coeffs adapt --to 70`)",
        (MOTION_DIM, FIRST_FRAME_DIM) => {
            "; append the source image's crop parameters (`sadtalker coeffs adapt --to 73 --crop-from FIRST.mat`)"
        }
        (COEFF_3DMM_DIM, _) => "; convert it with `sadtalker coeffs adapt --from-full`",
        _ => "",
    };
    format!(" (that is {kind}{fix})")
}

fn array_from<const N: usize>(what: &'static str, values: &[f32]) -> Result<[f32; N], WidthError> {
    values.try_into().map_err(|_| WidthError {
        what,
        expected: N,
        got: values.len(),
    })
}

/// The crop/alignment parameters `trans_params[2:]` of `align_img` (scale, x shift, y shift),
/// which the 'full' preprocessing mode feeds to the renderer's mapping network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CropParams(pub [f32; 3]);

/// One frame's full 3DMM coefficients (257-D): identity 80, expression 64, texture 80,
/// angles 3, lighting (gamma) 27, translation 3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coeff3dmm(pub [f32; COEFF_3DMM_DIM]);

impl Coeff3dmm {
    /// From exactly 257 values.
    pub fn from_slice(values: &[f32]) -> Result<Self, WidthError> {
        array_from("a full 3DMM vector", values).map(Coeff3dmm)
    }
    /// Identity (shape) coefficients.
    pub fn id(&self) -> &[f32] {
        &self.0[full::ID]
    }
    /// Expression coefficients.
    pub fn exp(&self) -> &[f32] {
        &self.0[full::EXP]
    }
    /// Texture coefficients.
    pub fn tex(&self) -> &[f32] {
        &self.0[full::TEX]
    }
    /// Rotation angles.
    pub fn angle(&self) -> &[f32] {
        &self.0[full::ANGLE]
    }
    /// Spherical-harmonics lighting.
    pub fn gamma(&self) -> &[f32] {
        &self.0[full::GAMMA]
    }
    /// Translation.
    pub fn trans(&self) -> &[f32] {
        &self.0[full::TRANS]
    }
    /// The 70-D motion part: expression, angles, translation.
    pub fn motion(&self) -> MotionCoeff {
        let mut m = [0f32; MOTION_DIM];
        m[EXP].copy_from_slice(self.exp());
        m[ANGLE].copy_from_slice(self.angle());
        m[TRANS].copy_from_slice(self.trans());
        MotionCoeff(m)
    }
    /// The 73-D first-frame coefficient, as preprocessing builds it: motion part + `crop`.
    pub fn first_frame(&self, crop: CropParams) -> FirstFrameCoeff {
        self.motion().with_crop(crop)
    }
}

/// The first-frame coefficient (73-D): expression 64, angles 3, translation 3, crop 3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FirstFrameCoeff(pub [f32; FIRST_FRAME_DIM]);

impl FirstFrameCoeff {
    /// From exactly 73 values.
    pub fn from_slice(values: &[f32]) -> Result<Self, WidthError> {
        array_from("a first-frame coefficient", values).map(FirstFrameCoeff)
    }
    /// The 70-D motion part (drops the crop parameters).
    pub fn motion(&self) -> MotionCoeff {
        let mut m = [0f32; MOTION_DIM];
        m.copy_from_slice(&self.0[..MOTION_DIM]);
        MotionCoeff(m)
    }
    /// The crop parameters.
    pub fn crop(&self) -> CropParams {
        let mut c = [0f32; 3];
        c.copy_from_slice(&self.0[CROP]);
        CropParams(c)
    }
    /// Expression coefficients.
    pub fn exp(&self) -> &[f32] {
        &self.0[EXP]
    }
    /// Head pose (angles + translation).
    pub fn pose(&self) -> &[f32] {
        &self.0[POSE]
    }
}

/// The per-frame motion coefficient (70-D): expression 64, angles 3, translation 3.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MotionCoeff(pub [f32; MOTION_DIM]);

impl MotionCoeff {
    /// From exactly 70 values.
    pub fn from_slice(values: &[f32]) -> Result<Self, WidthError> {
        array_from("a motion coefficient", values).map(MotionCoeff)
    }
    /// Appends crop parameters, giving the 73-D layout.
    pub fn with_crop(&self, crop: CropParams) -> FirstFrameCoeff {
        let mut f = [0f32; FIRST_FRAME_DIM];
        f[..MOTION_DIM].copy_from_slice(&self.0);
        f[CROP].copy_from_slice(&crop.0);
        FirstFrameCoeff(f)
    }
    /// Expression coefficients.
    pub fn exp(&self) -> &[f32] {
        &self.0[EXP]
    }
    /// Head pose (angles + translation).
    pub fn pose(&self) -> &[f32] {
        &self.0[POSE]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp<const N: usize>() -> [f32; N] {
        std::array::from_fn(|i| i as f32)
    }

    #[test]
    fn full_to_first_frame_to_motion_and_back() {
        let full = Coeff3dmm(ramp());
        let crop = CropParams([0.5, -1.0, 2.0]);
        let first = full.first_frame(crop);
        assert_eq!(&first.0[..64], &full.0[80..144]);
        assert_eq!(&first.0[64..67], &full.0[224..227]);
        assert_eq!(&first.0[67..70], &full.0[254..257]);
        assert_eq!(first.crop(), crop);
        let motion = first.motion();
        assert_eq!(motion, full.motion());
        assert_eq!(motion.with_crop(crop), first);
    }

    #[test]
    fn width_errors_say_what_the_data_is() {
        let e = MotionCoeff::from_slice(&[0.0; 73]).unwrap_err();
        assert_eq!((e.expected, e.got), (70, 73));
        let msg = e.to_string();
        assert!(msg.contains("73-D first-frame") && msg.contains("--to 70"), "{msg}");
        let e = FirstFrameCoeff::from_slice(&[0.0; 71]).unwrap_err();
        assert_eq!(e.to_string(), "a first-frame coefficient needs 73 values, got 71");
        assert!(Coeff3dmm::from_slice(&ramp::<257>()).is_ok());
    }
}
