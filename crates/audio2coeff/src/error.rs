//! Errors of this crate.

use std::path::PathBuf;

/// Why Audio2Coeff could not load or run.
#[derive(Debug, thiserror::Error)]
pub enum Audio2CoeffError {
    /// A network could not be built or run: a weight that could not be loaded (missing, wrong shape,
    /// damaged file), an operation that rejected its inputs, or candle.
    #[error(transparent)]
    Nn(#[from] sadtalker_nn::NnError),
    /// No usable checkpoint in the checkpoint folder.
    #[error(
        "no Audio2Coeff checkpoint in {dir}: expected {wanted} (or the legacy pair auido2exp_00300-model.pth + \
         auido2pose_00140-model.pth); get them with `sadtalker models fetch` or point --checkpoint-dir at the folder \
         that holds them"
    )]
    NoCheckpoint {
        /// The folder searched.
        dir: PathBuf,
        /// The file looked for first.
        wanted: String,
    },
    /// A checkpoint holds tensors no part of the network takes: probably not an Audio2Coeff checkpoint.
    #[error(
        "{file}: {count} tensor(s) under `{prefix}` are not part of the network (first: {first}); is this a \
         SadTalker Audio2Coeff checkpoint?"
    )]
    UnexpectedTensors {
        /// The checkpoint file.
        file: String,
        /// The prefix checked.
        prefix: String,
        /// How many.
        count: usize,
        /// The first one.
        first: String,
    },
    /// The noise source could not deliver a draw.
    #[error("noise source: {0}")]
    Noise(String),
    /// Inputs that do not fit together.
    #[error("{0}")]
    Input(String),
    /// A network configuration that cannot work.
    #[error("configuration: {0}")]
    Config(String),
    /// Splicing a reference sequence failed.
    #[error(transparent)]
    Splice(#[from] sadtalker_coeffs::splice::SpliceError),
}

sadtalker_nn::layer_error_conversions!(Audio2CoeffError);

/// Result of this crate's operations.
pub type Result<T> = std::result::Result<T, Audio2CoeffError>;
