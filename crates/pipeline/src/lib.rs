//! The whole SadTalker job as a library: `sadtalker generate`, `sadtalker batch` and `sadtalker doctor`
//! are thin layers over it.
//!
//! - [`generate()`]: one portrait + one speech → one talking-head MP4, with the options of the reference's
//!   `inference.py` ([`GenerateOptions`]), a per-stage report ([`Report`]) and the still-video fallback.
//! - [`frames`]: the face renderer's frame loop, shared with `sadtalker render`.
//! - [`JobOverrides`]: a job's option values as data (a batch CSV row, a JSON job, a form), merged over a
//!   base [`GenerateOptions`].
//! - [`batch`]: many jobs with the models loaded once, a JSON-lines report, resume and sharding.
//! - [`source_cache`]: portraits prepared by earlier jobs (crop, coefficients, renderer source), kept in
//!   [`Models`] so a second recording for the same portrait skips the preparation.
//! - [`doctor`]: system checks and the self-test (every stage on built-in weights, in seconds).
//!
//! Every failure is a [`PipelineError`]: the [`Stage`] that failed, the cause, and its [`ErrorKind`]
//! (bad input, model files, internal), from which the CLI derives its exit code.

pub mod batch;
pub mod compute;
pub mod doctor;
mod error;
pub mod frames;
mod generate;
mod models;
mod options;
pub mod outputs;
mod overrides;
mod progress;
pub mod source_cache;

pub use compute::{Compute, DeviceUsed, PrecisionUsed, device_used, precision_used};
pub use error::{Cause, ErrorKind, PipelineError, Problem, Stage};
pub use generate::{Degraded, Hooks, ModelUsed, Report, generate, generate_with, local_timestamp, timestamp};
pub use models::{DETECTOR, LANDMARKS, LEGACY_FACEVID, LEGACY_RECON, MAPPING, MAPPING_FULL, ModelSource, Models};
pub use options::{DeviceChoice, ENHANCERS, Fallback, GenerateOptions};
pub use outputs::{OutputBlocked, check_output_locations};
pub use overrides::{COLUMNS, JobOverrides, normalise_key};
pub use progress::{NoProgress, Progress, StageLog};
/// Process setup before any thread: no Wayland probe (and its error line) on a headless machine.
pub use sadtalker_gpu::quiet_headless_vulkan;
/// The face renderer's convolution precision (`--precision`), from the kernels crate.
pub use sadtalker_ops::Precision;
/// The heap policy a process that runs jobs sets at start (`retain_freed_memory`).
pub use sadtalker_ops::memory;
