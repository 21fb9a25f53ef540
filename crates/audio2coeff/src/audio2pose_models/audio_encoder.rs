//! `audio2pose_models/audio_encoder.py`: `AudioEncoder`, the Wav2Lip audio encoder applied to a
//! sequence of mel windows.

use candle_core::Tensor;
use sadtalker_nn::Weights;

use crate::Result;
use crate::wav2lip::{MEL_BINS, MEL_STEPS, Wav2LipAudioEncoder};

/// `AudioEncoder`: parameters `audio_encoder.{0..12}.conv_block.{0,1}.*`.
#[derive(Clone, Debug)]
pub struct AudioEncoder {
    audio_encoder: Wav2LipAudioEncoder,
}

impl AudioEncoder {
    /// Loads the encoder under `w` (`audio_encoder` inside `Audio2Pose`).
    pub fn load(w: &Weights) -> Result<Self> {
        Ok(Self {
            audio_encoder: Wav2LipAudioEncoder::load(&w.pp("audio_encoder"))?,
        })
    }

    /// `(B, T, 1, 80, 16)` → `(B, T, 512)`.
    pub fn forward(&self, audio_sequences: &Tensor) -> Result<Tensor> {
        let (b, t) = (audio_sequences.dim(0)?, audio_sequences.dim(1)?);
        // The reference concatenates the frames time-major (`cat([x[:, i] for i in range(T)])`,
        // row `i·B + b`) and reshapes the result to (B, T, ·) as if it were batch-major; for the
        // batch size 1 inference uses the two agree. Mirror it exactly, so B > 1 behaves the same.
        let frames = audio_sequences
            .transpose(0, 1)?
            .contiguous()?
            .reshape((t * b, 1, MEL_BINS, MEL_STEPS))?;
        let emb = self.audio_encoder.forward(&frames)?;
        let dim = emb.dim(1)?;
        Ok(emb.reshape((b, t, dim))?)
    }
}
