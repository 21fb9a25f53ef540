use std::path::PathBuf;

/// Why a checkpoint or one of its tensors could not be used. Every variant names the file;
/// the messages end with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The file is not a checkpoint in any format we know (an HTML error page, a Git LFS
    /// pointer, an archive of something else, ...).
    #[error("{} is not a model checkpoint: {what}", path.display())]
    NotACheckpoint {
        /// The file.
        path: PathBuf,
        /// What it looks like instead, and the remedy.
        what: String,
    },
    /// The file has a checkpoint's format but its contents are inconsistent: truncated,
    /// or corrupt.
    #[error("{} is damaged: {detail}. It is probably truncated or corrupt: delete it and download it again (`sadtalker models verify` checks every model file)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the reader found wrong.
        detail: String,
    },
    /// A tensor the network needs is not in the file.
    #[error("{} has no tensor `{name}`{hint}", path)]
    MissingTensor {
        /// The weight source (a file path, or the recipe).
        path: String,
        /// The full dotted name looked for.
        name: String,
        /// Near misses, or the prefixes the file does have.
        hint: String,
    },
    /// A tensor has another shape than the network expects.
    #[error(
        "{path}: tensor `{name}` has shape {found:?}, the network expects {expected:?}; the file is for another model or configuration (check --size and the file name)"
    )]
    ShapeMismatch {
        /// The weight source.
        path: String,
        /// The tensor's full name.
        name: String,
        /// The shape the network asked for.
        expected: Vec<usize>,
        /// The shape in the file.
        found: Vec<usize>,
    },
    /// A tensor's element type cannot be turned into `f32`.
    #[error("{path}: tensor `{name}` holds {dtype} elements, which cannot be loaded as f32 weights")]
    ElementType {
        /// The weight source.
        path: String,
        /// The tensor's full name.
        name: String,
        /// The element type found.
        dtype: String,
    },
    /// An error from candle while building a tensor.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result of checkpoint operations.
pub type Result<T> = std::result::Result<T, CheckpointError>;
