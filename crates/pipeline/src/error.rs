//! What went wrong, in which stage, and what kind of failure it is (which decides the exit code
//! and the batch runner's troubleshooting hint).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The stages of one job, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Checking the options and reading the portrait, the speech and the reference files.
    Inputs,
    /// Finding (and on first use downloading) the model files and loading the networks.
    Models,
    /// Face detection, landmarks, crop and 3DMM extraction (`CropAndExtract`).
    Preprocess,
    /// Speech decoding is part of `Inputs`; this is the mel spectrogram and the blinks (`get_data`).
    Audio,
    /// Audio2Exp + Audio2Pose: per-frame motion coefficients.
    Audio2Coeff,
    /// The face renderer (MappingNet + face-vid2vid), frame by frame.
    Render,
    /// Pasting the rendered face back into the full portrait (`full`, `extfull`).
    PasteBack,
    /// The face enhancer (GFPGAN / RestoreFormer).
    Enhance,
    /// H.264 + AAC encoding and the MP4 file.
    Encode,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 9] = [
        Stage::Inputs,
        Stage::Models,
        Stage::Preprocess,
        Stage::Audio,
        Stage::Audio2Coeff,
        Stage::Render,
        Stage::PasteBack,
        Stage::Enhance,
        Stage::Encode,
    ];

    /// The stage's name in reports (`snake_case`, as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Inputs => "inputs",
            Stage::Models => "models",
            Stage::Preprocess => "preprocess",
            Stage::Audio => "audio",
            Stage::Audio2Coeff => "audio2coeff",
            Stage::Render => "render",
            Stage::PasteBack => "paste_back",
            Stage::Enhance => "enhance",
            Stage::Encode => "encode",
        }
    }

    /// A label for progress displays.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Inputs => "reading inputs",
            Stage::Models => "loading models",
            Stage::Preprocess => "face crop + 3DMM",
            Stage::Audio => "mel spectrogram",
            Stage::Audio2Coeff => "audio → motion",
            Stage::Render => "face renderer",
            Stage::PasteBack => "paste back",
            Stage::Enhance => "enhancer",
            Stage::Encode => "video encoding",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a failure: what the user can do about it, and the CLI's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// An input file or option cannot be used (exit code 3).
    BadInput,
    /// Model files are missing or damaged (exit code 4).
    Model,
    /// Something that should not happen (exit code 1).
    Internal,
}

impl ErrorKind {
    /// The name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Model => "model",
            ErrorKind::Internal => "internal",
        }
    }
}

