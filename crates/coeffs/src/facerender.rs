//! The face renderer's coefficient inputs: `get_facerender_data` of
//! `generate_facerender_batch.py`, without the image part.
//!
//! The renderer's mapping network sees each frame through a window of 27 frames (radius 13)
//! of coefficients, clamped at the sequence ends, as a `channels × 27` block. The source image
//! gets the same block with its own coefficients in all 27 slots. Before windowing, the
//! expression is scaled, 'full' preprocessing appends the source's crop parameters to every
//! frame (mapping with 73 inputs), and still mode replaces the pose (and crop) by the source's.

use thiserror::Error;

use crate::camera::{CameraError, CameraPath, gen_camera_pose};
use crate::file::CoeffTable;
use crate::types::{EXP, FIRST_FRAME_DIM, MOTION_DIM};

/// The window radius (`semantic_radius`): 13 frames each side, 27 in all.
pub const SEMANTIC_RADIUS: usize = 13;
/// Frames per window.
pub const SEMANTIC_WINDOW: usize = 2 * SEMANTIC_RADIUS + 1;

/// Inputs that cannot be turned into renderer data.
#[derive(Clone, Debug, Error, PartialEq)]
pub enum FaceRenderError {
    /// The generated sequence is empty.
    #[error("the generated coefficient sequence has no frames")]
    NoFrames,
    /// The first-frame table has no rows.
    #[error("the first-frame coefficients have no rows")]
    NoSource,
    /// A table is narrower than its use needs.
    #[error("the {what} coefficients have {got} columns, {need} are needed{}", if *need == FIRST_FRAME_DIM {
        " ('full' preprocessing needs the 73-column first-frame file with crop parameters)"
    } else { "" })]
    TooNarrow {
        /// Which table.
        what: &'static str,
        /// Its width.
        got: usize,
        /// Needed width.
        need: usize,
    },
    /// Batch size zero.
    #[error("the batch size must be at least 1")]
    BatchSize,
    /// A yaw/pitch/roll path error.
    #[error(transparent)]
    Camera(#[from] CameraError),
}

/// Options of [`get_facerender_data`] (the reference's keyword arguments).
#[derive(Clone, Debug, PartialEq)]
pub struct FaceRenderOptions {
    /// Renderer batch size (`--batch_size`, default 2).
    pub batch_size: usize,
    /// Expression scale (`--expression_scale`, default 1.0).
    pub expression_scale: f32,
    /// Still mode (`--still`): keep the source image's pose.
    pub still_mode: bool,
    /// 'full'-family preprocessing (`full`, `extfull`): 73-D inputs with crop parameters.
    pub full: bool,
    /// `--input_yaw` waypoints (degrees).
    pub yaw: Option<Vec<f64>>,
    /// `--input_pitch` waypoints (degrees).
    pub pitch: Option<Vec<f64>>,
    /// `--input_roll` waypoints (degrees).
    pub roll: Option<Vec<f64>>,
}

impl Default for FaceRenderOptions {
    fn default() -> Self {
        FaceRenderOptions {
            batch_size: 2,
            expression_scale: 1.0,
            still_mode: false,
            full: false,
            yaw: None,
            pitch: None,
            roll: None,
        }
    }
}

impl FaceRenderOptions {
    /// Whether a `--preprocess` value selects the 'full' variant (the reference tests
    /// `'full' in preprocess.lower()`).
    pub fn is_full_preprocess(preprocess: &str) -> bool {
        preprocess.to_lowercase().contains("full")
    }
}

/// The renderer's coefficient inputs.
#[derive(Clone, Debug, PartialEq)]
pub struct FaceRenderInput {
    /// Coefficients per frame: 70, or 73 in 'full' mode.
    pub channels: usize,
    /// The source image's window, `channels × 27` row-major (the reference repeats it
    /// `batch_size` times as `source_semantics`).
    pub source_semantics: Vec<f32>,
    /// `target_semantics_list`: `batch_size × (padded / batch_size) × channels × 27`, where the
    /// frame list is padded to a multiple of the batch size by repeating the last window.
    pub target_semantics: Vec<f32>,
    /// Frames in the generated sequence (`frame_num`), before padding.
    pub frame_num: usize,
    /// Batch size.
    pub batch_size: usize,
    /// `yaw_c_seq`, when a yaw path was given.
    pub yaw: Option<CameraPath>,
    /// `pitch_c_seq`, when a pitch path was given.
    pub pitch: Option<CameraPath>,
    /// `roll_c_seq`, when a roll path was given.
    pub roll: Option<CameraPath>,
}

impl FaceRenderInput {
    /// Windows per batch row (`padded frames / batch_size`).
    pub fn frames_per_batch(&self) -> usize {
        self.target_semantics.len() / (self.batch_size * self.channels * SEMANTIC_WINDOW)
    }

    /// The `channels × 27` window of padded frame `index` (row-major over the padded list).
    pub fn target_window(&self, index: usize) -> &[f32] {
        let n = self.channels * SEMANTIC_WINDOW;
        &self.target_semantics[index * n..(index + 1) * n]
    }
}

