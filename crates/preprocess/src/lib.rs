//! SadTalker's preprocessing, ported from the reference's `utils/preprocess.py` (`CropAndExtract`),
//! `utils/croper.py` (`Preprocesser`), `face3d/util/preprocess.py` (`align_img`),
//! `face3d/extract_kp_videos_safe.py` (`KeypointExtractor`), `utils/paste_pic.py` and the facexlib
//! networks they call. One module per stage, mirroring the PyTorch modules and their parameter names:
//!
//! - [`detect`]: RetinaFace ResNet-50 face detection (priors, decoding, threshold, NMS);
//! - [`landmarks`]: the AWing FAN (98 WFLW points) and the 98 → 68 mapping;
//! - [`crop`]: the crop modes (`crop`, `extcrop`, `resize`, `full`, `extfull`) and the crop record
//!   paste-back needs;
//! - [`align`]: `align_img` against the standard face's five 3-D points;
//! - [`recon`]: the ResNet-50 3DMM reconstruction net → 257-D → the 73-D first-frame coefficient;
//! - [`paste`]: the rendered face pasted back into the full frame with Poisson blending
//!   (OpenCV's `seamlessClone(NORMAL_CLONE)`);
//! - [`extract`]: the whole of `CropAndExtract.generate`.
//!
//! Image resampling is bit-exact with the OpenCV and PIL calls the reference makes ([`imgproc`]).

pub mod align;
pub mod crop;
pub mod detect;
pub mod extract;
pub mod imgproc;
pub mod io;
pub mod landmarks;
pub mod paste;
pub mod recon;
pub mod resnet;

use std::path::PathBuf;

pub use candle_core::Device;
pub use crop::{CropInfo, PreprocessMode};
pub use extract::{ExtractOptions, Extracted, Extractor, LandmarkSource};
pub use image::RgbImage;
pub use landmarks::Landmarks68;

/// Why preprocessing failed.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    /// A network could not be built or run: a weight that could not be loaded (missing, wrong shape,
    /// damaged file), an operation that rejected its inputs, or candle.
    #[error(transparent)]
    Nn(#[from] sadtalker_nn::NnError),
    /// Writing the coefficient file failed.
    #[error(transparent)]
    Coeff(#[from] sadtalker_coeffs::CoeffError),
    /// The image cannot be read.
    #[error("{}: {reason}", path.display())]
    ImageRead {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// The image is larger than preprocessing accepts.
    #[error(
        "{}: the image is {width}×{height} pixels; the limit is {max} pixels per side (face detection runs at \
         full resolution); downscale it first, e.g. `ffmpeg -i IN -vf scale='min({max},iw)':-2 out.png`",
        path.display()
    )]
    ImageTooLarge {
        /// The file.
        path: PathBuf,
        /// Its width.
        width: u32,
        /// Its height.
        height: u32,
        /// The limit per side.
        max: u32,
    },
    /// No face was found.
    #[error(
        "no face found in {what}: the best face score was {best:.3}, below the threshold {threshold}; try a \
         larger or clearer, frontal face, `--preprocess full` on a wider shot, a lower `--face-threshold`, \
         or give the landmarks with `--landmarks FILE`"
    )]
    NoFace {
        /// Which image.
        what: String,
        /// The highest face probability seen.
        best: f32,
        /// The threshold used.
        threshold: f32,
    },
    /// `--face-index` names a face that is not there.
    #[error("--face-index {index}: only {found} face(s) found (indices 0..{found}, largest × most confident first)")]
    FaceIndex {
        /// The index asked for.
        index: usize,
        /// How many faces were found.
        found: usize,
    },
    /// The landmarks given are unusable.
    #[error("landmarks: {0}")]
    Landmarks(String),
    /// The face geometry cannot be cut from the image.
    #[error("{0}")]
    Geometry(String),
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

sadtalker_nn::layer_error_conversions!(PreprocessError);

/// Result of preprocessing operations.
pub type Result<T> = std::result::Result<T, PreprocessError>;
