//! The run loop: this shard's jobs, those not done yet, one after another with the models loaded once;
//! a record appended to the report as each job ends.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use sha2::{Digest, Sha256};

use super::report::{JobError, JobRecord, JobStatus, ReportWriter, job_error, read_report_checked, report_path};
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
    /// Set when the run was stopped on request ([`Progress::cancelled`]) before every job ran: the
    /// report holds the jobs that finished, the stopped job has no record.
    pub cancelled: bool,
    /// Things worth knowing about the report (torn lines ignored and repaired, another batch writing
    /// into the same folder).
    pub warnings: Vec<String>,
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
    let mut warnings = Vec::new();
    let done: HashMap<String, JobRecord> = if opts.resume {
        let (records, skipped) = read_report_checked(&report)?;
        warnings.extend(skipped);
        records
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
    let file = ReportWriter::open(&report)?;
    let fresh = || if opts.resume { Ok(()) } else { file.truncate() };
    // A shard's report has one writer (shards share no file): it is started afresh as before.
    let (_folder_lock, alone) = match opts.shard {
        Some(_) => (None, fresh().map(|()| true)?),
        None => folder_lock(&opts.out_dir, fresh)?,
    };
    if opts.resume {
        warnings.extend(file.repair()?);
    } else if !alone {
        warnings.push(format!(
            "another batch is writing into {}: its report is kept, and this run's records are appended to it",
            opts.out_dir.display()
        ));
    }
    let mine: Vec<&Job> = jobs
        .iter()
        .filter(|j| opts.shard.is_none_or(|s| s.takes(j.index)))
        .collect();
    let mut summary = BatchSummary {
        records: Vec::new(),
        report: report.clone(),
        cancelled: false,
        warnings,
    };
    for (pos, job) in mine.iter().enumerate() {
        if progress.cancelled() {
            summary.cancelled = true;
            break;
        }
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
                // Stopped on request: not a result of the job; it has no record and runs again on resume.
                Err(e) if e.is_cancelled() => {
                    summary.cancelled = true;
                    break;
                }
                Err(e) => record.error = Some(job_error(&e)),
            },
        }
        record.seconds = started.elapsed().as_secs_f64();
        record.finished = timestamp(SystemTime::now());
        if let Some(w) = file.append(&record)? {
            summary.warnings.push(w);
        }
        observe(pos, mine.len(), job, Some(&record));
        summary.records.push(record);
    }
    Ok(summary)
}

/// A shared `flock(2)` on the output folder for the whole run, and whether this run is the only batch
/// writing there: it could take the lock exclusively, and then ran `when_alone` (a fresh run empties its
/// report) before sharing it. Only a run that is alone may start its report afresh: emptying it under
/// another running batch would drop that batch's records. Where the folder cannot be locked (not Unix,
/// a file system without locks) the run counts as alone, as before.
fn folder_lock(
    dir: &Path,
    when_alone: impl FnOnce() -> Result<(), BatchError>,
) -> Result<(Option<File>, bool), BatchError> {
    let Ok(folder) = File::open(dir) else {
        when_alone()?;
        return Ok((None, true));
    };
    let alone = match fs4::FileExt::try_lock(&folder) {
        Ok(()) => true,
        Err(fs4::TryLockError::WouldBlock) => false,
        Err(fs4::TryLockError::Error(_)) => {
            when_alone()?;
            return Ok((None, true));
        }
    };
    if alone {
        // Still exclusive: a batch starting now waits below until this is done.
        when_alone()?;
    }
    // Exclusive → shared (flock converts in place); or wait while a starting run empties its report.
    if fs4::FileExt::lock_shared(&folder).is_err() {
        return Ok((None, alone));
    }
    Ok((Some(folder), alone))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_batch_alone_in_its_folder_starts_the_report_afresh() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut ran = false;
        let (first, alone) = folder_lock(dir.path(), || {
            ran = true;
            Ok(())
        })
        .expect("lock");
        assert!(alone && ran && first.is_some());
        // A second batch while the first runs: not alone, the report is not emptied.
        let mut ran = false;
        let (_second, alone) = folder_lock(dir.path(), || {
            ran = true;
            Ok(())
        })
        .expect("lock");
        assert!(!alone && !ran);
        drop(first);
        drop(_second);
        let (_third, alone) = folder_lock(dir.path(), || Ok(())).expect("lock");
        assert!(alone);
    }
}
