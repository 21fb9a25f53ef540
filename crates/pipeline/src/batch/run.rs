//! The run loop: this shard's jobs, those not done yet, one after another with the models loaded once;
//! a record appended to the report as each job ends.

use std::collections::{BTreeMap, HashMap};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use serde_json::json;
use sha2::{Digest, Sha256};

use super::report::{JobError, JobRecord, JobStatus, job_error, read_report, report_path};
use super::{BatchError, Job, Shard, io, job_key};
use crate::error::{ErrorKind, Problem};
use crate::generate::{generate, timestamp};
use crate::models::Models;
use crate::progress::Progress;

/// What a batch run did.
#[derive(Clone, Debug, Default)]
pub struct BatchSummary {
    /// A record per job of this run (skipped jobs included, with their earlier record's data).
    pub records: Vec<JobRecord>,
    /// The report file.
    pub report: PathBuf,
}

impl BatchSummary {
    /// Jobs with this status.
    pub fn count(&self, status: JobStatus) -> usize {
        self.records.iter().filter(|r| r.status == status).count()
    }
}

/// Options of a batch run.
#[derive(Clone, Debug)]
pub struct BatchOptions {
    /// Output folder (videos and the report).
    pub out_dir: PathBuf,
    /// Skip jobs an earlier run finished.
    pub resume: bool,
    /// Run only this shard's jobs.
    pub shard: Option<Shard>,
}

/// Called before and after each job: `(position in this run, jobs in this run, job, record when done)`.
pub type JobObserver<'a> = dyn FnMut(usize, usize, &Job, Option<&JobRecord>) + 'a;

/// Runs the jobs (this shard's, those not done yet), appending a record per finished job to the report.
/// One job's failure does not stop the others.
pub fn run_batch(
    models: &Models,
    jobs: &[Job],
    opts: &BatchOptions,
    progress: &mut dyn Progress,
    observe: &mut JobObserver<'_>,
) -> Result<BatchSummary, BatchError> {
    std::fs::create_dir_all(&opts.out_dir).map_err(io(&opts.out_dir))?;
    let report = report_path(opts);
    let done: HashMap<String, JobRecord> = if opts.resume {
        read_report(&report)?
            .into_iter()
            // Done: a video that still exists, or a bad-input failure (the key holds the inputs'
            // contents and the options, so the same key fails the same way; a fixed input is a new key).
            // Model and internal failures and degraded videos are retried.
            .filter(|r| match r.status {
                JobStatus::Ok => r.output.as_ref().is_some_and(|p| p.is_file()),
                JobStatus::Failed => r.error.as_ref().is_some_and(|e| e.kind == ErrorKind::BadInput),
                _ => false,
            })
            .map(|r| (r.key.clone(), r))
            .collect()
    } else {
        HashMap::new()
    };
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .append(opts.resume)
        .truncate(!opts.resume)
        .open(&report)
        .map_err(io(&report))?;
    let mine: Vec<&Job> = jobs
        .iter()
        .filter(|j| opts.shard.is_none_or(|s| s.takes(j.index)))
        .collect();
    let mut summary = BatchSummary {
        records: Vec::new(),
        report: report.clone(),
    };
    for (pos, job) in mine.iter().enumerate() {
        observe(pos, mine.len(), job, None);
        let key = match &job.options {
            Ok(o) => job_key(o),
            Err(e) => format!(
                "{:x}",
                Sha256::digest(format!("unusable row {}: {e}", job.index).as_bytes())
            ),
        };
        if let Some(prev) = done.get(&key) {
            let mut r = prev.clone();
            r.status = JobStatus::Skipped;
            observe(pos, mine.len(), job, Some(&r));
            summary.records.push(r);
            continue;
        }
        let started = Instant::now();
        let mut record = JobRecord {
            job: job.index,
            name: job.name.clone(),
            key,
            image: job.options.as_ref().ok().map(|o| o.source_image.clone()),
            audio: job.options.as_ref().ok().map(|o| o.driven_audio.clone()),
            status: JobStatus::Failed,
            output: None,
            frames: None,
            seconds: 0.0,
            stages: BTreeMap::new(),
            error: None,
            warnings: Vec::new(),
            shard: opts.shard,
            finished: String::new(),
        };
        match &job.options {
            Err(e) => {
                record.error = Some(JobError {
                    stage: None,
                    kind: ErrorKind::BadInput,
                    code: Problem::BadOption,
                    message: e.clone(),
                    hint: Problem::BadOption.hint().into(),
                })
            }
            Ok(o) => match generate(models, o, progress) {
                Ok(rep) => {
                    record.status = if rep.degraded.is_some() {
                        JobStatus::Degraded
                    } else {
                        JobStatus::Ok
                    };
                    record.output = Some(rep.output.clone());
                    record.frames = Some(rep.frames);
                    record.stages = rep.seconds.clone();
                    record.warnings = rep.warnings.clone();
                    record.error = rep.degraded.as_ref().map(|d| JobError {
                        stage: Some(d.stage.as_str().to_owned()),
                        kind: d.kind,
                        code: d.code,
                        message: d.reason.clone(),
                        hint: d.code.hint().to_owned(),
                    });
                }
                Err(e) => record.error = Some(job_error(&e)),
            },
        }
        record.seconds = started.elapsed().as_secs_f64();
        record.finished = timestamp(SystemTime::now());
        let mut line = serde_json::to_string(&record).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string());
        line.push('\n');
        file.write_all(line.as_bytes()).map_err(io(&report))?;
        file.flush().map_err(io(&report))?;
        observe(pos, mine.len(), job, Some(&record));
        summary.records.push(record);
    }
    Ok(summary)
}
