//! The report: one JSON line per finished job ([`JobRecord`]), shard reports and their [`merge`].

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::run::BatchOptions;
use super::{BatchError, Shard, io};
use crate::error::{ErrorKind, PipelineError, Problem};

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// The video was written.
    Ok,
    /// The still fallback was written (`fallback still`).
    Degraded,
    /// No video.
    Failed,
    /// Done by an earlier run (resume): not run again.
    Skipped,
}

/// A failed job's error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    /// The stage that failed (absent for an unusable row).
    pub stage: Option<String>,
    /// bad_input, model or internal.
    pub kind: ErrorKind,
    /// The problem (`no_face`, `audio_too_short`, ...).
    pub code: Problem,
    /// The message.
    pub message: String,
    /// What to try.
    pub hint: String,
}

/// One line of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// Position in the job list.
    pub job: usize,
    /// Output name.
    pub name: String,
    /// Resume key.
    pub key: String,
    /// The portrait.
    pub image: Option<PathBuf>,
    /// The speech.
    pub audio: Option<PathBuf>,
    /// How it ended.
    pub status: JobStatus,
    /// The video, when one was written.
    pub output: Option<PathBuf>,
    /// Frames written.
    pub frames: Option<u64>,
    /// Wall-clock seconds of the job.
    pub seconds: f64,
    /// Seconds per stage.
    #[serde(default)]
    pub stages: BTreeMap<String, f64>,
    /// The failure (failed jobs) or the degradation reason.
    pub error: Option<JobError>,
    /// Warnings.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The shard that ran it.
    pub shard: Option<Shard>,
    /// When it finished (UTC, `YYYY_MM_DD_HH.MM.SS`).
    pub finished: String,
}

/// The report path of a run.
pub fn report_path(opts: &BatchOptions) -> PathBuf {
    opts.out_dir.join(match opts.shard {
        Some(s) => s.report_name(),
        None => "report.jsonl".to_owned(),
    })
}

/// Reads a report; unreadable lines are skipped (a line cut by a crash).
pub fn read_report(path: &Path) -> Result<Vec<JobRecord>, BatchError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(path)(e)),
    };
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line.map_err(io(path))?;
        if let Ok(r) = serde_json::from_str::<JobRecord>(&line) {
            out.push(r);
        }
    }
    Ok(out)
}

pub(crate) fn job_error(e: &PipelineError) -> JobError {
    JobError {
        stage: Some(e.stage.as_str().to_owned()),
        kind: e.kind(),
        code: e.code(),
        message: e.to_string(),
        hint: e.code().hint().to_owned(),
    }
}

/// The last record of each job, in job order.
pub fn latest_per_job(records: impl IntoIterator<Item = JobRecord>) -> Vec<JobRecord> {
    let mut by_job: BTreeMap<usize, JobRecord> = BTreeMap::new();
    for r in records {
        by_job.insert(r.job, r);
    }
    by_job.into_values().collect()
}

/// What [`merge`] did.
#[derive(Clone, Debug)]
pub struct Merged {
    /// The merged report.
    pub report: PathBuf,
    /// The last record of every job, in job order.
    pub records: Vec<JobRecord>,
    /// Shard reports read.
    pub shards: Vec<PathBuf>,
    /// Shards of `0..N` with no report (their jobs are absent).
    pub missing_shards: Vec<usize>,
}

/// Joins `dir/report.shard-I-of-N.jsonl` into `dir/report.jsonl` (the last record of each job, in job
/// order), written through a temporary file.
pub fn merge(dir: &Path) -> Result<Merged, BatchError> {
    let mut shards: Vec<(usize, usize, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io(dir))? {
        let p = e.map_err(io(dir))?.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Some(rest) = name
            .strip_prefix("report.shard-")
            .and_then(|r| r.strip_suffix(".jsonl"))
            && let Some((i, n)) = rest.split_once("-of-")
            && let (Ok(i), Ok(n)) = (i.parse::<usize>(), n.parse::<usize>())
        {
            shards.push((i, n, p));
        }
    }
    if shards.is_empty() {
        return Err(BatchError::Jobs {
            path: dir.to_owned(),
            reason: "no shard reports (report.shard-I-of-N.jsonl) here; run `sadtalker batch ... --shard I/N --out \
                     DIR` first"
                .into(),
        });
    }
    let counts: HashSet<usize> = shards.iter().map(|s| s.1).collect();
    if counts.len() > 1 {
        return Err(BatchError::Jobs {
            path: dir.to_owned(),
            reason: format!("shard reports of different splits ({counts:?} shards); keep one split per folder"),
        });
    }
    shards.sort();
    let n = shards[0].1;
    let present: HashSet<usize> = shards.iter().map(|s| s.0).collect();
    let missing_shards = (0..n).filter(|i| !present.contains(i)).collect();
    let mut all = Vec::new();
    for (_, _, p) in &shards {
        all.extend(read_report(p)?);
    }
    let records = latest_per_job(all);
    let report = dir.join("report.jsonl");
    let mut tmp = sadtalker_fsio::AtomicFile::create(&report).map_err(io(dir))?;
    for r in &records {
        let line = serde_json::to_string(r).unwrap_or_default();
        writeln!(tmp, "{line}").map_err(io(&report))?;
    }
    tmp.commit().map_err(io(&report))?;
    Ok(Merged {
        report,
        records,
        shards: shards.into_iter().map(|s| s.2).collect(),
        missing_shards,
    })
}
