//! Port of the reference's `audio2pose_models`: the head-pose CVAE.
//!
//! Only what inference runs is ported: `Audio2Pose.test`, the audio encoder, and the CVAE's
//! decoder with its `ResUnet`. The CVAE encoder and the `PoseSequenceDiscriminator`
//! (`netD_motion`) are used in training only; their tensors in a checkpoint are left unread.

pub mod audio2pose;
pub mod audio_encoder;
pub mod cvae;
pub mod networks;
pub mod res_unet;

pub use audio_encoder::AudioEncoder;
pub use audio2pose::{Audio2Pose, Audio2PoseConfig};
pub use cvae::{Cvae, Decoder};
pub use res_unet::ResUnet;
