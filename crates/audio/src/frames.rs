//! Per-video-frame mel windows at 25 fps: the audio part of `get_data` in the reference's
//! `generate_batch.py`.
//!
//! The waveform is cut or zero-padded to a whole number of video frames (640 samples each at
//! 16 kHz); video frame `i` then sees 16 mel frames (0.2 s) starting at mel frame
//! `int(80 · (i − 2) / 25)`, indices clamped to the spectrogram, laid out `80 × 16`.

use crate::decode::{FPS, SAMPLE_RATE};
use crate::mel::Mel;

/// Mel frames per window (`syncnet_mel_step_size`).
pub const MEL_STEP_SIZE: usize = 16;
/// Mel frames per second (`80.` in the reference: 16000 / hop 200).
const MEL_FPS: f64 = 80.0;

/// `parse_audio_length(len, sr, fps)`: `(samples to keep, video frames)`, with the reference's
/// float arithmetic (`int(len / (sr / fps))`, `int(frames * (sr / fps))`).
pub fn parse_audio_length(len: usize, sr: u32, fps: u32) -> (usize, usize) {
    let bit_per_frames = f64::from(sr) / f64::from(fps);
    let num_frames = (len as f64 / bit_per_frames) as usize;
    let audio_length = (num_frames as f64 * bit_per_frames) as usize;
    (audio_length, num_frames)
}

/// `crop_pad_audio(wav, len)`: truncates or zero-pads to `len` samples.
pub fn crop_pad_audio(wav: &[f32], len: usize) -> Vec<f32> {
    let mut out = wav[..wav.len().min(len)].to_vec();
    out.resize(len, 0.0);
    out
}

/// The waveform trimmed to whole video frames, and the frame count (16 kHz, 25 fps).
pub fn frame_aligned(wav: &[f32]) -> (Vec<f32>, usize) {
    let (len, frames) = parse_audio_length(wav.len(), SAMPLE_RATE, FPS);
    (crop_pad_audio(wav, len), frames)
}

/// `indiv_mels`: one `bands × 16` mel window per video frame.
#[derive(Clone, Debug, PartialEq)]
pub struct MelWindows {
    /// Video frames (`T`).
    pub num_frames: usize,
    /// Mel bands per window row (80).
    pub bands: usize,
    /// `T × bands × 16` values, row-major: the reference's `(1, T, 1, 80, 16)` tensor.
    pub data: Vec<f32>,
}

impl MelWindows {
    /// All-zero windows, as the reference's idle mode uses.
    pub fn zeros(num_frames: usize, bands: usize) -> MelWindows {
        MelWindows {
            num_frames,
            bands,
            data: vec![0.0; num_frames * bands * MEL_STEP_SIZE],
        }
    }

    /// Window of video frame `i` (`bands × 16`, row-major).
    pub fn window(&self, i: usize) -> &[f32] {
        let n = self.bands * MEL_STEP_SIZE;
        &self.data[i * n..(i + 1) * n]
    }

    /// The shape the networks take: `[1, T, 1, bands, 16]`.
    pub fn shape(&self) -> [usize; 5] {
        [1, self.num_frames, 1, self.bands, MEL_STEP_SIZE]
    }
}

/// First mel frame of video frame `i`'s window: `int(80. * ((i - 2) / 25.))`, truncated toward
/// zero like Python's `int` (so frames 0 and 1 start at −6 and −3).
pub fn window_start(i: usize) -> i64 {
    let start_frame_num = i as i64 - 2;
    (MEL_FPS * (start_frame_num as f64 / f64::from(FPS))) as i64
}

/// The mel windows of `num_frames` video frames.
pub fn mel_windows(mel: &Mel, num_frames: usize) -> MelWindows {
    let mut out = MelWindows::zeros(num_frames, mel.bands);
    if mel.frames == 0 {
        return out;
    }
    let last = mel.frames as i64 - 1;
    let block = mel.bands * MEL_STEP_SIZE;
    for i in 0..num_frames {
        let start = window_start(i);
        let dst = &mut out.data[i * block..(i + 1) * block];
        for k in 0..MEL_STEP_SIZE {
            let t = (start + k as i64).clamp(0, last) as usize;
            for (b, v) in mel.frame(t).iter().enumerate() {
                dst[b * MEL_STEP_SIZE + k] = *v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_and_starts() {
        assert_eq!(parse_audio_length(80_000, 16_000, 25), (80_000, 125));
        assert_eq!(parse_audio_length(80_249, 16_000, 25), (80_000, 125));
        assert_eq!(parse_audio_length(639, 16_000, 25), (0, 0));
        assert_eq!(window_start(0), -6);
        assert_eq!(window_start(1), -3);
        assert_eq!(window_start(2), 0);
        assert_eq!(window_start(7), 16);
        assert_eq!(crop_pad_audio(&[1.0, 2.0], 3), vec![1.0, 2.0, 0.0]);
    }

    #[test]
    fn windows_clamp_and_transpose() {
        let mel = Mel {
            frames: 10,
            bands: 2,
            data: (0..20).map(|v| v as f32).collect(),
        };
        let w = mel_windows(&mel, 3);
        // Frame 0: mel frames -6..10 clamped: 0 ×7, 1..=9.
        let band0: Vec<f32> = w.window(0)[..16].to_vec();
        let expect: Vec<f32> = [0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
            .iter()
            .map(|&t| (t * 2) as f32)
            .collect();
        assert_eq!(band0, expect);
        assert_eq!(w.window(0)[16], 1.0);
        assert_eq!(w.shape(), [1, 3, 1, 2, 16]);
    }
}
