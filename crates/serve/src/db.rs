//! The durable job queue: one SQLite database in WAL mode, `synchronous=FULL` (a job acknowledged with
//! `202` survives a power cut), a schema version in `user_version`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::ServeError;

/// The schema this program writes.
pub const SCHEMA_VERSION: i64 = 1;

/// Where a job is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// A worker runs it.
    Running,
    /// The video is there.
    Done,
    /// It failed (see the job's error).
    Failed,
    /// A video was written, but it is the still fallback (`fallback=still`): see the error for why.
    Degraded,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// Every state.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::Degraded,
        JobState::Cancelled,
    ];

    /// The name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Degraded => "degraded",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> JobState {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            // Unknown text cannot come from this program; treat it as a failure rather than lose the row.
            .unwrap_or(JobState::Failed)
    }

    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// Why a job failed (or was degraded): the same fields the CLI and the batch report give.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    /// The stage that failed, when known.
    pub stage: Option<String>,
    /// `bad_input`, `model`, `internal`.
    pub kind: String,
    /// The problem code (`no_face`, `audio_too_short`, `time_limit`, `interrupted`, …).
    pub code: String,
    /// The error message.
    pub message: String,
    /// What to try.
    pub hint: String,
}

/// One row of the queue.
#[derive(Clone, Debug)]
pub struct JobRow {
    /// Server-chosen id (hex).
    pub id: String,
    /// State.
    pub state: JobState,
    /// Option fields of the submission (batch column names), as given.
    pub options: BTreeMap<String, String>,
    /// Files of the job by role (`image`, `audio`, `landmarks`, …) → file name in the job folder.
    pub files: BTreeMap<String, String>,
    /// The client's names of the uploaded files, for display only (never used as paths).
    pub client_names: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: f64,
    /// Unix seconds the current (last) attempt began.
    pub started: Option<f64>,
    /// Unix seconds it ended.
    pub finished: Option<f64>,
    /// Last stage seen.
    pub stage: Option<String>,
    /// Units done of the stage.
    pub done: u64,
    /// Units of the stage, when known.
    pub total: Option<u64>,
    /// Runs begun.
    pub attempts: i64,
    /// Why it failed / was degraded.
    pub error: Option<JobError>,
    /// The pipeline's report (frames, size, seconds per stage, warnings).
    pub report: Option<serde_json::Value>,
}

/// What start-up did with the jobs an earlier process left running.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recovered {
    /// Queued again.
    pub requeued: usize,
    /// Failed with `interrupted` after [`crate::MAX_ATTEMPTS`] attempts.
    pub failed: usize,
}

/// A submission refused for the queue cap.
#[derive(Clone, Copy, Debug)]
pub struct QueueFull {
    /// Jobs waiting or running.
    pub outstanding: usize,
}

/// The queue database.
pub struct Db {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// Unix seconds now.
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

const COLUMNS: &str =
    "id, state, options, files, client_names, created, started, finished, stage, done, total, attempts, error, report";

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let json_map = |s: String| serde_json::from_str::<BTreeMap<String, String>>(&s).unwrap_or_default();
    let state: String = r.get(1)?;
    let error: Option<String> = r.get(12)?;
    let report: Option<String> = r.get(13)?;
    let total: Option<i64> = r.get(10)?;
    let done: i64 = r.get(9)?;
    Ok(JobRow {
        id: r.get(0)?,
        state: JobState::parse(&state),
        options: json_map(r.get(2)?),
        files: json_map(r.get(3)?),
        client_names: json_map(r.get(4)?),
        created: r.get(5)?,
        started: r.get(6)?,
        finished: r.get(7)?,
        stage: r.get(8)?,
        done: done.max(0) as u64,
        total: total.map(|t| t.max(0) as u64),
        attempts: r.get(11)?,
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        report: report.and_then(|e| serde_json::from_str(&e).ok()),
    })
}

fn to_json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "{}".into())
}

