//! `sadtalker serve`: the HTTP API, the job queue and the web page. A thin layer over `sadtalker_serve`:
//! the arguments, the models (the same options as `generate`, loaded once), and the exit code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use sadtalker_pipeline::GenerateOptions;
use sadtalker_serve::{Limits, Retention, ServeConfig};

use crate::commands::generate::{ModelArgs, SourceCacheArg};
use crate::exit::{Failure, Kind};

#[derive(Args)]
#[command(after_help = "Examples:
  sadtalker serve                                   # http://127.0.0.1:7860: the web page and the API
  sadtalker serve --listen 0.0.0.0:7860 --token \"$(openssl rand -hex 16)\" --workers 2 --data /srv/sadtalker
  curl -F image=@face.png -F audio=@talk.wav -F preprocess=full http://127.0.0.1:7860/v1/jobs

The API is described at /openapi.json. Jobs and their inputs are kept in DATA (SQLite, WAL) and survive a
restart; an interrupted job runs again.")]
pub struct ServeArgs {
    /// Address to listen on (default: this machine only).
    #[arg(long, default_value = sadtalker_serve::DEFAULT_LISTEN, value_name = "ADDR:PORT")]
    pub listen: SocketAddr,
    /// Jobs run at once (each uses all CPU threads; more than 1 helps only on large machines).
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub workers: usize,
    /// Data folder: the job database, the uploaded inputs and the videos.
    #[arg(long, default_value = "sadtalker-data", value_name = "DIR")]
    pub data: PathBuf,
    /// Every API call needs `Authorization: Bearer T` (default $SADTALKER_TOKEN).
    #[arg(long, value_name = "T")]
    pub token: Option<String>,
    /// Send CORS headers for this origin (`*`: any). Off by default.
    #[arg(long, value_name = "ORIGIN")]
    pub cors: Option<String>,
    /// Largest submission in MiB (all files together): 413 beyond.
    #[arg(long, default_value_t = 64, value_name = "MIB")]
    pub max_upload_mb: u64,
    /// Largest portrait in pixels (width × height): 422 beyond.
    #[arg(long, default_value_t = 4096 * 4096, value_name = "N")]
    pub max_pixels: u64,
    /// Longest speech in seconds: 422 beyond.
    #[arg(long, default_value_t = 120.0, value_name = "S")]
    pub max_audio_seconds: f64,
    /// Jobs waiting or running at once: 429 with Retry-After beyond.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub max_queue: usize,
    /// A job running longer than this many seconds is stopped and failed.
    #[arg(long, default_value_t = 3600, value_name = "S")]
    pub job_timeout: u64,
    /// Finished jobs kept (with their videos); the oldest are removed first.
    #[arg(long, default_value_t = 200, value_name = "N")]
    pub keep: usize,
    /// Finished jobs older than this are removed (0: no age limit).
    #[arg(long, default_value_t = 168.0, value_name = "H")]
    pub keep_hours: f64,
    /// Default face render size of the jobs (a job's `size` field overrides it).
    #[arg(long, value_name = "N")]
    pub size: Option<u32>,
    #[command(flatten)]
    pub cache: SourceCacheArg,
    #[command(flatten)]
    pub models: ModelArgs,
}

/// Runs `sadtalker serve`.
pub fn run(args: ServeArgs) -> Result<(), Failure> {
    let bad = |m: String| Failure::new(Kind::BadInput, anyhow!(m));
    if args.workers == 0 {
        return Err(bad("--workers must be at least 1".into()));
    }
    if args.max_queue == 0 {
        return Err(bad("--max-queue must be at least 1".into()));
    }
    let token = args
        .token
        .clone()
        .or_else(|| std::env::var("SADTALKER_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if !args.listen.ip().is_loopback() && token.is_none() {
        eprintln!(
            "warning: listening on {} without --token: anyone who can reach this port can submit jobs",
            args.listen
        );
    }
    let models = args.models.models(false)?;
    let models = args.cache.apply(models);
    let mut base = GenerateOptions::default();
    base.size = match args.size {
        Some(s) => s,
        // The built-in test networks render 64 pixels only.
        None if !models.sizes().contains(&base.size) => models.sizes()[0],
        None => base.size,
    };
    let config = ServeConfig {
        listen: args.listen,
        workers: args.workers,
        data_dir: args.data.clone(),
        token,
        cors_origin: args.cors.clone(),
        limits: Limits {
            max_upload_bytes: args.max_upload_mb.saturating_mul(1 << 20),
            max_image_pixels: args.max_pixels,
            max_audio_seconds: args.max_audio_seconds,
            max_queue: args.max_queue,
            job_timeout: Duration::from_secs(args.job_timeout.max(1)),
        },
        retention: Retention {
            keep: args.keep,
            keep_hours: (args.keep_hours > 0.0).then_some(args.keep_hours),
        },
        base,
        start_paused: false,
    };
    sadtalker_serve::run(config, Arc::new(models)).map_err(|e| {
        let kind = match e {
            sadtalker_serve::ServeError::Bind { .. } | sadtalker_serve::ServeError::Config(_) => Kind::BadInput,
            _ => Kind::Internal,
        };
        Failure::new(kind, anyhow!("{e}"))
    })
}
