//! The Wav2Lip mel spectrogram: `melspectrogram` of the reference's `utils/audio.py` with the
//! parameters of `utils/hparams.py`.
//!
//! Pre-emphasis `y[n] = x[n] − 0.97·x[n−1]`, a centred STFT (800-point periodic Hann window,
//! hop 200, zero padding of 400 each side: librosa 0.11's `pad_mode='constant'`), magnitudes, the
//! 80-band Slaney mel filter bank of `librosa.filters.mel` (55–7600 Hz, Slaney norm, `float32`
//! weights), `20·log10(max(1e-5, ·)) − 20` dB, then symmetric normalisation to `[-4, 4]` with
//! clipping. Everything runs in `f64` like the reference (scipy/numpy promote the `float32`
//! waveform), and the result is rounded to `f32` once, as the reference's `torch.FloatTensor` does.

use std::sync::Arc;

use rayon::prelude::*;
use realfft::{RealFftPlanner, RealToComplex};

/// The hyper-parameters `melspectrogram` reads from `hparams.py`.
#[derive(Clone, Debug, PartialEq)]
pub struct Hparams {
    /// `num_mels`.
    pub num_mels: usize,
    /// `n_fft`.
    pub n_fft: usize,
    /// `hop_size`.
    pub hop_size: usize,
    /// `win_size`.
    pub win_size: usize,
    /// `sample_rate`.
    pub sample_rate: u32,
    /// `preemphasis` (applied: `preemphasize=True`).
    pub preemphasis: f64,
    /// `min_level_db`.
    pub min_level_db: f64,
    /// `ref_level_db`.
    pub ref_level_db: f64,
    /// `fmin`.
    pub fmin: f64,
    /// `fmax`.
    pub fmax: f64,
    /// `max_abs_value` (with `symmetric_mels=True`, `allow_clipping_in_normalization=True`).
    pub max_abs_value: f64,
}

/// The reference's values.
pub const HPARAMS: Hparams = Hparams {
    num_mels: 80,
    n_fft: 800,
    hop_size: 200,
    win_size: 800,
    sample_rate: 16_000,
    preemphasis: 0.97,
    min_level_db: -100.0,
    ref_level_db: 20.0,
    fmin: 55.0,
    fmax: 7600.0,
    max_abs_value: 4.0,
};

/// A mel spectrogram laid out as the reference's `orig_mel = melspectrogram(wav).T`:
/// `frames × num_mels`, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Mel {
    /// Number of STFT frames (`1 + len / hop`).
    pub frames: usize,
    /// Mel bands per frame.
    pub bands: usize,
    /// `frames × bands` values in `[-4, 4]`.
    pub data: Vec<f32>,
}

impl Mel {
    /// Frame `t`'s bands.
    pub fn frame(&self, t: usize) -> &[f32] {
        &self.data[t * self.bands..(t + 1) * self.bands]
    }
}

/// STFT frames per parallel task.
const FRAMES_PER_TASK: usize = 128;

/// One mel filter: its non-zero weights and the first FFT bin they apply to.
#[derive(Clone, Debug)]
struct Filter {
    start: usize,
    weights: Vec<f64>,
}

