//! The report: one JSON line per finished job ([`JobRecord`]), shard reports and their [`merge`].

use std::collections::{BTreeMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
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
    Ok(read_report_checked(path)?.0)
}

/// [`read_report`], with a warning for each line skipped because it is not a whole record (a line cut
/// by a crash, or garbage).
pub fn read_report_checked(path: &Path) -> Result<(Vec<JobRecord>, Vec<String>), BatchError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
        Err(e) => return Err(io(path)(e)),
    };
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    // Bytes, not `lines()`: a line cut inside a multi-byte character is not valid UTF-8, and must be
    // skipped like any other torn line rather than fail the whole read.
    for (i, line) in BufReader::new(f).split(b'\n').enumerate() {
        let line = line.map_err(io(path))?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<JobRecord>(&line) {
            Ok(r) => out.push(r),
            Err(e) => warnings.push(format!(
                "{} line {}: not a whole report record ({e}; a line cut by a crash?): ignored",
                path.display(),
                i + 1
            )),
        }
    }
    Ok((out, warnings))
}

/// The longest last line [`ReportWriter::repair`] reads to see whether it is a whole record.
const MAX_RECORD_BYTES: u64 = 1 << 20;

/// A report file that several processes may append to at once (concurrent batches into one folder).
///
/// Each record is one line written by one `write(2)` on a file opened with `O_APPEND`, under an
/// exclusive `flock(2)` held only for that write: lines of concurrent writers never interleave, and the
/// lock also orders them against the repair of a torn last line (see [`ReportWriter::repair`]).
#[derive(Debug)]
pub struct ReportWriter {
    file: File,
    path: PathBuf,
}

/// An exclusive lock on a report, released when dropped.
struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    fn new(file: &'a File, path: &Path) -> Result<Self, BatchError> {
        fs4::FileExt::lock(file).map_err(io(path))?;
        Ok(Self(file))
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        let _ = fs4::FileExt::unlock(self.0);
    }
}

impl ReportWriter {
    /// Opens (creating) `path` for appending.
    pub fn open(path: &Path) -> Result<Self, BatchError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(path)
            .map_err(io(path))?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// The report's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Empties the report (a new run), under the lock.
    pub fn truncate(&self) -> Result<(), BatchError> {
        let _lock = Locked::new(&self.file, &self.path)?;
        self.file.set_len(0).map_err(io(&self.path))
    }

    /// Makes the report end with a whole line, under the lock: a last line without its `\n` (a crash
    /// cut it) is removed, or, when it is a whole record that only lacks the `\n`, completed. Returns a
    /// warning saying what was done, if anything.
    pub fn repair(&self) -> Result<Option<String>, BatchError> {
        let _lock = Locked::new(&self.file, &self.path)?;
        self.repair_locked()
    }