/// The underlying error of a failed stage.
#[derive(Debug, thiserror::Error)]
pub enum Cause {
    /// The model store (missing, damaged or undownloadable files).
    #[error(transparent)]
    Store(#[from] sadtalker_store::StoreError),
    /// A checkpoint file that cannot be read as a model.
    #[error(transparent)]
    Checkpoint(#[from] sadtalker_checkpoint::CheckpointError),
    /// Face detection, crop or 3DMM extraction.
    #[error(transparent)]
    Preprocess(#[from] sadtalker_preprocess::PreprocessError),
    /// The speech file.
    #[error(transparent)]
    Audio(#[from] sadtalker_audio::AudioError),
    /// Audio2Exp / Audio2Pose.
    #[error(transparent)]
    Audio2Coeff(#[from] sadtalker_audio2coeff::Audio2CoeffError),
    /// A coefficient file.
    #[error(transparent)]
    Coeff(#[from] sadtalker_coeffs::CoeffError),
    /// The renderer's coefficient windows.
    #[error(transparent)]
    FaceRenderData(#[from] sadtalker_coeffs::facerender::FaceRenderError),
    /// The face renderer.
    #[error(transparent)]
    Render(#[from] sadtalker_render::RenderError),
    /// Video reading or writing.
    #[error(transparent)]
    Video(#[from] sadtalker_video::VideoError),
    /// The face enhancer's model files cannot be loaded.
    #[error("cannot load the face enhancer (GFPGAN v1.4 or RestoreFormer, ParseNet, RetinaFace, Real-ESRGAN): {0}")]
    EnhancerModel(sadtalker_enhance::EnhanceError),
    /// The face enhancer failed on a frame.
    #[error(transparent)]
    Enhance(#[from] sadtalker_enhance::EnhanceError),
    /// A file-system operation.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// An option or input that cannot be used, with what to do instead.
    #[error("{0}")]
    Input(String),
    /// A feature this build does not have yet.
    #[error("{0}")]
    Unavailable(String),
    /// The `--device` asked for cannot be opened (no driver, no such API here) or failed.
    #[error(transparent)]
    Device(#[from] sadtalker_gpu::GpuError),
    /// Something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
    /// The run was stopped on request ([`Progress::cancelled`](crate::Progress::cancelled)).
    #[error("cancelled")]
    Cancelled,
}

/// A failed job: the stage, and why.
#[derive(Debug, thiserror::Error)]
#[error("{stage} stage failed: {cause}")]
pub struct PipelineError {
    /// Where it failed.
    pub stage: Stage,
    /// Why (boxed: the causes are large and every `Result` of the pipeline carries this).
    pub cause: Box<Cause>,
}

impl PipelineError {
    /// A failure of `stage`.
    pub fn new(stage: Stage, cause: impl Into<Cause>) -> Self {
        Self {
            stage,
            cause: Box::new(cause.into()),
        }
    }

    /// An unusable option or input.
    pub fn input(stage: Stage, message: impl Into<String>) -> Self {
        Self::new(stage, Cause::Input(message.into()))
    }

    /// The run was stopped on request at `stage`.
    pub fn cancelled(stage: Stage) -> Self {
        Self::new(stage, Cause::Cancelled)
    }

    /// Whether the run was stopped on request rather than failing.
    pub fn is_cancelled(&self) -> bool {
        matches!(*self.cause, Cause::Cancelled)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        use sadtalker_audio2coeff::Audio2CoeffError as A;
        use sadtalker_checkpoint::CheckpointError as C;
        use sadtalker_preprocess::PreprocessError as P;
        use sadtalker_store::StoreError as S;
        use sadtalker_video::VideoError as V;
        match &*self.cause {
            Cause::Store(e) => match e {
                S::BadManifest { .. } | S::UnknownFile { .. } | S::UnknownFeature { .. } => ErrorKind::BadInput,
                S::Http(_) => ErrorKind::Internal,
                _ => ErrorKind::Model,
            },
            Cause::Checkpoint(C::Candle(_)) => ErrorKind::Internal,
            Cause::Checkpoint(_) => ErrorKind::Model,
            Cause::Preprocess(e) => match e {
                P::Nn(e) if e.is_weights() => ErrorKind::Model,
                P::ImageRead { .. }
                | P::ImageTooLarge { .. }
                | P::NoFace { .. }
                | P::FaceIndex { .. }
                | P::Landmarks(_)
                | P::Geometry(_)
                | P::Io { .. }
                | P::Coeff(_) => ErrorKind::BadInput,
                _ => ErrorKind::Internal,
            },
            Cause::Audio(e) => match e {
                sadtalker_audio::AudioError::Resample { .. } => ErrorKind::Internal,
                _ => ErrorKind::BadInput,
            },
            Cause::Audio2Coeff(e) => match e {
                A::Nn(e) if e.is_weights() => ErrorKind::Model,
                A::NoCheckpoint { .. } | A::UnexpectedTensors { .. } => ErrorKind::Model,
                A::Input(_) | A::Splice(_) => ErrorKind::BadInput,
                _ => ErrorKind::Internal,
            },
            Cause::Coeff(_) | Cause::FaceRenderData(_) => ErrorKind::BadInput,
            Cause::Render(sadtalker_render::RenderError::Nn(e)) if e.is_weights() => ErrorKind::Model,
            Cause::Render(_) => ErrorKind::Internal,
            Cause::Video(e) => match e {
                V::Write { .. }
                | V::Read { .. }
                | V::UnsupportedFrameSize { .. }
                | V::UnsupportedAudio(_)
                | V::UnreadableMp4 { .. }
                | V::DamagedVideo { .. }
                | V::UnsupportedCodec { .. }
                | V::NeedsFfmpeg { .. }
                | V::Ffmpeg { .. }
                | V::TooLarge { .. }
                | V::Image { .. } => ErrorKind::BadInput,
                _ => ErrorKind::Internal,
            },
            Cause::EnhancerModel(_) => ErrorKind::Model,
            Cause::Enhance(_) => ErrorKind::Internal,
            Cause::Io { .. } | Cause::Input(_) | Cause::Unavailable(_) | Cause::Device(_) => ErrorKind::BadInput,
            // Not a failure of the job's inputs or models; nothing for a user to fix.
            Cause::Internal(_) | Cause::Cancelled => ErrorKind::Internal,
        }
    }

    /// The problem, for reports, the batch summary and the hint (`no_face`, `audio_too_short`,
    /// `models_missing`, ...).
    pub fn code(&self) -> Problem {
        use sadtalker_audio::AudioError as Au;
        use sadtalker_preprocess::PreprocessError as P;
        use sadtalker_store::StoreError as S;
        match &*self.cause {
            Cause::Preprocess(P::NoFace { .. }) => Problem::NoFace,
            Cause::Preprocess(P::FaceIndex { .. }) => Problem::FaceIndex,
            Cause::Preprocess(P::ImageTooLarge { .. }) => Problem::ImageTooLarge,
            Cause::Preprocess(P::ImageRead { .. }) => Problem::ImageUnreadable,
            Cause::Preprocess(P::Landmarks(_)) => Problem::BadLandmarks,
            Cause::Preprocess(P::Geometry(_)) => Problem::FaceGeometry,
            Cause::Audio(Au::TooShort { .. }) => Problem::AudioTooShort,
            Cause::Audio(Au::TooLong { .. }) => Problem::AudioTooLong,
            Cause::Audio(_) => Problem::AudioUnreadable,
            Cause::Store(S::Missing { .. } | S::Offline { .. }) => Problem::ModelsMissing,
            Cause::Store(S::FetchFailed { .. }) => Problem::ModelsDownloadFailed,
            Cause::Store(S::Damaged { .. }) => Problem::ModelsDamaged,
            Cause::Store(S::InsufficientSpace { .. }) => Problem::DiskFull,
            Cause::Video(sadtalker_video::VideoError::NeedsFfmpeg { .. }) => Problem::NeedsFfmpeg,
            Cause::Unavailable(_) => Problem::Unavailable,
            Cause::Device(_) => Problem::DeviceUnavailable,
            Cause::Io { .. } => Problem::FileAccess,
            Cause::Cancelled => Problem::Cancelled,
            _ => match self.kind() {
                ErrorKind::BadInput => Problem::BadInput,
                ErrorKind::Model => Problem::ModelsDamaged,
                ErrorKind::Internal => Problem::Internal,
            },
        }
    }
}

/// A problem a job can have: its stable name in reports (`no_face`, ...) and what to try
/// ([`Problem::hint`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// No face found in the portrait.
    NoFace,
    /// Fewer faces than `--face-index`.
    FaceIndex,
    /// The portrait is larger than the pixel cap.
    ImageTooLarge,
    /// The portrait cannot be decoded.
    ImageUnreadable,
    /// The landmark file is unusable.
    BadLandmarks,
    /// The face is at the border or too large to crop.
    FaceGeometry,
    /// The speech is shorter than one frame.
    AudioTooShort,
    /// The speech is longer than `--max-seconds`.
    AudioTooLong,
    /// The speech cannot be decoded.
    AudioUnreadable,
    /// Model files are not installed.
    ModelsMissing,
    /// Model files could not be downloaded.
    ModelsDownloadFailed,
    /// Model files are damaged.
    ModelsDamaged,
    /// Not enough disk space.
    DiskFull,
    /// A reference video in a codec only an ffmpeg executable decodes, and none was found.
    NeedsFfmpeg,
    /// A feature this build does not have.
    Unavailable,
    /// The `--device` cannot be opened or failed (driver missing or broken).
    DeviceUnavailable,
    /// A file cannot be read or written.
    FileAccess,
    /// A job list row with an unusable value.
    BadOption,
    /// Another unusable input or option.
    BadInput,
    /// Something that should not happen.
    Internal,
    /// The run was stopped on request (a server's cancel or time limit).
    Cancelled,
    /// A name this version does not know (a report written by another version).
    #[serde(other)]
    Unknown,
}

impl Problem {
    /// The name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::NoFace => "no_face",
            Problem::FaceIndex => "face_index",
            Problem::ImageTooLarge => "image_too_large",
            Problem::ImageUnreadable => "image_unreadable",
            Problem::BadLandmarks => "bad_landmarks",
            Problem::FaceGeometry => "face_geometry",
            Problem::AudioTooShort => "audio_too_short",
            Problem::AudioTooLong => "audio_too_long",
            Problem::AudioUnreadable => "audio_unreadable",
            Problem::ModelsMissing => "models_missing",
            Problem::ModelsDownloadFailed => "models_download_failed",
            Problem::ModelsDamaged => "models_damaged",
            Problem::DiskFull => "disk_full",
            Problem::NeedsFfmpeg => "needs_ffmpeg",
            Problem::Unavailable => "unavailable",
            Problem::DeviceUnavailable => "device_unavailable",
            Problem::FileAccess => "file_access",
            Problem::BadOption => "bad_option",
            Problem::BadInput => "bad_input",
            Problem::Internal => "internal",
            Problem::Cancelled => "cancelled",
            Problem::Unknown => "unknown",
        }
    }

    /// What to try.
    pub fn hint(self) -> &'static str {
        match self {
            Problem::NoFace => {
                "no face was found: try `--preprocess full` (a wider shot), a lower `--face-threshold`, a larger \
                 and frontal face, or give the 68 landmarks with `--landmarks FILE`"
            }
            Problem::FaceIndex => "fewer faces than --face-index: use 0 for the most prominent face",
            Problem::ImageTooLarge => "downscale the portrait to at most 4096 pixels per side",
            Problem::ImageUnreadable => {
                "the portrait must be a PNG, JPEG, WebP, BMP or TIFF file; re-save it with an image editor"
            }
            Problem::BadLandmarks => "the landmark file needs 68 points (136 numbers, x y per point)",
            Problem::FaceGeometry => {
                "the face is too close to the image border or too large: try `--preprocess resize`"
            }
            Problem::AudioTooShort => "the speech must be at least 0.04 s (one video frame) long",
            Problem::AudioTooLong => "split the speech into shorter files (see --max-seconds)",
            Problem::AudioUnreadable => {
                "convert the speech to WAV or FLAC, e.g. `ffmpeg -i IN -ar 16000 -ac 1 out.wav`"
            }
            Problem::ModelsMissing => {
                "install the model files: `sadtalker models fetch --for 256` (512 for --size 512; add `--for \
                 enhancer`, `--for restoreformer` or `--for realesrgan` for --enhancer gfpgan / RestoreFormer and \
                 --background-enhancer realesrgan), or `sadtalker models import DIR` offline"
            }
            Problem::ModelsDownloadFailed => {
                "check the network or give a mirror (--mirror / $SADTALKER_MIRROR), then `sadtalker models fetch \
                 --for 256`; without internet, copy the files here and run `sadtalker models import DIR`"
            }
            Problem::ModelsDamaged => {
                "run `sadtalker models verify`, then `sadtalker models fetch` for the files it names"
            }
            Problem::DiskFull => "free some disk space or set SADTALKER_HOME to a larger disk",
            Problem::NeedsFfmpeg => {
                "install ffmpeg (it decodes reference videos that are not H.264 MP4), or convert the video to H.264 \
                 MP4 with the command in the message"
            }
            Problem::Unavailable => "this feature is not in this build yet; run without it",
            Problem::DeviceUnavailable => {
                "install or fix the device's driver as the message says, or run with --device cpu"
            }
            Problem::FileAccess => "check the path exists and is writable",
            Problem::BadOption => "fix the job's row in the job list",
            Problem::BadInput => "check the input files and options named in the message",
            Problem::Cancelled => "the job was cancelled; submit it again to run it",
            Problem::Internal | Problem::Unknown => "this is a bug: please report it with the message",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A blocked output location is unusable input, found while reading the inputs.
impl From<crate::outputs::OutputBlocked> for PipelineError {
    fn from(e: crate::outputs::OutputBlocked) -> Self {
        PipelineError::input(Stage::Inputs, e.to_string())
    }
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Cause {
    let path = path.into();
    move |source| Cause::Io { path, source }
}

/// Attaches a stage to a fallible step.
pub(crate) trait AtStage<T> {
    fn at(self, stage: Stage) -> Result<T, PipelineError>;
}

impl<T, E: Into<Cause>> AtStage<T> for Result<T, E> {
    fn at(self, stage: Stage) -> Result<T, PipelineError> {
        self.map_err(|e| PipelineError::new(stage, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Damaged inputs are the user's to fix (exit code 3), not bugs (exit code 1): a damaged H.264
    /// reference video, an audio header announcing more than its file holds, NaN samples.
    #[test]
    fn damaged_inputs_are_bad_input() {
        let video = PipelineError::new(
            Stage::Inputs,
            sadtalker_video::VideoError::DamagedVideo {
                path: PathBuf::from("pose.mp4"),
                detail: "decoding of sample 0: damaged sample".into(),
            },
        );
        assert_eq!(video.kind(), ErrorKind::BadInput);
        assert!(video.to_string().contains("pose.mp4"), "{video}");
        for audio in [
            sadtalker_audio::AudioError::Truncated {
                source_name: "a.wav".into(),
                decoded_seconds: 0.1,
                declared_seconds: 9000.0,
            },
            sadtalker_audio::AudioError::NonFinite {
                source_name: "a.wav".into(),
                count: 3,
                first_seconds: 0.0,
            },
        ] {
            let e = PipelineError::new(Stage::Inputs, audio);
            assert_eq!(
                (e.kind(), e.code()),
                (ErrorKind::BadInput, Problem::AudioUnreadable),
                "{e}"
            );
        }
    }
}