/// `get_facerender_data` for the coefficients: `first` is the first-frame `coeff_3dmm` (its row 0
/// is the source), `generated` the Audio2Coeff output (its first 70 columns are used).
pub fn get_facerender_data(
    first: &CoeffTable,
    generated: &CoeffTable,
    opts: &FaceRenderOptions,
) -> Result<FaceRenderInput, FaceRenderError> {
    if opts.batch_size == 0 {
        return Err(FaceRenderError::BatchSize);
    }
    if first.rows == 0 {
        return Err(FaceRenderError::NoSource);
    }
    if generated.rows == 0 {
        return Err(FaceRenderError::NoFrames);
    }
    let channels = if opts.full { FIRST_FRAME_DIM } else { MOTION_DIM };
    if first.width < channels {
        return Err(FaceRenderError::TooNarrow {
            what: "first-frame",
            got: first.width,
            need: channels,
        });
    }
    if generated.width < MOTION_DIM {
        return Err(FaceRenderError::TooNarrow {
            what: "generated",
            got: generated.width,
            need: MOTION_DIM,
        });
    }
    let source = &first.row(0)[..channels];
    let source_semantics = transform_semantic_1(source);

    // The target sequence, frame by frame: scaled expression, optional crop, optional still pose.
    let frame_num = generated.rows;
    let mut target = Vec::with_capacity(frame_num * channels);
    for row in generated.iter_rows() {
        let start = target.len();
        target.extend_from_slice(&row[..MOTION_DIM]);
        for v in &mut target[start + EXP.start..start + EXP.end] {
            *v *= opts.expression_scale;
        }
        if opts.full {
            target.extend_from_slice(&source[MOTION_DIM..FIRST_FRAME_DIM]);
        }
        if opts.still_mode {
            target[start + EXP.end..start + channels].copy_from_slice(&source[EXP.end..channels]);
        }
    }

    let padded = frame_num.div_ceil(opts.batch_size) * opts.batch_size;
    let block = channels * SEMANTIC_WINDOW;
    let mut target_semantics = Vec::with_capacity(padded * block);
    for frame in 0..frame_num {
        transform_semantic_target(&target, channels, frame_num, frame, &mut target_semantics);
    }
    // Padding repeats the last window.
    let last = target_semantics[(frame_num - 1) * block..frame_num * block].to_vec();
    for _ in frame_num..padded {
        target_semantics.extend_from_slice(&last);
    }

    let camera = |list: &Option<Vec<f64>>, axis| {
        list.as_ref()
            .map(|l| gen_camera_pose(l, frame_num, opts.batch_size, axis))
            .transpose()
    };
    Ok(FaceRenderInput {
        channels,
        source_semantics,
        target_semantics,
        frame_num,
        batch_size: opts.batch_size,
        yaw: camera(&opts.yaw, "yaw")?,
        pitch: camera(&opts.pitch, "pitch")?,
        roll: camera(&opts.roll, "roll")?,
    })
}

/// `transform_semantic_1`: the source coefficients in all 27 slots, as `channels × 27`.
fn transform_semantic_1(source: &[f32]) -> Vec<f32> {
    source
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, SEMANTIC_WINDOW))
        .collect()
}

/// `transform_semantic_target`: frames `index-13 ..= index+13` clamped to the sequence, as
/// `channels × 27`, appended to `out`.
fn transform_semantic_target(seq: &[f32], channels: usize, frames: usize, index: usize, out: &mut Vec<f32>) {
    let rows: Vec<usize> = (0..SEMANTIC_WINDOW)
        .map(|k| (index + k).saturating_sub(SEMANTIC_RADIUS).min(frames - 1))
        .collect();
    for c in 0..channels {
        out.extend(rows.iter().map(|&r| seq[r * channels + c]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(rows: usize, width: usize) -> CoeffTable {
        CoeffTable::new(rows, width, (0..rows * width).map(|v| v as f32 * 0.01).collect())
    }

    #[test]
    fn windows_clamp_at_the_edges() {
        let first = table(1, 73);
        let generated = table(3, 70);
        let d = get_facerender_data(&first, &generated, &FaceRenderOptions::default()).unwrap();
        assert_eq!(d.channels, 70);
        assert_eq!(d.frames_per_batch(), 2);
        // Window of frame 0, channel 0: 14 copies of frame 0, then frames 1, 2, 2, ...
        let w = d.target_window(0);
        assert!(w[..14].iter().all(|&v| v == generated.row(0)[0]));
        assert_eq!(w[14], generated.row(1)[0]);
        assert!(w[15..27].iter().all(|&v| v == generated.row(2)[0]));
        // The padded 4th window repeats the 3rd.
        assert_eq!(d.target_window(3), d.target_window(2));
        assert!(d.source_semantics[27..54].iter().all(|&v| v == first.row(0)[1]));
    }

    #[test]
    fn full_still_and_scale() {
        let first = table(1, 73);
        let generated = table(2, 70);
        let opts = FaceRenderOptions {
            batch_size: 1,
            expression_scale: 2.0,
            still_mode: true,
            full: true,
            ..FaceRenderOptions::default()
        };
        let d = get_facerender_data(&first, &generated, &opts).unwrap();
        assert_eq!(d.channels, 73);
        let w = d.target_window(1);
        let at = |c: usize| w[c * SEMANTIC_WINDOW + SEMANTIC_RADIUS];
        assert_eq!(at(5), generated.row(1)[5] * 2.0);
        for c in 64..73 {
            assert_eq!(at(c), first.row(0)[c], "column {c} comes from the source");
        }
        let narrow = table(1, 70);
        assert!(matches!(
            get_facerender_data(&narrow, &generated, &opts),
            Err(FaceRenderError::TooNarrow { need: 73, .. })
        ));
    }
}
