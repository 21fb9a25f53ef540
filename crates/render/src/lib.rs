//! The face renderer: SadTalker's `facerender` (face-vid2vid with a SPADE decoder) driven by
//! 3DMM coefficients through `MappingNet`.
//!
//! Modules mirror `sadtalker/facerender/modules/*.py` one to one, with the same parameter
//! names, so the official checkpoints load unchanged (`kp_extractor.*` and `generator.*` from
//! `SadTalker_V0.0.2_{256,512}.safetensors`, `mapping.*` from `mapping_00{229,109}-model.pth.tar`).
//!
//! Per frame the reference recomputes everything from the source image; here the work that
//! depends on the portrait alone (canonical keypoints, the generator's 3-D feature volume and
//! its compressed copy for dense motion) is computed once by [`FaceRenderer::prepare`], and
//! [`FaceRenderer::render`] only runs what the driving coefficients change.

mod blocks;
mod config;
mod dense_motion;
mod generator;
pub mod image;
mod keypoint_detector;
mod keypoints;
mod mapping;
mod renderer;
#[cfg(test)]
mod test_support;

pub use config::{FaceRenderConfig, MappingConfig};
pub use dense_motion::{DenseMotion, MotionGeometry};
pub use generator::GeneratorOutput;
pub use keypoints::{HeadPose, Keypoints, get_rotation_matrix, headpose_pred_to_degree, keypoint_transformation};
pub use renderer::{DrivingFrame, FaceRenderer, PreparedSource, RenderDetails};

/// Why rendering failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// A network could not be built or run: a weight that could not be loaded (missing, wrong shape,
    /// damaged file), an operation that rejected its inputs, or candle.
    #[error(transparent)]
    Nn(#[from] sadtalker_nn::NnError),
    /// The inputs do not fit the renderer (wrong coefficient width, image size, ...).
    #[error("{0}")]
    Input(String),
}

sadtalker_nn::layer_error_conversions!(RenderError);

/// Result of rendering operations.
pub type Result<T> = std::result::Result<T, RenderError>;