impl Db {
    /// Opens (creating or migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, ServeError> {
        let err = |source| ServeError::Db {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(ServeError::Config(format!(
                "job database {}: SQLite refused WAL mode ({mode}); put --data on a local disk",
                path.display()
            )));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(err)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(err)?;
        if version > SCHEMA_VERSION {
            return Err(ServeError::SchemaTooNew {
                path: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < 1 {
            conn.execute_batch(
                "BEGIN;
                 CREATE TABLE IF NOT EXISTS jobs (
                     seq INTEGER PRIMARY KEY AUTOINCREMENT,
                     id TEXT NOT NULL UNIQUE,
                     state TEXT NOT NULL,
                     options TEXT NOT NULL,
                     files TEXT NOT NULL,
                     client_names TEXT NOT NULL,
                     created REAL NOT NULL,
                     started REAL,
                     finished REAL,
                     stage TEXT,
                     done INTEGER NOT NULL DEFAULT 0,
                     total INTEGER,
                     attempts INTEGER NOT NULL DEFAULT 0,
                     error TEXT,
                     report TEXT
                 );
                 CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state, seq);
                 PRAGMA user_version = 1;
                 COMMIT;",
            )
            .map_err(err)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            path: path.to_owned(),
        })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn err(&self, source: rusqlite::Error) -> ServeError {
        ServeError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// Jobs left `running` by a process that did not stop cleanly: queued again, or failed with
    /// `interrupted` when they have had [`crate::MAX_ATTEMPTS`] runs.
    pub fn recover(&self) -> Result<Recovered, ServeError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let error = to_json(&JobError {
            stage: None,
            kind: "internal".into(),
            code: "interrupted".into(),
            message: format!(
                "the server stopped while this job ran, {} times; it is not tried again",
                crate::MAX_ATTEMPTS
            ),
            hint: "submit it again; if it keeps stopping the server, report it with the inputs".into(),
        });
        let failed = tx
            .execute(
                "UPDATE jobs SET state='failed', finished=?1, error=?2 WHERE state='running' AND attempts >= ?3",
                params![now(), error, crate::MAX_ATTEMPTS],
            )
            .map_err(|e| self.err(e))?;
        let requeued = tx
            .execute(
                "UPDATE jobs SET state='queued', stage=NULL, done=0, total=NULL WHERE state='running'",
                [],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Recovered { requeued, failed })
    }

    /// Adds a queued job unless `max_queue` jobs are already waiting or running.
    pub fn insert(&self, job: &JobRow, max_queue: usize) -> Result<Result<(), QueueFull>, ServeError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let outstanding: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running')",
                [],
                |r| r.get(0),
            )
            .map_err(|e| self.err(e))?;
        let outstanding = outstanding.max(0) as usize;
        if outstanding >= max_queue {
            return Ok(Err(QueueFull { outstanding }));
        }
        tx.execute(
            "INSERT INTO jobs (id, state, options, files, client_names, created) VALUES (?1, 'queued', ?2, ?3, ?4, ?5)",
            params![
                job.id,
                to_json(&job.options),
                to_json(&job.files),
                to_json(&job.client_names),
                job.created
            ],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Ok(()))
    }

    /// Takes the oldest queued job: it becomes `running`, one more attempt.
    pub fn claim_next(&self) -> Result<Option<JobRow>, ServeError> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let id: Option<String> = tx
            .query_row(
                "SELECT id FROM jobs WHERE state='queued' ORDER BY seq LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(id) = id else { return Ok(None) };
        tx.execute(
            "UPDATE jobs SET state='running', attempts=attempts+1, started=?2, stage=NULL, done=0, total=NULL \
             WHERE id=?1",
            params![id, now()],
        )
        .map_err(|e| self.err(e))?;
        let row = tx
            .query_row(&format!("SELECT {COLUMNS} FROM jobs WHERE id=?1"), [&id], row_to_job)
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(Some(row))
    }

