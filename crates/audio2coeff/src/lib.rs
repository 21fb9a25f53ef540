//! Audio2Coeff: speech to 3DMM motion coefficients, a port of SadTalker's `audio2exp_models`,
//! `audio2pose_models` and `test_audio2coeff.py`.
//!
//! - [`audio2exp_models`]: `SimpleWrapperV2` (the Wav2Lip audio encoder and one linear map) turns
//!   each frame's 0.2 s mel window, the source face's expression and a blink ratio into the
//!   frame's 64 expression coefficients.
//! - [`audio2pose_models`]: a conditional VAE whose decoder turns windows of 32 frames of audio
//!   embeddings, a pose style (0–45) and a random latent into head-pose motion (6 coefficients
//!   per frame), refined by a small residual U-Net.
//! - [`Audio2Coeff`]: both over a whole audio file, the pose smoothed with Savitzky–Golay, as
//!   `(frames, 70)` coefficients.
//!
//! Layers come from `sadtalker_nn` and load their weights by the reference's parameter names, so
//! `SadTalker_V0.0.2_{256,512}.safetensors` (prefixes `audio2exp.` / `audio2pose.`) and the legacy
//! `auido2exp_00300-model.pth` / `auido2pose_00140-model.pth` (`{'model': state_dict}`) load as
//! they are. The CVAE's latent draws come from a [`NoiseSource`]: a seeded generator by default,
//! or recorded draws (parity tests replay the reference's own `torch.randn` values).

pub mod audio2coeff;
pub mod audio2exp_models;
pub mod audio2pose_models;
mod error;
pub mod noise;
pub mod speech;
pub mod wav2lip;

pub use audio2coeff::{
    Audio2Coeff, Audio2CoeffFiles, Audio2CoeffInput, Audio2CoeffOptions, Audio2CoeffOutput, MelWindows, Stage,
};
pub use audio2pose_models::Audio2PoseConfig;
pub use error::{Audio2CoeffError, Result};
pub use noise::{NoiseSource, ReplayNoise, SeededNoise};
