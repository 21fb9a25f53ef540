//! The shared state of a server and its workers: OS threads that take the oldest queued job, run the
//! pipeline on it with the shared models, and record the outcome.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use sadtalker_pipeline::{GenerateOptions, Models, NoProgress, PipelineError, Problem, Progress, Report, Stage};

use crate::db::{Db, JobError, JobRow, JobState, Recovered};
use crate::metrics::Metrics;
use crate::{ServeConfig, ServeError, io_err};

/// Live progress of a running job (the database gets it at stage changes and about once a second).
#[derive(Clone, Debug)]
pub struct Live {
    /// The stage.
    pub stage: Stage,
    /// Units done of it.
    pub done: u64,
    /// Units of it, when known.
    pub total: Option<u64>,
    /// When the stage began.
    pub stage_started: Instant,
    /// Frames of the video, once the renderer began.
    pub frames: Option<u64>,
    /// Set by `DELETE`.
    pub cancel: Arc<AtomicBool>,
}

impl Live {
    /// Seconds left, from the pace of the current stage (frames) or the server's seconds per frame.
    pub fn eta_seconds(&self, seconds_per_frame: Option<f64>) -> Option<f64> {
        let total = self.total?;
        if self.stage == Stage::Render && self.done > 0 {
            let per = self.stage_started.elapsed().as_secs_f64() / self.done as f64;
            return Some(per * total.saturating_sub(self.done) as f64);
        }
        if self.stage == Stage::Render {
            return seconds_per_frame.map(|s| s * total as f64);
        }
        None
    }
}

/// Readiness of the models.
#[derive(Clone, Debug)]
pub enum Readiness {
    /// Still loading.
    Loading,
    /// Loaded.
    Ready,
    /// They could not be loaded: the error (code, message, hint).
    Failed(JobError),
}

