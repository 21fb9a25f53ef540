//! Exit codes and error reporting: one place decides what a failure looks like to users
//! and scripts.

use std::process::ExitCode;

/// Help text listing the exit codes (shown under `--help`).
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  internal failure (a bug: please report it with the message)
  2  invalid command line; also an output location blocked by a file (`-o`, `--result-dir`,
     `--frames-dir`, `batch --out` where a file is in the way of a folder), found before models load
  3  bad input (unreadable, corrupt or unsuitable file)
  4  model files missing or damaged (see `sadtalker models`)
  5  degraded output: `generate --fallback still` wrote the still video because a stage failed
  6  partial batch: `batch` finished, but some jobs failed or were degraded (see DIR/report.jsonl)
130  interrupted (SIGINT, Ctrl-C) during `generate` or `batch`: stopped after the current frame, its
     temporary files removed; a batch's report keeps the jobs that finished (rerun with --resume).
     A second Ctrl-C stops at once, removing them too
143  terminated (SIGTERM): as 130";

/// Categories of failure, each with its exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Something that should not happen.
    Internal = 1,
    /// The command line cannot be used: an output location blocked by a file (clap itself exits 2 for
    /// unparsable arguments).
    Usage = 2,
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
    /// Stopped by SIGINT (128 + 2, as a shell reports it).
    Interrupted = 130,
    /// Stopped by SIGTERM (128 + 15).
    Terminated = 143,
}

impl Kind {
    /// The kind of a stop by signal `signal` (SIGTERM, else SIGINT).
    pub fn of_signal(signal: i32) -> Kind {
        if signal == crate::signals::SIGTERM {
            Kind::Terminated
        } else {
            Kind::Interrupted
        }
    }
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
            Kind::Interrupted | Kind::Terminated => "interrupted",
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
