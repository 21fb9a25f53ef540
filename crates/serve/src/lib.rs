//! `sadtalker serve`: the pipeline behind an HTTP API, in one process with no external service.
//!
//! - [`ServeConfig`]: where to listen, how many workers, the data folder, the limits and the base job
//!   options (the command line's); [`Server::start`] binds and runs it, [`run`] until Ctrl-C.
//! - A **durable queue** in SQLite (WAL): a job and its uploaded inputs are committed before the
//!   `202` answer, so a process killed at any moment comes back with every queued job still queued and
//!   the interrupted one queued again (or failed with the reason after [`MAX_ATTEMPTS`] tries).
//! - **Workers** are OS threads (the pipeline is CPU-bound and synchronous) sharing one [`Models`]: the
//!   networks are loaded once. Cancellation and the per-job time limit reach the running job through
//!   [`Progress::cancelled`](sadtalker_pipeline::Progress::cancelled).
//! - The API (`/v1/jobs`, server-sent events, `Range` video downloads, `/metrics`, `/openapi.json`) and a
//!   web page at `/`, embedded in the binary.
//!
//! Uploaded files are stored under server-chosen names (`DATA/jobs/<id>/image.png`, …), their types
//! sniffed from their content; no client-supplied name ever becomes a path.

mod api;
mod db;
mod form;
mod metrics;
mod upload;
mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sadtalker_pipeline::{GenerateOptions, Models};

pub use db::{JobError, JobState};

/// How often an interrupted job is tried before it is failed with the reason.
pub const MAX_ATTEMPTS: i64 = 2;

/// The default listening address: this machine only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7860";

/// Caps on what one client may ask for.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Bytes of one submission (all files and fields together); more is refused with 413 while
    /// streaming, before it is all received.
    pub max_upload_bytes: u64,
    /// Pixels of the portrait (width × height, from the file's header before decoding): 422 beyond.
    pub max_image_pixels: u64,
    /// Seconds of speech: 422 beyond.
    pub max_audio_seconds: f64,
    /// Jobs waiting or running at once; a submission beyond is refused with 429 and `Retry-After`.
    pub max_queue: usize,
    /// Wall-clock limit of one job; a job past it is stopped and failed (`time_limit`).
    pub job_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_upload_bytes: 64 << 20,
            max_image_pixels: 4096 * 4096,
            max_audio_seconds: 120.0,
            max_queue: 100,
            job_timeout: Duration::from_secs(3600),
        }
    }
}

/// How many finished jobs (and their videos) are kept.
#[derive(Clone, Debug)]
pub struct Retention {
    /// At most this many finished jobs; the oldest go first.
    pub keep: usize,
    /// Finished jobs older than this many hours go.
    pub keep_hours: Option<f64>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            keep: 200,
            keep_hours: Some(7.0 * 24.0),
        }
    }
}

/// Everything the server needs besides the models.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Where to listen (default [`DEFAULT_LISTEN`]: localhost only).
    pub listen: SocketAddr,
    /// Jobs run at once, each on its own thread.
    pub workers: usize,
    /// The data folder: `queue.sqlite3`, `jobs/<id>/` (inputs and video), `tmp/` (uploads in progress).
    pub data_dir: PathBuf,
    /// With a token, every API call needs `Authorization: Bearer <token>` (401 otherwise).
    pub token: Option<String>,
    /// Send CORS headers allowing this origin (`*` for any); none when unset.
    pub cors_origin: Option<String>,
    /// Upload, queue and time limits.
    pub limits: Limits,
    /// What is kept of finished jobs.
    pub retention: Retention,
    /// The options every job starts from (the command line's); a submission's fields override them.
    pub base: GenerateOptions,
    /// Start with the workers held: jobs are accepted and queued but none starts until
    /// [`Server::resume`]. For maintenance windows and for tests that need a queue that does not move.
    pub start_paused: bool,
}

impl ServeConfig {
    /// A configuration with the defaults, keeping its data in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7860)),
            workers: 1,
            data_dir: data_dir.into(),
            token: None,
            cors_origin: None,
            limits: Limits::default(),
            retention: Retention::default(),
            base: GenerateOptions::default(),
            start_paused: false,
        }
    }
}

