//! Progress reports from a running job: which stage, how far. The CLI shows them as one bar; tests and
//! batch workers can ignore them.

use crate::error::Stage;

/// Receives progress from [`generate`](crate::generate()).
pub trait Progress {
    /// A stage begins; `total` is its number of work units (frames) when known.
    fn stage(&mut self, stage: Stage, total: Option<u64>);
    /// `done` units of the current stage are finished.
    fn advance(&mut self, done: u64);
    /// A note for the user (a warning, a download starting); shown above the bar.
    fn note(&mut self, text: &str);
    /// Whether the job should stop now (a server's cancel request or time limit). Checked at every stage
    /// boundary and after every frame; the run then fails with [`Cause::Cancelled`](crate::Cause::Cancelled).
    fn cancelled(&self) -> bool {
        false
    }
}

/// Discards progress.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn stage(&mut self, _stage: Stage, _total: Option<u64>) {}
    fn advance(&mut self, _done: u64) {}
    fn note(&mut self, _text: &str) {}
}

/// Records the stages seen, in order (for tests and the self-test).
#[derive(Clone, Debug, Default)]
pub struct StageLog {
    /// Stages in the order they began, with their totals.
    pub stages: Vec<(Stage, Option<u64>)>,
    /// Notes received.
    pub notes: Vec<String>,
    /// Highest `done` seen per stage position.
    pub done: Vec<u64>,
}

impl Progress for StageLog {
    fn stage(&mut self, stage: Stage, total: Option<u64>) {
        self.stages.push((stage, total));
        self.done.push(0);
    }
    fn advance(&mut self, done: u64) {
        if let Some(d) = self.done.last_mut() {
            *d = (*d).max(done);
        }
    }
    fn note(&mut self, text: &str) {
        self.notes.push(text.to_owned());
    }
}