/// A reusable mel front end (window, FFT plan and filter bank built once).
pub struct MelSpectrogram {
    hp: Hparams,
    window: Vec<f64>,
    filters: Vec<Filter>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl MelSpectrogram {
    /// The front end for `hp`.
    pub fn new(hp: &Hparams) -> MelSpectrogram {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(hp.n_fft);
        let basis = mel_basis(hp);
        let filters = basis
            .into_iter()
            .map(|row| {
                let start = row.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = row.iter().rposition(|&w| w != 0.0).map_or(start, |e| e + 1);
                Filter {
                    start,
                    weights: row[start..end].iter().map(|&w| f64::from(w)).collect(),
                }
            })
            .collect();
        MelSpectrogram {
            window: hann_periodic(hp.win_size),
            hp: hp.clone(),
            filters,
            fft,
        }
    }

    /// `melspectrogram(wav).T` of the reference.
    pub fn compute(&self, wav: &[f32]) -> Mel {
        let hp = &self.hp;
        let (n_fft, hop) = (hp.n_fft, hp.hop_size);
        let pad = n_fft / 2;
        // Pre-emphasis (scipy.signal.lfilter([1, -k], [1], wav) in float64), zero-padded.
        let mut y = vec![0f64; wav.len() + 2 * pad];
        for (i, v) in wav.iter().enumerate() {
            let prev = if i > 0 { f64::from(wav[i - 1]) } else { 0.0 };
            y[pad + i] = f64::from(*v) - hp.preemphasis * prev;
        }
        let frames = 1 + (y.len() - n_fft) / hop;
        // The window is centred in n_fft (pad_center); win_size == n_fft in the reference.
        let win_offset = (n_fft - self.window.len()) / 2;
        let min_level = (hp.min_level_db / 20.0 * 10f64.ln()).exp();
        let bins = n_fft / 2 + 1;

        // Frames are independent: blocks of them go to the rayon pool, each with its own buffers.
        let bands = hp.num_mels;
        let mut data = vec![0f32; frames * bands];
        data.par_chunks_mut(FRAMES_PER_TASK * bands)
            .enumerate()
            .for_each(|(block, out)| {
                let mut input = self.fft.make_input_vec();
                let mut spectrum = self.fft.make_output_vec();
                let mut scratch = self.fft.make_scratch_vec();
                let mut magnitude = vec![0f64; bins];
                for (k, out) in out.chunks_exact_mut(bands).enumerate() {
                    let t = block * FRAMES_PER_TASK + k;
                    let frame = &y[t * hop..t * hop + n_fft];
                    input.iter_mut().for_each(|v| *v = 0.0);
                    for (i, w) in self.window.iter().enumerate() {
                        input[win_offset + i] = frame[win_offset + i] * w;
                    }
                    // Lengths always match the plan: a failure here is a bug, not an input error.
                    #[allow(clippy::expect_used)]
                    self.fft
                        .process_with_scratch(&mut input, &mut spectrum, &mut scratch)
                        .expect("FFT buffers sized by the plan");
                    for (m, c) in magnitude.iter_mut().zip(&spectrum) {
                        // sqrt(re² + im²) rather than numpy's hypot: ~10× cheaper, equal to the last bit or two.
                        *m = (c.re * c.re + c.im * c.im).sqrt();
                    }
                    for (o, f) in out.iter_mut().zip(&self.filters) {
                        let s: f64 = f.weights.iter().zip(&magnitude[f.start..]).map(|(w, m)| w * m).sum();
                        let db = 20.0 * s.max(min_level).log10() - hp.ref_level_db;
                        *o = normalize(db, hp) as f32;
                    }
                }
            });
        Mel {
            frames,
            bands: hp.num_mels,
            data,
        }
    }
}

/// `melspectrogram(wav).T` with the reference's parameters (builds the front end each call;
/// keep a [`MelSpectrogram`] to compute many).
pub fn melspectrogram(wav: &[f32]) -> Mel {
    MelSpectrogram::new(&HPARAMS).compute(wav)
}

/// `_normalize` with symmetric mels and clipping.
fn normalize(s: f64, hp: &Hparams) -> f64 {
    let m = hp.max_abs_value;
    ((2.0 * m) * ((s - hp.min_level_db) / (-hp.min_level_db)) - m).clamp(-m, m)
}

/// `scipy.signal.get_window('hann', n)` (periodic): `general_cosine(n + 1, [0.5, 0.5])[:n]`, with
/// numpy's `linspace(-π, π, n + 1)` phases.
fn hann_periodic(n: usize) -> Vec<f64> {
    let phases = linspace(-std::f64::consts::PI, std::f64::consts::PI, n + 1);
    phases.iter().take(n).map(|&p| 0.5 + 0.5 * p.cos()).collect()
}

/// `np.linspace(start, stop, num)`: `start + i·step`, the last value exactly `stop`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// Slaney mel scale (`librosa.hz_to_mel`, `htk=False`).
fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

/// Inverse of [`hz_to_mel`] (`librosa.mel_to_hz`, `htk=False`).
fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        0.0 + f_sp * m
    }
}

/// `librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)` (Slaney scale and norm, `float32`):
/// `n_mels` rows of `1 + n_fft/2` weights.
fn mel_basis(hp: &Hparams) -> Vec<Vec<f32>> {
    let bins = hp.n_fft / 2 + 1;
    // np.fft.rfftfreq: i * (1 / (n * (1/sr))).
    let val = 1.0 / (hp.n_fft as f64 * (1.0 / f64::from(hp.sample_rate)));
    let fftfreqs: Vec<f64> = (0..bins).map(|i| i as f64 * val).collect();
    let mels = linspace(hz_to_mel(hp.fmin), hz_to_mel(hp.fmax), hp.num_mels + 2);
    let mel_f: Vec<f64> = mels.iter().map(|&m| mel_to_hz(m)).collect();
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();
    (0..hp.num_mels)
        .map(|i| {
            let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
            fftfreqs
                .iter()
                .map(|&f| {
                    let lower = -(mel_f[i] - f) / fdiff[i];
                    let upper = (mel_f[i + 2] - f) / fdiff[i + 1];
                    // Stored as float32, then scaled in float64 and stored again (numpy's
                    // `weights *= enorm[:, None]` on a float32 array).
                    let w = 0f64.max(lower.min(upper)) as f32;
                    (f64::from(w) * enorm) as f32
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_count_and_range() {
        let wav: Vec<f32> = (0..16_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let mel = melspectrogram(&wav);
        assert_eq!((mel.frames, mel.bands), (81, 80));
        assert!(mel.data.iter().all(|v| (-4.0..=4.0).contains(v)));
        // Silence sits at the floor: 20·log10(1e-5) − 20 = −120 dB → clipped to −4.
        let silent = melspectrogram(&[0.0; 800]);
        assert!(silent.data.iter().all(|&v| v == -4.0));
    }

    #[test]
    fn filter_bank_shape() {
        let basis = mel_basis(&HPARAMS);
        assert_eq!((basis.len(), basis[0].len()), (80, 401));
        // Band 0 starts above fmin = 55 Hz: bins of 20 Hz, so bin 2 (40 Hz) is zero.
        assert_eq!(basis[0][2], 0.0);
        assert!(basis[0][3] > 0.0);
    }
}