    /// Records the stage and units done of a running job.
    pub fn set_progress(&self, id: &str, stage: &str, done: u64, total: Option<u64>) -> Result<(), ServeError> {
        self.conn()
            .execute(
                "UPDATE jobs SET stage=?2, done=?3, total=?4 WHERE id=?1 AND state='running'",
                params![id, stage, done as i64, total.map(|t| t as i64)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Ends a running job.
    pub fn finish(
        &self,
        id: &str,
        state: JobState,
        error: Option<&JobError>,
        report: Option<&serde_json::Value>,
    ) -> Result<(), ServeError> {
        self.conn()
            .execute(
                "UPDATE jobs SET state=?2, finished=?3, error=?4, report=?5 WHERE id=?1",
                params![
                    id,
                    state.as_str(),
                    now(),
                    error.map(to_json),
                    report.map(|r| r.to_string())
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Puts a running job back in the queue (the server is stopping), not counting the attempt.
    pub fn requeue(&self, id: &str) -> Result<(), ServeError> {
        self.conn()
            .execute(
                "UPDATE jobs SET state='queued', attempts=MAX(attempts-1, 0), stage=NULL, done=0, total=NULL \
                 WHERE id=?1 AND state='running'",
                [id],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Cancels a queued job; false when it is not queued (any more).
    pub fn cancel_queued(&self, id: &str) -> Result<bool, ServeError> {
        let n = self
            .conn()
            .execute(
                "UPDATE jobs SET state='cancelled', finished=?2 WHERE id=?1 AND state='queued'",
                params![id, now()],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// One job.
    pub fn get(&self, id: &str) -> Result<Option<JobRow>, ServeError> {
        self.conn()
            .query_row(&format!("SELECT {COLUMNS} FROM jobs WHERE id=?1"), [id], row_to_job)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// The newest `limit` jobs, newest first.
    pub fn list(&self, limit: usize) -> Result<Vec<JobRow>, ServeError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(&format!("SELECT {COLUMNS} FROM jobs ORDER BY seq DESC LIMIT ?1"))
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([limit as i64], row_to_job)
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }

    /// Removes a finished job's row; false when it is not finished (or not there).
    pub fn delete_final(&self, id: &str) -> Result<bool, ServeError> {
        let n = self
            .conn()
            .execute(
                "DELETE FROM jobs WHERE id=?1 AND state NOT IN ('queued', 'running')",
                [id],
            )
            .map_err(|e| self.err(e))?;
        Ok(n == 1)
    }

    /// Jobs per state.
    pub fn counts(&self) -> Result<BTreeMap<JobState, u64>, ServeError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT state, COUNT(*) FROM jobs GROUP BY state")
            .map_err(|e| self.err(e))?;
        let mut out: BTreeMap<JobState, u64> = JobState::ALL.iter().map(|s| (*s, 0)).collect();
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        for r in rows {
            let (s, n) = r.map_err(|e| self.err(e))?;
            *out.entry(JobState::parse(&s)).or_default() += n.max(0) as u64;
        }
        Ok(out)
    }

    /// Finished jobs beyond the newest `keep`, or finished before `older_than` (Unix seconds).
    pub fn expired(&self, keep: usize, older_than: Option<f64>) -> Result<Vec<String>, ServeError> {
        let conn = self.conn();
        let mut st = conn
            .prepare("SELECT id, finished FROM jobs WHERE state NOT IN ('queued', 'running') ORDER BY seq DESC")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Option<f64>>(1)?)))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .enumerate()
            .filter(|(i, (_, fin))| *i >= keep || older_than.is_some_and(|t| fin.unwrap_or(0.0) < t))
            .map(|(_, (id, _))| id)
            .collect())
    }

    /// Every job id (for the start-up sweep of orphaned folders).
    pub fn ids(&self) -> Result<Vec<String>, ServeError> {
        let conn = self.conn();
        let mut st = conn.prepare("SELECT id FROM jobs").map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.err(e))?;
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> JobRow {
        JobRow {
            id: id.into(),
            state: JobState::Queued,
            options: BTreeMap::from([("seed".into(), "3".into())]),
            files: BTreeMap::from([("image".into(), "image.png".into())]),
            client_names: BTreeMap::new(),
            created: now(),
            started: None,
            finished: None,
            stage: None,
            done: 0,
            total: None,
            attempts: 0,
            error: None,
            report: None,
        }
    }

    #[test]
    fn queue_survives_reopen_and_recovers_running_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.sqlite3");
        {
            let db = Db::open(&path).expect("open");
            for id in ["a", "b", "c"] {
                db.insert(&job(id), 10).expect("insert").expect("room");
            }
            let first = db.claim_next().expect("claim").expect("a job");
            assert_eq!(first.id, "a");
            assert_eq!(first.options.get("seed").map(String::as_str), Some("3"));
            // Dropped without finishing: as after `kill -9`.
        }
        let db = Db::open(&path).expect("reopen");
        let r = db.recover().expect("recover");
        assert_eq!((r.requeued, r.failed), (1, 0));
        let counts = db.counts().expect("counts");
        assert_eq!(counts[&JobState::Queued], 3);
        assert_eq!(counts[&JobState::Running], 0);
        // Interrupted again: the second attempt is the last.
        assert_eq!(db.claim_next().expect("claim").expect("job").attempts, 2);
        let r = db.recover().expect("recover");
        assert_eq!((r.requeued, r.failed), (0, 1));
        let a = db.get("a").expect("get").expect("row");
        assert_eq!(a.state, JobState::Failed);
        assert_eq!(a.error.expect("error").code, "interrupted");
    }

    #[test]
    fn the_cap_counts_waiting_and_running_jobs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(&dir.path().join("q.sqlite3")).expect("open");
        db.insert(&job("a"), 2).expect("insert").expect("room");
        db.insert(&job("b"), 2).expect("insert").expect("room");
        assert!(db.insert(&job("c"), 2).expect("insert").is_err());
        let a = db.claim_next().expect("claim").expect("job");
        db.finish(&a.id, JobState::Done, None, None).expect("finish");
        db.insert(&job("c"), 2).expect("insert").expect("room now");
        assert_eq!(db.expired(1, None).expect("expired"), Vec::<String>::new());
        assert!(db.cancel_queued("b").expect("cancel"));
        assert_eq!(db.expired(1, None).expect("expired"), vec!["a".to_owned()]);
        assert!(db.delete_final("a").expect("delete"));
        assert!(!db.delete_final("c").expect("queued jobs are not deleted"));
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("q.sqlite3");
        Connection::open(&path)
            .expect("open")
            .execute_batch("PRAGMA user_version = 99;")
            .expect("set version");
        assert!(matches!(
            Db::open(&path),
            Err(ServeError::SchemaTooNew { found: 99, .. })
        ));
    }
}
