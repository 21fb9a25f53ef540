//! `sadtalker batch`: many jobs with the models loaded once. By concern: [`jobs`] (the job list),
//! [`key`] (resume keys), [`run`] (the run loop), [`report`] (records, report files, shard merge).
//!
//! - **Jobs** ([`load_jobs`]): a CSV file with a header (`image,audio`, then optional per-job option
//!   columns), a JSON list of objects with the same keys, or two folders whose files pair by name. Paths
//!   are relative to the CSV/JSON file.
//! - **Report** (`DIR/report.jsonl`, one JSON object per finished job, appended and flushed as each job
//!   ends): status, output, frames, seconds per stage, the error with its stage, kind, code and hint.
//! - **Resume**: each job has a key (SHA-256 of its input files' contents and its options); with
//!   `resume`, a job whose key has an `ok` record and whose video still exists is skipped, and so is one
//!   that failed on its inputs (same contents, same failure); other failures are retried.
//! - **Shards** (`--shard I/N`): job `k` belongs to shard `k mod N`; each shard writes
//!   `DIR/report.shard-I-of-N.jsonl`, and [`merge`] joins them into `DIR/report.jsonl`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod jobs;
pub mod key;
pub mod report;
pub mod run;

pub use crate::overrides::COLUMNS;
pub use jobs::{Job, JobSource, load_jobs};
pub use key::job_key;
pub use report::{
    JobError, JobRecord, JobStatus, Merged, ReportWriter, latest_per_job, merge, read_report, read_report_checked,
    report_path,
};
pub use run::{BatchOptions, BatchSummary, JobObserver, run_batch};

/// Why a batch could not start (a job list that cannot be used, an unwritable output folder).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The job list is unusable.
    #[error("{}: {reason}", path.display())]
    Jobs {
        /// The CSV/JSON file or folder.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Bad `--shard` value.
    #[error("--shard {0}: give I/N with 0 <= I < N, e.g. 0/4 (Kubernetes: $JOB_COMPLETION_INDEX/N)")]
    Shard(String),
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BatchError + '_ {
    move |source| BatchError::Io {
        path: path.to_owned(),
        source,
    }
}

/// A shard selection `I/N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, `0 <= index < count`.
    pub index: usize,
    /// Number of shards.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = BatchError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BatchError::Shard(s.to_owned());
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether job `index` belongs to this shard.
    pub fn takes(&self, index: usize) -> bool {
        index % self.count == self.index
    }

    /// The shard's report file name.
    pub fn report_name(&self) -> String {
        format!("report.shard-{}-of-{}.jsonl", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_the_jobs_deterministically() {
        let s: Shard = "1/3".parse().unwrap();
        let taken: Vec<usize> = (0..10).filter(|&i| s.takes(i)).collect();
        assert_eq!(taken, vec![1, 4, 7]);
        for bad in ["3/3", "1", "a/b", "0/0", "-1/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let all: usize = (0..3)
            .map(|i| (0..10).filter(|&k| Shard { index: i, count: 3 }.takes(k)).count())
            .sum();
        assert_eq!(all, 10);
    }
}
