//! The face enhancer of SadTalker's `--enhancer gfpgan`: GFPGAN v1.4 (`GFPGANv1Clean`) run the way
//! gfpgan's `GFPGANer.enhance` runs it on every frame, with facexlib's `FaceRestoreHelper` around it.
//!
//! Per frame ([`GFPGANer::enhance`]):
//! 1. RetinaFace (from `sadtalker-preprocess`) finds the faces and their five landmarks; faces whose eyes
//!    are less than 5 px apart are skipped.
//! 2. Each face is aligned to the 512×512 FFHQ template by a similarity transform (LMedS) and cut out.
//! 3. GFPGAN restores it (U-Net encoder → StyleGAN2 decoder with SFT conditions, fresh noise per face).
//! 4. ParseNet labels the restored face; its skin/feature classes, blurred twice, are the paste mask.
//! 5. The frame is upscaled ×2 (Lanczos) and each restored face is warped back and blended in.
//!
//! A frame without a usable face comes back upscaled, with no face restored, and is counted as such.
//!
//! Modules mirror the reference files: [`gfpganv1_clean_arch`], [`stylegan2_clean_arch`], [`parsenet`]
//! (facexlib), [`face_restoration_helper`] (facexlib), [`gfpganer`] (gfpgan's `utils.py`); [`cv`] holds the
//! OpenCV calls, reproduced bit for bit.

pub mod cv;
pub mod face_restoration_helper;
pub mod gfpganer;
pub mod gfpganv1_clean_arch;
pub mod noise;
pub mod parsenet;
pub mod stylegan2_clean_arch;

pub use face_restoration_helper::{FaceRestoreHelper, Landmarks5};
pub use gfpganer::{EnhancedFrame, EnhancerFiles, GFPGANer};
pub use gfpganv1_clean_arch::{GFPGANv1Clean, GfpganConfig};
pub use image::RgbImage;
pub use noise::GaussianNoise;
pub use parsenet::{ParseNet, ParseNetConfig};
pub use stylegan2_clean_arch::NoiseSource;

/// Why enhancing failed.
#[derive(Debug, thiserror::Error)]
pub enum EnhanceError {
    /// A network could not be built or run: a weight that could not be loaded (missing, wrong shape,
    /// damaged file), an operation that rejected its inputs, or candle.
    #[error(transparent)]
    Nn(#[from] sadtalker_nn::NnError),
    /// Face detection failed.
    #[error(transparent)]
    Detect(#[from] sadtalker_preprocess::PreprocessError),
    /// A network configuration that cannot be built.
    #[error("{0}")]
    Config(String),
    /// A model file cannot be used (missing, damaged, or another model's file).
    #[error(
        "{what} weights {}: {error}. The enhancer's model files are installed by `sadtalker models fetch --for enhancer`",
        path.display()
    )]
    ModelFile {
        /// Which network (`GFPGAN v1.4`, `ParseNet`, `RetinaFace`).
        what: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        error: Box<EnhanceError>,
    },
    /// The frame cannot be enhanced as given.
    #[error("{0}")]
    BadFrame(String),
}

sadtalker_nn::layer_error_conversions!(EnhanceError);

/// Result of enhancer operations.
pub type Result<T> = std::result::Result<T, EnhanceError>;