/// Everything the handlers and the workers share.
pub struct App {
    pub cfg: ServeConfig,
    pub db: Db,
    pub models: Arc<Models>,
    live: Mutex<HashMap<String, Live>>,
    wake: (Mutex<u64>, Condvar),
    paused: AtomicBool,
    shutdown: AtomicBool,
    readiness: Mutex<Readiness>,
    pub started: Instant,
    pub metrics: Metrics,
    threads: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl App {
    /// Opens the data folder and the queue, recovering jobs an earlier process left running.
    pub fn open(cfg: ServeConfig, models: Arc<Models>) -> Result<(Self, Recovered), ServeError> {
        for sub in ["jobs", "tmp"] {
            let d = cfg.data_dir.join(sub);
            std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        // Uploads that were being received when the process stopped.
        let tmp = cfg.data_dir.join("tmp");
        if let Ok(entries) = std::fs::read_dir(&tmp) {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let db = Db::open(&cfg.data_dir.join("queue.sqlite3"))?;
        let recovered = db.recover()?;
        // Job folders without a row (moved into place just before a crash, or a row deleted just before).
        let ids: std::collections::HashSet<String> = db.ids()?.into_iter().collect();
        if let Ok(entries) = std::fs::read_dir(cfg.data_dir.join("jobs")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !ids.contains(&name) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let paused = cfg.start_paused;
        let app = Self {
            cfg,
            db,
            models,
            live: Mutex::default(),
            wake: (Mutex::new(0), Condvar::new()),
            paused: AtomicBool::new(paused),
            shutdown: AtomicBool::new(false),
            readiness: Mutex::new(Readiness::Loading),
            started: Instant::now(),
            metrics: Metrics::default(),
            threads: Mutex::default(),
        };
        app.sweep();
        Ok((app, recovered))
    }

    /// The folder of job `id` (ids are server-made hex, checked by the handlers).
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join("jobs").join(id)
    }

    /// A fresh folder for an upload in progress.
    pub fn tmp_dir(&self, id: &str) -> PathBuf {
        self.cfg.data_dir.join("tmp").join(id)
    }

    /// Wakes a worker (a job was queued, or the workers were resumed).
    pub fn notify(&self) {
        let (m, c) = &self.wake;
        *lock(m) += 1;
        c.notify_all();
    }

    /// Lets held workers go.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.notify();
    }

    /// Makes the workers stop after (cancelling) their current job.
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.notify();
    }

    /// Waits for the worker threads to end.
    pub fn join_workers(&self) {
        let threads = std::mem::take(&mut *lock(&self.threads));
        for t in threads {
            let _ = t.join();
        }
    }

    fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// The live progress of a running job.
    pub fn live(&self, id: &str) -> Option<Live> {
        lock(&self.live).get(id).cloned()
    }

    /// Asks a running job to stop; false when it is not running here.
    pub fn cancel_running(&self, id: &str) -> bool {
        match lock(&self.live).get(id) {
            Some(l) => {
                l.cancel.store(true, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Readiness of the models.
    pub fn readiness(&self) -> Readiness {
        lock(&self.readiness).clone()
    }

    /// Removes finished jobs beyond the retention limits, with their files.
    pub fn sweep(&self) {
        let older = self.cfg.retention.keep_hours.map(|h| crate::db::now() - h * 3600.0);
        let Ok(ids) = self.db.expired(self.cfg.retention.keep, older) else {
            return;
        };
        for id in ids {
            if self.db.delete_final(&id).unwrap_or(false) {
                let _ = std::fs::remove_dir_all(self.job_dir(&id));
            }
        }
    }

    /// Waits until there is a job to run (or the server stops).
    fn next_job(&self) -> Option<JobRow> {
        loop {
            if self.stopping() {
                return None;
            }
            let seen = *lock(&self.wake.0);
            let ready = !matches!(self.readiness(), Readiness::Loading);
            if !self.paused.load(Ordering::SeqCst) && ready {
                match self.db.claim_next() {
                    Ok(Some(job)) => return Some(job),
                    Ok(None) => {}
                    Err(e) => eprintln!("error: the job queue cannot be read: {e}"),
                }
            }
            let (m, c) = &self.wake;
            let guard = lock(m);
            if *guard == seen {
                // Bounded wait: a missed wake-up costs at most this.
                let _ = c.wait_timeout(guard, Duration::from_millis(500));
            }
        }
    }
}

/// Loads the models for the base options, then starts `cfg.workers` worker threads.
pub fn spawn(app: &Arc<App>) {
    let loader = app.clone();
    let mut threads = Vec::new();
    if let Ok(t) = std::thread::Builder::new()
        .name("sadtalker-models".into())
        .spawn(move || load_models(&loader))
    {
        threads.push(t);
    }
    for i in 0..app.cfg.workers {
        let app = app.clone();
        match std::thread::Builder::new()
            .name(format!("sadtalker-worker-{i}"))
            .spawn(move || {
                while let Some(job) = app.next_job() {
                    run_job(&app, job);
                }
            }) {
            Ok(t) => threads.push(t),
            Err(e) => eprintln!("error: cannot start worker {i}: {e}"),
        }
    }
    lock(&app.threads).extend(threads);
}

/// Makes sure the model files are there and loads the networks for the base options once.
fn load_models(app: &App) {
    let opts = &app.cfg.base;
    let result = (|| -> Result<(), PipelineError> {
        app.models.ensure_files(opts, &mut NoProgress)?;
        app.models.extractor(opts, opts.landmarks.is_none())?;
        app.models.audio2coeff(opts)?;
        app.models.renderer(opts)?;
        Ok(())
    })();
    let state = match result {
        Ok(()) => Readiness::Ready,
        Err(e) => {
            eprintln!("error: the models cannot be loaded: {e}\nhint: {}", e.code().hint());
            Readiness::Failed(job_error(&e))
        }
    };
    *lock(&app.readiness) = state;
    app.notify();
}

/// The API's error record of a pipeline failure.
pub fn job_error(e: &PipelineError) -> JobError {
    JobError {
        stage: Some(e.stage.as_str().to_owned()),
        kind: e.kind().as_str().to_owned(),
        code: e.code().as_str().to_owned(),
        message: e.to_string(),
        hint: e.code().hint().to_owned(),
    }
}

/// Progress of one job into the live map and the database.
struct JobProgress<'a> {
    app: &'a App,
    id: String,
    cancel: Arc<AtomicBool>,
    deadline: Instant,
    last_db: Instant,
    stage: Stage,
    done: u64,
    total: Option<u64>,
}

impl JobProgress<'_> {
    fn timed_out(&self) -> bool {
        Instant::now() >= self.deadline
    }

    fn store(&mut self, force: bool) {
        if force || self.last_db.elapsed() >= Duration::from_secs(1) {
            self.last_db = Instant::now();
            if let Err(e) = self
                .app
                .db
                .set_progress(&self.id, self.stage.as_str(), self.done, self.total)
            {
                eprintln!("warning: job {}: progress not recorded: {e}", self.id);
            }
        }
    }
}

impl Progress for JobProgress<'_> {
    fn stage(&mut self, stage: Stage, total: Option<u64>) {
        self.stage = stage;
        self.done = 0;
        self.total = total;
        if let Some(l) = lock(&self.app.live).get_mut(&self.id) {
            l.stage = stage;
            l.done = 0;
            l.total = total;
            l.stage_started = Instant::now();
            if stage == Stage::Render {
                l.frames = total;
            }
        }
        self.store(true);
    }

    fn advance(&mut self, done: u64) {
        self.done = done;
        if let Some(l) = lock(&self.app.live).get_mut(&self.id) {
            l.done = done;
        }
        self.store(false);
    }

    fn note(&mut self, _text: &str) {}

    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst) || self.app.stopping() || self.timed_out()
    }
}

