//! Exit codes and error reporting: one place decides what a failure looks like to users
//! and scripts.

use std::process::ExitCode;

/// Help text listing the exit codes (shown under `--help`).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  internal failure (a bug: please report it with the message)
  2  invalid command line
  3  bad input (unreadable, corrupt or unsuitable file)
  4  model files missing or damaged (see `sadtalker models`)
  5  degraded output: `generate --fallback still` wrote the still video because a stage failed
  6  partial batch: `batch` finished, but some jobs failed or were degraded (see DIR/report.jsonl)";

/// Categories of failure, each with its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Something that should not happen.
    Internal = 1,
    /// The user's input cannot be used.
    #[allow(
        dead_code,
        reason = "the input-reading commands (extract, audio2coeff, generate) use it"
    )]
    BadInput = 3,
    /// A model file is missing or damaged.
    Model = 4,
    /// A result was written, but degraded (the still fallback).
    Degraded = 5,
    /// A batch finished with some jobs failed or degraded.
    Partial = 6,
}

/// A failed command: what kind of failure, and the error chain to print.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn new(kind: Kind, error: impl Into<anyhow::Error>) -> Self {
        Self {
            kind,
            error: error.into(),
        }
    }

    /// Prints `error: <message>` with its causes, and returns the exit code.
    pub fn report(self) -> ExitCode {
        let label = match self.kind {
            Kind::Degraded => "degraded",
            Kind::Partial => "partial",
            _ => "error",
        };
        eprintln!("{label}: {}", self.error);
        for cause in self.error.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        ExitCode::from(self.kind as u8)
    }
}

/// Classifies a checkpoint error: a file that cannot be used as a model is a model problem.
impl From<sadtalker_checkpoint::CheckpointError> for Failure {
    fn from(e: sadtalker_checkpoint::CheckpointError) -> Self {
        use sadtalker_checkpoint::CheckpointError as E;
        let kind = match &e {
            E::Candle(_) => Kind::Internal,
            _ => Kind::Model,
        };
        Failure::new(kind, e)
    }
}
