//! From speech samples to the Audio2Coeff inputs, the audio half of `get_data` in
//! `generate_batch.py`, with the mel windows cut on demand.
//!
//! `sadtalker_audio::get_data` materialises every 80 × 16 window (5 KiB per video frame, five
//! times the spectrogram it is cut from); here the spectrogram is kept and each network step
//! cuts the windows it needs, with the same indexing (`sadtalker_audio::frames::window_start`).

use std::ops::Range;

use candle_core::{Device, Tensor};
use sadtalker_audio::frames::{MEL_STEP_SIZE, frame_aligned, window_start};
use sadtalker_audio::mel::{HPARAMS, Mel, MelSpectrogram};
use sadtalker_audio::{BlinkRng, generate_blink_seq_randomly};

use crate::audio2coeff::MelWindows;
use crate::error::{Audio2CoeffError, Result};

/// Per-frame mel windows cut from a spectrogram when asked for.
#[derive(Clone, Debug)]
pub struct SpectrogramWindows {
    mel: Mel,
    num_frames: usize,
}

impl SpectrogramWindows {
    /// The windows of `num_frames` video frames over `mel` (`orig_mel`, frames × bands).
    pub fn new(mel: Mel, num_frames: usize) -> Self {
        Self { mel, num_frames }
    }

    /// The spectrogram.
    pub fn mel(&self) -> &Mel {
        &self.mel
    }
}

impl MelWindows for SpectrogramWindows {
    fn num_frames(&self) -> usize {
        self.num_frames
    }

    fn windows(&self, frames: Range<usize>) -> Result<Tensor> {
        if frames.end > self.num_frames {
            return Err(Audio2CoeffError::Input(format!(
                "mel windows {frames:?} requested, the audio has {} frames",
                self.num_frames
            )));
        }
        let bands = self.mel.bands;
        let block = bands * MEL_STEP_SIZE;
        let mut data = vec![0f32; frames.len() * block];
        if self.mel.frames > 0 {
            let last = self.mel.frames as i64 - 1;
            for (dst, i) in data.chunks_exact_mut(block).zip(frames.clone()) {
                let start = window_start(i);
                for k in 0..MEL_STEP_SIZE {
                    let t = (start + k as i64).clamp(0, last) as usize;
                    for (b, v) in self.mel.frame(t).iter().enumerate() {
                        dst[b * MEL_STEP_SIZE + k] = *v;
                    }
                }
            }
        }
        Ok(Tensor::from_vec(
            data,
            (frames.len(), 1, bands, MEL_STEP_SIZE),
            &Device::Cpu,
        )?)
    }
}

/// The audio part of one Audio2Coeff batch.
#[derive(Clone, Debug)]
pub struct SpeechInput {
    /// The mel windows (`indiv_mels`).
    pub windows: SpectrogramWindows,
    /// `ratio_gt`: the random blinks (zeros when `use_blink` is off).
    pub blink_ratio: Vec<f32>,
}

/// `get_data`'s audio steps for 16 kHz mono `speech`: cut to whole 25 fps frames, the Wav2Lip mel
/// spectrogram, and the random blinks drawn from `rng` (drawn even when `use_blink` is off, so the
/// random stream advances as in the reference).
pub fn speech_input(speech: &[f32], use_blink: bool, rng: &mut impl BlinkRng) -> SpeechInput {
    let (wav, num_frames) = frame_aligned(speech);
    let mel = MelSpectrogram::new(&HPARAMS).compute(&wav);
    let mut blink_ratio = generate_blink_seq_randomly(num_frames, rng);
    if !use_blink {
        blink_ratio.iter_mut().for_each(|v| *v = 0.0);
    }
    SpeechInput {
        windows: SpectrogramWindows::new(mel, num_frames),
        blink_ratio,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_on_demand_equal_the_materialised_ones() {
        let mel = Mel {
            frames: 37,
            bands: 80,
            data: (0..37 * 80).map(|v| (v as f32 * 0.37).sin()).collect(),
        };
        let all = sadtalker_audio::mel_windows(&mel, 12);
        let lazy = SpectrogramWindows::new(mel, 12);
        let part = lazy.windows(3..9).unwrap();
        assert_eq!(part.dims(), &[6, 1, 80, 16]);
        let ours: Vec<f32> = part.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(ours, all.data[3 * 1280..9 * 1280]);
        assert!(lazy.windows(10..13).is_err());
    }
}