/// The report as the API shows it: no server paths.
fn report_json(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "frames": r.frames,
        "width": r.width,
        "height": r.height,
        "fps": r.fps,
        "video_seconds": r.video_seconds,
        "audio_seconds": r.audio_seconds,
        "seconds": r.seconds,
        "warnings": r.warnings,
        "source_cached": r.source_cached,
    })
}

fn options_for(app: &App, job: &JobRow, dir: &Path) -> Result<GenerateOptions, String> {
    let mut o = crate::upload::options_from(&app.cfg.base, &job.options, &job.files, dir)?;
    o.output = Some(dir.join("result.mp4"));
    o.result_dir = dir.to_owned();
    o.frames_dir = None;
    o.verbose = false;
    Ok(o)
}

fn run_job(app: &App, job: JobRow) {
    let id = job.id.clone();
    let dir = app.job_dir(&id);
    let cancel = Arc::new(AtomicBool::new(false));
    let now = Instant::now();
    lock(&app.live).insert(
        id.clone(),
        Live {
            stage: Stage::Inputs,
            done: 0,
            total: None,
            stage_started: now,
            frames: None,
            cancel: cancel.clone(),
        },
    );
    let mut progress = JobProgress {
        app,
        id: id.clone(),
        cancel: cancel.clone(),
        deadline: now + app.cfg.limits.job_timeout,
        last_db: now,
        stage: Stage::Inputs,
        done: 0,
        total: None,
    };
    let outcome = match options_for(app, &job, &dir) {
        Ok(opts) => {
            let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sadtalker_pipeline::generate(&app.models, &opts, &mut progress)
            }));
            match run {
                Ok(r) => Ok(r),
                Err(_) => Err(JobError {
                    stage: Some(progress.stage.as_str().to_owned()),
                    kind: "internal".into(),
                    code: "internal".into(),
                    message: "the job crashed (a panic in the pipeline)".into(),
                    hint: Problem::Internal.hint().into(),
                }),
            }
        }
        Err(m) => Err(JobError {
            stage: Some("inputs".into()),
            kind: "bad_input".into(),
            code: "bad_input".into(),
            message: m,
            hint: Problem::BadInput.hint().into(),
        }),
    };
    // The last progress, not the last throttled one (a cancelled job shows where it stopped).
    progress.store(true);
    let timed_out = progress.timed_out();
    let stage = progress.stage;
    drop(progress);
    let elapsed = now.elapsed().as_secs_f64();
    lock(&app.live).remove(&id);
    let recorded = match outcome {
        Ok(Ok(report)) => {
            app.metrics.job_finished(report.frames, elapsed);
            let (state, error) = match &report.degraded {
                Some(d) => (
                    JobState::Degraded,
                    Some(JobError {
                        stage: Some(d.stage.as_str().to_owned()),
                        kind: d.kind.as_str().to_owned(),
                        code: d.code.as_str().to_owned(),
                        message: d.reason.clone(),
                        hint: d.code.hint().to_owned(),
                    }),
                ),
                None => (JobState::Done, None),
            };
            app.db.finish(&id, state, error.as_ref(), Some(&report_json(&report)))
        }
        Ok(Err(e)) if e.is_cancelled() && app.stopping() && !cancel.load(Ordering::SeqCst) => {
            // The server is stopping: the job runs again on the next start.
            app.db.requeue(&id)
        }
        Ok(Err(e)) if e.is_cancelled() && timed_out && !cancel.load(Ordering::SeqCst) => {
            let limit = app.cfg.limits.job_timeout.as_secs();
            let err = JobError {
                stage: Some(stage.as_str().to_owned()),
                kind: "bad_input".into(),
                code: "time_limit".into(),
                message: format!("the job ran past this server's time limit of {limit} s and was stopped"),
                hint: "use a shorter recording or a smaller size, or ask the operator to raise --job-timeout".into(),
            };
            app.db.finish(&id, JobState::Failed, Some(&err), None)
        }
        Ok(Err(e)) if e.is_cancelled() => app.db.finish(&id, JobState::Cancelled, None, None),
        Ok(Err(e)) => app.db.finish(&id, JobState::Failed, Some(&job_error(&e)), None),
        Err(err) => app.db.finish(&id, JobState::Failed, Some(&err), None),
    };
    if let Err(e) = recorded {
        eprintln!("error: job {id}: the outcome could not be recorded: {e}");
    }
    // A cancelled or failed job keeps no partial video.
    if let Ok(Some(row)) = app.db.get(&id)
        && !matches!(row.state, JobState::Done | JobState::Degraded)
    {
        let _ = std::fs::remove_file(dir.join("result.mp4"));
    }
    app.sweep();
}