    fn repair_locked(&self) -> Result<Option<String>, BatchError> {
        let mut f = &self.file;
        let len = f.metadata().map_err(io(&self.path))?.len();
        if len == 0 {
            return Ok(None);
        }
        let mut last = [0u8; 1];
        f.seek(SeekFrom::Start(len - 1)).map_err(io(&self.path))?;
        f.read_exact(&mut last).map_err(io(&self.path))?;
        if last[0] == b'\n' {
            return Ok(None);
        }
        // Find the start of the torn line: just after the last `\n`, read backwards in blocks.
        let mut start = 0u64;
        let mut end = len;
        let mut block = vec![0u8; 64 * 1024];
        'search: while end > 0 {
            let from = end.saturating_sub(block.len() as u64);
            let chunk = &mut block[..(end - from) as usize];
            f.seek(SeekFrom::Start(from)).map_err(io(&self.path))?;
            f.read_exact(chunk).map_err(io(&self.path))?;
            if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
                start = from + i as u64 + 1;
                break 'search;
            }
            end = from;
        }
        // A record is a few KB: a longer tail is garbage, not a record to keep (and is not read whole).
        let mut tail = Vec::new();
        if len - start <= MAX_RECORD_BYTES {
            f.seek(SeekFrom::Start(start)).map_err(io(&self.path))?;
            f.take(len - start).read_to_end(&mut tail).map_err(io(&self.path))?;
        }
        if !tail.is_empty() && serde_json::from_slice::<JobRecord>(&tail).is_ok() {
            // A whole record that lost only its newline: keep it.
            f.write_all(b"\n").map_err(io(&self.path))?;
            return Ok(Some(format!(
                "{}: the last record had no line end (a crash?); one was added",
                self.path.display()
            )));
        }
        self.file.set_len(start).map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))?;
        Ok(Some(format!(
            "{}: the last line was cut ({} bytes, not a whole record; a crash while it was written?): removed, \
             so the next record starts on its own line",
            self.path.display(),
            len - start
        )))
    }

    /// Appends `record` as one line (one `write(2)` under the lock, then `fdatasync`), repairing a torn
    /// last line first. Returns the repair's warning, if one was needed.
    pub fn append(&self, record: &JobRecord) -> Result<Option<String>, BatchError> {
        let mut line = serde_json::to_vec(record).map_err(|e| BatchError::Io {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        line.push(b'\n');
        let _lock = Locked::new(&self.file, &self.path)?;
        let repaired = self.repair_locked()?;
        let mut f = &self.file;
        let n = f.write(&line).map_err(io(&self.path))?;
        // A regular file takes the whole line in one write; should the kernel ever write less (a full
        // disk), the rest follows while the lock is still held, so no other writer's line gets between.
        if n < line.len() {
            f.write_all(&line[n..]).map_err(io(&self.path))?;
        }
        self.file.sync_data().map_err(io(&self.path))?;
        Ok(repaired)
    }
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
    /// Lines of the shard reports that were not whole records (cut by a crash), ignored.
    pub warnings: Vec<String>,
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
    let mut warnings = Vec::new();
    for (_, _, p) in &shards {
        let (records, w) = read_report_checked(p)?;
        all.extend(records);
        warnings.extend(w);
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
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(job: usize, name: &str) -> JobRecord {
        JobRecord {
            job,
            name: name.to_owned(),
            key: "k".repeat(64),
            image: Some(PathBuf::from("a.png")),
            audio: Some(PathBuf::from("a.wav")),
            status: JobStatus::Ok,
            output: None,
            frames: Some(3),
            seconds: 1.0,
            stages: BTreeMap::new(),
            // Long lines, so that unlocked writers would be likely to interleave.
            warnings: vec!["w".repeat(5000)],
            error: None,
            shard: None,
            finished: "2026_01_01_00.00.00".into(),
        }
    }

    #[test]
    fn concurrent_writers_append_whole_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("report.jsonl");
        std::thread::scope(|s| {
            for t in 0..4 {
                let path = &path;
                s.spawn(move || {
                    // One open file description each, as separate processes would have.
                    let w = ReportWriter::open(path).expect("open");
                    for i in 0..50 {
                        w.append(&record(t * 100 + i, &format!("t{t}"))).expect("append");
                    }
                });
            }
        });
        let (records, warnings) = read_report_checked(&path).expect("read");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(records.len(), 200);
    }

    #[test]
    fn a_torn_tail_is_reported_and_removed_before_the_next_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("report.jsonl");
        let w = ReportWriter::open(&path).expect("open");
        w.append(&record(0, "a")).expect("append");
        w.append(&record(1, "b")).expect("append");
        let full = std::fs::read(&path).expect("read");
        std::fs::write(&path, &full[..full.len() - 100]).expect("cut");
        let (records, warnings) = read_report_checked(&path).expect("read");
        assert_eq!(records.len(), 1);
        assert!(warnings.len() == 1 && warnings[0].contains("line 2"), "{warnings:?}");
        let repaired = w.append(&record(2, "c")).expect("append");
        assert!(repaired.is_some_and(|m| m.contains("cut")));
        let (records, warnings) = read_report_checked(&path).expect("read");
        assert!(warnings.is_empty(), "{warnings:?}");
        let names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["a", "c"]);
        // A whole record without its newline is kept, and completed.
        let text = std::fs::read(&path).expect("read");
        std::fs::write(&path, &text[..text.len() - 1]).expect("cut the newline");
        assert!(w.repair().expect("repair").is_some_and(|m| m.contains("added")));
        assert_eq!(std::fs::read(&path).expect("read"), text);
        assert_eq!(w.repair().expect("repair"), None);
        // A torn first line (no newline at all) goes entirely.
        std::fs::write(&path, b"{\"job\": 0, \"na").expect("write");
        assert!(w.repair().expect("repair").is_some());
        assert_eq!(std::fs::read(&path).expect("read"), b"");
    }
}
