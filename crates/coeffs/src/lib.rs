//! SadTalker's 3DMM coefficients as types, and the numerics around them.
//!
//! SadTalker moves three kinds of coefficient vectors between its stages, and mixing them up is
//! the most common way a run fails ("expected 70, got 73"):
//! - [`Coeff3dmm`] (257-D): the face reconstruction network's full output (identity 80,
//!   expression 64, texture 80, angles 3, lighting 27, translation 3), `full_3dmm` in the
//!   first-frame `.mat`;
//! - [`FirstFrameCoeff`] (73-D): expression, angles, translation and the 3 crop parameters of
//!   the alignment, `coeff_3dmm` of the first-frame `.mat` written by preprocessing;
//! - [`MotionCoeff`] (70-D): expression, angles and translation, what Audio2Coeff produces
//!   per video frame.
//!
//! Conversions between them are explicit ([`Coeff3dmm::first_frame`], [`FirstFrameCoeff::motion`],
//! [`MotionCoeff::with_crop`]). Around them: MATLAB v5 `.mat` I/O interchangeable with scipy
//! ([`mat`]), the coefficient files of the pipeline ([`file`]), the Savitzky–Golay pose smoothing
//! ([`savgol`]), reference pose / eye-blink splicing ([`splice`]), the yaw/pitch/roll paths
//! ([`camera`]) and the face renderer's input windows ([`facerender`]).

pub mod camera;
pub mod facerender;
pub mod file;
pub mod mat;
pub mod savgol;
pub mod splice;
mod types;

pub use file::{CoeffError, CoeffTable, adapt};
pub use types::{
    ANGLE, COEFF_3DMM_DIM, CROP, Coeff3dmm, CropParams, EXP, FIRST_FRAME_DIM, FirstFrameCoeff, MOTION_DIM, MotionCoeff,
    POSE, TRANS, WidthError,
};
