//! The Audio2Coeff input batch: `get_data` of the reference's `generate_batch.py`.
//!
//! - `indiv_mels` `(1, T, 1, 80, 16)`: the per-frame mel windows ([`crate::frames`]);
//! - `ref` `(1, T, 70)`: the first frame's motion coefficients (`coeff_3dmm[:1, :70]`) on every
//!   frame, the expression replaced by a reference video's when `--ref_eyeblink` is given;
//! - `ratio_gt` `(1, T, 1)`: the random eye-blink sequence (zero with a reference video or with
//!   blinks turned off).

use std::path::Path;

use sadtalker_coeffs::file::{COEFF_KEY, CoeffError, CoeffTable};
use sadtalker_coeffs::splice::{SpliceError, apply_ref_eyeblink};
use sadtalker_coeffs::{MOTION_DIM, MotionCoeff};
use thiserror::Error;

use crate::blink::{BlinkRng, generate_blink_seq_randomly};
use crate::decode::{FPS, LoadOptions, load_speech};
use crate::error::{AudioError, AudioWarning};
use crate::frames::{MelWindows, frame_aligned, mel_windows};
use crate::mel::{HPARAMS, MelSpectrogram};

/// A batch that cannot be assembled.
#[derive(Debug, Error)]
pub enum BatchError {
    /// The speech file.
    #[error(transparent)]
    Audio(#[from] AudioError),
    /// A coefficient file.
    #[error(transparent)]
    Coeff(#[from] CoeffError),
    /// The eye-blink reference.
    #[error(transparent)]
    Splice(#[from] SpliceError),
    /// The first-frame coefficients are narrower than 70.
    #[error("the first-frame coefficients have {0} columns; at least 70 (exp, angle, trans) are needed")]
    NarrowSource(usize),
    /// An idle-mode length that gives no frame.
    #[error("idle mode needs a positive length in seconds, got {0}")]
    IdleLength(f64),
}

/// The reference's `batch` dictionary.
#[derive(Clone, Debug, PartialEq)]
pub struct Audio2CoeffBatch {
    /// `indiv_mels`.
    pub indiv_mels: MelWindows,
    /// `ref`: one row per frame.
    pub ref_coeff: Vec<MotionCoeff>,
    /// `ratio_gt`: one value per frame.
    pub ratio_gt: Vec<f32>,
    /// `num_frames` (`T`).
    pub num_frames: usize,
    /// `audio_name`: the speech file's stem.
    pub audio_name: String,
    /// `pic_name`: the first-frame coefficient file's stem.
    pub pic_name: String,
    /// Warnings from loading the speech.
    pub warnings: Vec<AudioWarning>,
}

/// Options of [`get_data`].
#[derive(Clone, Debug, PartialEq)]
pub struct BatchOptions {
    /// `use_blink`: keep the random blinks (the reference's default).
    pub use_blink: bool,
}

impl Default for BatchOptions {
    fn default() -> Self {
        BatchOptions { use_blink: true }
    }
}

/// The batch for 16 kHz mono `speech`, with `first` the first-frame `coeff_3dmm` table and
/// `ref_eyeblink` a reference video's `coeff_3dmm` table. Blinks are drawn from `rng` even when
/// a reference replaces them, so the random stream advances as in the reference.
pub fn get_data(
    first: &CoeffTable,
    speech: &[f32],
    ref_eyeblink: Option<&CoeffTable>,
    opts: &BatchOptions,
    rng: &mut impl BlinkRng,
) -> Result<Audio2CoeffBatch, BatchError> {
    let (wav, num_frames) = frame_aligned(speech);
    let mel = MelSpectrogram::new(&HPARAMS).compute(&wav);
    let indiv_mels = mel_windows(&mel, num_frames);
    assemble(first, indiv_mels, ref_eyeblink, opts, rng)
}

/// Idle mode (`idlemode=True, length_of_audio=seconds`): zero mel windows for
/// `int(seconds · 25)` frames.
pub fn get_data_idle(
    first: &CoeffTable,
    seconds: f64,
    ref_eyeblink: Option<&CoeffTable>,
    opts: &BatchOptions,
    rng: &mut impl BlinkRng,
) -> Result<Audio2CoeffBatch, BatchError> {
    let num_frames = (seconds * f64::from(FPS)) as usize;
    if seconds.is_nan() || seconds <= 0.0 || num_frames == 0 {
        return Err(BatchError::IdleLength(seconds));
    }
    assemble(
        first,
        MelWindows::zeros(num_frames, HPARAMS.num_mels),
        ref_eyeblink,
        opts,
        rng,
    )
}

/// `get_data` from files, as the reference calls it: the first-frame `.mat`, the speech file and
/// an optional eye-blink reference `.mat`.
pub fn get_data_from_files(
    first_coeff_path: &Path,
    audio_path: &Path,
    ref_eyeblink_path: Option<&Path>,
    opts: &BatchOptions,
    load: &LoadOptions,
    rng: &mut impl BlinkRng,
) -> Result<Audio2CoeffBatch, BatchError> {
    let first = CoeffTable::read(first_coeff_path, COEFF_KEY)?;
    let reference = ref_eyeblink_path.map(|p| CoeffTable::read(p, COEFF_KEY)).transpose()?;
    let speech = load_speech(audio_path, load)?;
    let mut batch = get_data(&first, &speech.samples, reference.as_ref(), opts, rng)?;
    batch.audio_name = stem(audio_path);
    batch.pic_name = stem(first_coeff_path);
    batch.warnings = speech.warnings;
    Ok(batch)
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn assemble(
    first: &CoeffTable,
    indiv_mels: MelWindows,
    ref_eyeblink: Option<&CoeffTable>,
    opts: &BatchOptions,
    rng: &mut impl BlinkRng,
) -> Result<Audio2CoeffBatch, BatchError> {
    if first.width < MOTION_DIM || first.rows == 0 {
        return Err(BatchError::NarrowSource(first.width));
    }
    let num_frames = indiv_mels.num_frames;
    let mut ratio = generate_blink_seq_randomly(num_frames, rng);
    let source =
        MotionCoeff::from_slice(&first.row(0)[..MOTION_DIM]).map_err(|_| BatchError::NarrowSource(first.width))?;
    let mut ref_coeff = vec![source; num_frames];
    if let Some(reference) = ref_eyeblink {
        ratio.iter_mut().for_each(|v| *v = 0.0);
        apply_ref_eyeblink(&mut ref_coeff, reference)?;
    }
    if !opts.use_blink {
        ratio.iter_mut().for_each(|v| *v = 0.0);
    }
    Ok(Audio2CoeffBatch {
        indiv_mels,
        ref_coeff,
        ratio_gt: ratio,
        num_frames,
        audio_name: String::new(),
        pic_name: String::new(),
        warnings: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blink::PyRandom;

    fn first(width: usize) -> CoeffTable {
        CoeffTable::new(1, width, (0..width).map(|v| v as f32 * 0.1).collect())
    }

    #[test]
    fn idle_mode_and_blink_switch() {
        let mut rng = PyRandom::seed(3);
        let b = get_data_idle(&first(73), 2.0, None, &BatchOptions::default(), &mut rng).unwrap();
        assert_eq!((b.num_frames, b.indiv_mels.shape()), (50, [1, 50, 1, 80, 16]));
        assert!(b.indiv_mels.data.iter().all(|&v| v == 0.0));
        assert!(b.ratio_gt.iter().any(|&v| v > 0.0), "50 frames get random blinks");
        assert_eq!(b.ref_coeff[49].0[..], first(73).row(0)[..70]);
        let off = BatchOptions { use_blink: false };
        let b = get_data_idle(&first(70), 2.0, None, &off, &mut rng).unwrap();
        assert!(b.ratio_gt.iter().all(|&v| v == 0.0));
        assert!(matches!(
            get_data_idle(&first(70), 0.01, None, &off, &mut rng),
            Err(BatchError::IdleLength(_))
        ));
        assert!(matches!(
            get_data_idle(&first(64), 1.0, None, &off, &mut rng),
            Err(BatchError::NarrowSource(64))
        ));
    }
}