/// What can stop the server from starting.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The job database cannot be opened or migrated.
    #[error("job database {}: {source}", path.display())]
    Db {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// A database written by a newer version of this program.
    #[error(
        "job database {}: schema version {found} is newer than this program's ({supported}); use a newer \
         sadtalker or another --data folder",
        path.display()
    )]
    SchemaTooNew {
        /// The database file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// Ours.
        supported: i64,
    },
    /// A file-system operation on the data folder.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The listening address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// An unusable setting.
    #[error("{0}")]
    Config(String),
}

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ServeError {
    let path = path.into();
    move |source| ServeError::Io { path, source }
}

/// A running server: its address, and the handle to stop it.
pub struct Server {
    addr: SocketAddr,
    app: Arc<worker::App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    recovered: db::Recovered,
}

impl Server {
    /// Opens the queue (recovering jobs a killed process left running), starts the workers and the
    /// model loading, binds `config.listen` and serves on a background thread.
    pub fn start(config: ServeConfig, models: Arc<Models>) -> Result<Self, ServeError> {
        if config.workers == 0 {
            return Err(ServeError::Config("--workers must be at least 1".into()));
        }
        let (app, recovered) = worker::App::open(config, models)?;
        let app = Arc::new(app);
        let std_listener = std::net::TcpListener::bind(app.cfg.listen).map_err(|source| ServeError::Bind {
            addr: app.cfg.listen,
            source,
        })?;
        let addr = std_listener.local_addr().map_err(|source| ServeError::Bind {
            addr: app.cfg.listen,
            source,
        })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| ServeError::Bind { addr, source })?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| ServeError::Config(format!("cannot start the HTTP runtime: {e}")))?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener).map_err(|source| ServeError::Bind { addr, source })?
        };
        worker::spawn(&app);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = api::router(app.clone());
        let thread = std::thread::Builder::new()
            .name("sadtalker-http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
                        let _ = rx.await;
                    });
                    if let Err(e) = serve.await {
                        eprintln!("error: the HTTP server stopped: {e}");
                    }
                });
                // Open event streams are not waited for.
                runtime.shutdown_timeout(Duration::from_millis(500));
            })
            .map_err(|e| ServeError::Config(format!("cannot start the HTTP thread: {e}")))?;
        Ok(Self {
            addr,
            app,
            shutdown: Some(tx),
            thread: Some(thread),
            recovered,
        })
    }

    /// The address it listens on (the real port when `listen` had port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What start-up found of an earlier process: jobs queued again and jobs failed.
    pub fn recovered(&self) -> (usize, usize) {
        (self.recovered.requeued, self.recovered.failed)
    }

    /// Lets held workers ([`ServeConfig::start_paused`]) start taking jobs.
    pub fn resume(&self) {
        self.app.resume();
    }

    /// Blocks until the HTTP thread ends (it does not on its own: see [`Server::stop`]).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops accepting requests and stops the workers; a running job is stopped and queued again, so the
    /// next start runs it.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        self.app.begin_shutdown();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.app.join_workers();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

/// Runs the server until Ctrl-C or SIGTERM, printing where it listens.
pub fn run(config: ServeConfig, models: Arc<Models>) -> Result<(), ServeError> {
    let server = Server::start(config, models)?;
    let (requeued, failed) = server.recovered();
    if requeued + failed > 0 {
        eprintln!(
            "recovered the queue of an earlier run: {requeued} interrupted job(s) queued again, {failed} failed \
             after {MAX_ATTEMPTS} attempts"
        );
    }
    eprintln!("sadtalker serve: listening on http://{} (Ctrl-C stops)", server.addr());
    wait_for_signal();
    eprintln!("stopping: the running job, if any, is queued again for the next start");
    server.stop();
    Ok(())
}

fn wait_for_signal() {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
        // No runtime for the signal: serve until killed.
        loop {
            std::thread::park();
        }
    };
    rt.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    });
}
