//! `sadtalker models`: list, fetch, verify and import model files; show where the store is.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use sadtalker_store::{
    ConsoleMode, ConsoleReporter, FileState, Manifest, ModelFile, ModelStore, StoreError, StoreOptions, default_root,
};
use serde_json::json;

use crate::exit::{Failure, Kind};

#[derive(Subcommand)]
pub enum ModelsCmd {
    /// Show every model file: present / verified / missing / wrong size, size, features, location.
    List(ListArgs),
    /// Download model files (mirrors in order, resumable, verified before use).
    ///
    /// Tries the --mirror (or $SADTALKER_MIRROR) first, as <URL>/<file name>, then each manifest URL
    /// ($HF_ENDPOINT replaces https://huggingface.co). Proxies come from HTTPS_PROXY / HTTP_PROXY /
    /// ALL_PROXY / NO_PROXY. An interrupted download resumes where it stopped.
    Fetch(FetchArgs),
    /// Re-hash installed model files; a bad file in the store is moved aside (never deleted) and reported.
    Verify(VerifyArgs),
    /// Install model files found by name anywhere under DIR (e.g. a reference `checkpoints` tree, or
    /// files copied from another machine): each is verified, then hard-linked or copied into the store.
    Import(ImportArgs),
    /// Print the store folder ($SADTALKER_HOME, else the platform cache folder).
    Where(WhereArgs),
}

/// Options shared by every command that finds model files.
#[derive(Args, Clone, Default)]
pub struct StoreArgs {
    /// Use this manifest (JSON) instead of the built-in list of official files.
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// A reference-layout `checkpoints` folder to use as is: files are looked for in DIR, then
    /// DIR/../gfpgan/weights, then in the store.
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
}

impl StoreArgs {
    /// Store options from these arguments and the environment.
    pub fn options(&self) -> Result<StoreOptions, Failure> {
        let mut opts = StoreOptions::from_env();
        if let Some(path) = &self.manifest {
            opts.manifest = Some(Manifest::load(path)?);
        }
        if let Some(dir) = &self.checkpoint_dir {
            if !dir.is_dir() {
                return Err(Failure::new(
                    Kind::BadInput,
                    anyhow::anyhow!("--checkpoint-dir {}: no such folder", dir.display()),
                ));
            }
            opts.checkpoint_dir = Some(dir.clone());
        }
        Ok(opts)
    }

    /// Opens the store.
    pub fn open(&self) -> Result<ModelStore, Failure> {
        Ok(ModelStore::open(self.options()?)?)
    }
}

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("what").required(true).multiple(true).args(["names", "all", "features"]))]
pub struct FetchArgs {
    /// File names to fetch (as `sadtalker models list` shows them).
    names: Vec<String>,
    /// Fetch every file of the manifest.
    #[arg(long)]
    all: bool,
    /// Fetch what a feature needs: 256, 512, face, enhancer, restoreformer, realesrgan, legacy (repeatable).
    #[arg(long = "for", value_name = "FEATURE")]
    features: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// Try this mirror first: the file is fetched from <URL>/<file name> (default: $SADTALKER_MIRROR).
    #[arg(long, value_name = "URL")]
    mirror: Option<String>,
    /// Use no network: report what is missing and how to install it offline.
    #[arg(long)]
    offline: bool,
    /// Abandon (and resume) a transfer that receives nothing for this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    stall_timeout: f64,
    /// Give up connecting to a mirror after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 20.0)]
    connect_timeout: f64,
    /// Tries per mirror for transient errors (5xx, reset, timeout) before the next mirror.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    retries: u32,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Print the result as JSON (no progress output).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// File names to verify (default: every file that is present).
    names: Vec<String>,
    #[command(flatten)]
    store: StoreArgs,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ImportArgs {
    /// Folder to search (recursively) for model files.
    dir: PathBuf,
    /// Use this manifest (JSON) instead of the built-in list of official files.
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct WhereArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Print JSON (store, checkpoint dir, lookup order).
    #[arg(long)]
    json: bool,
}

/// Missing, damaged or undownloadable models exit with 4; a bad manifest or request with 3.
impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let kind = match &e {
            StoreError::BadManifest { .. } | StoreError::UnknownFile { .. } | StoreError::UnknownFeature { .. } => {
                Kind::BadInput
            }
            StoreError::Http(_) => Kind::Internal,
            _ => Kind::Model,
        };
        Failure::new(kind, e)
    }
}

pub fn run(cmd: ModelsCmd) -> Result<(), Failure> {
    match cmd {
        ModelsCmd::List(args) => list(args),
        ModelsCmd::Fetch(args) => fetch(args),
        ModelsCmd::Verify(args) => verify(args),
        ModelsCmd::Import(args) => import(args),
        ModelsCmd::Where(args) => where_(args),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn list(args: ListArgs) -> Result<(), Failure> {
    let store = args.store.open()?;
    let rows = store.status();
    if args.json {
        let files: Vec<_> = rows
            .iter()
            .map(|r| {
                let mut v = json!({
                    "name": r.entry.name,
                    "size": r.entry.size,
                    "sha256": r.entry.sha256,
                    "features": r.entry.features,
                    "state": r.state.as_str(),
                    "path": r.path,
                    "origin": r.origin.map(|o| o.as_str()),
                });
                match r.state {
                    FileState::Partial(n) => v["partial_bytes"] = json!(n),
                    FileState::WrongSize(n) => v["actual_size"] = json!(n),
                    _ => {}
                }
                v
            })
            .collect();
        let doc = json!({
            "store": store.root(),
            "manifest": store.manifest().source,
            "checkpoint_dir": store.checkpoint_dir(),
            "files": files,
        });
        println!("{doc:#}");
        return Ok(());
    }
    println!(
        "store: {}  (manifest: {})",
        store.root().display(),
        store.manifest().source
    );
    if let Some(dir) = store.checkpoint_dir() {
        println!("checkpoint dir: {}", dir.display());
    }
    let width = rows.iter().map(|r| r.entry.name.len()).max().unwrap_or(4).max(4);
    let fwidth = rows
        .iter()
        .map(|r| r.entry.features.join(",").len())
        .max()
        .unwrap_or(9)
        .max(9);
    println!(
        "{:<width$}  {:>10}  {:<11}  {:<fwidth$}  WHERE",
        "FILE", "SIZE", "STATE", "NEEDED BY"
    );
    for r in &rows {
        let state = match r.state {
            FileState::Partial(n) => format!("partial {}%", n * 100 / r.entry.size.max(1)),
            ref s => s.as_str().to_string(),
        };
        let place = match (&r.path, r.origin) {
            (Some(p), Some(o)) => format!("{} ({})", p.display(), o.as_str()),
            _ => "-".to_string(),
        };
        println!(
            "{:<width$}  {:>10}  {:<11}  {:<fwidth$}  {place}",
            r.entry.name,
            mib(r.entry.size),
            state,
            r.entry.features.join(",")
        );
    }
    if rows.iter().any(|r| r.state == FileState::Present) {
        println!("(present = right size, not hashed yet; `sadtalker models verify` checks the SHA-256)");
    }
    Ok(())
}

/// The manifest entries selected by names, `--for` features and `--all`, in manifest order.
fn select<'a>(
    store: &'a ModelStore,
    names: &[String],
    features: &[String],
    all: bool,
) -> Result<Vec<&'a ModelFile>, Failure> {
    let mut wanted: Vec<&str> = Vec::new();
    for name in names {
        wanted.push(&store.entry(name)?.name);
    }
    for feature in features {
        wanted.extend(store.entries_for(feature)?.iter().map(|e| e.name.as_str()));
    }
    Ok(store
        .manifest()
        .files
        .iter()
        .filter(|e| all || wanted.contains(&e.name.as_str()))
        .collect())
}

fn reporter(quiet: bool) -> ConsoleReporter {
    ConsoleReporter::new(if quiet { ConsoleMode::Quiet } else { ConsoleMode::Auto })
}

fn seconds(flag: &str, v: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(v)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            Failure::new(
                Kind::BadInput,
                anyhow::anyhow!("--{flag} must be a positive number of seconds"),
            )
        })
}

fn fetch(args: FetchArgs) -> Result<(), Failure> {
    let mut opts = args.store.options()?;
    if let Some(m) = &args.mirror {
        opts.mirror = Some(m.clone());
    }
    opts.offline = args.offline;
    opts.network.stall_timeout = seconds("stall-timeout", args.stall_timeout)?;
    opts.network.connect_timeout = seconds("connect-timeout", args.connect_timeout)?;
    opts.network.attempts_per_mirror = args.retries;
    let store = ModelStore::open(opts)?;
    let entries = select(&store, &args.names, &args.features, args.all)?;
    let result = store.fetch(&entries, &reporter(args.quiet || args.json));
    match result {
        Ok(done) => {
            if args.json {
                let files: Vec<_> = done
                    .iter()
                    .map(|f| json!({"name": f.name, "path": f.path, "url": f.url, "notes": f.notes}))
                    .collect();
                println!("{:#}", json!({"ok": true, "store": store.root(), "files": files}));
            } else if !args.quiet {
                for f in &done {
                    match &f.url {
                        Some(_) => println!("{}: installed at {}", f.name, f.path.display()),
                        None => println!("{}: already installed at {}", f.name, f.path.display()),
                    }
                }
            }
            Ok(())
        }
        Err(e) => {
            if args.json {
                let failed = match &e {
                    StoreError::FetchFailed { failed, .. } | StoreError::Offline { failed, .. } => failed
                        .iter()
                        .map(|f| {
                            let tried: Vec<_> = f
                                .attempts
                                .iter()
                                .map(|a| json!({"url": a.url, "outcome": a.outcome}))
                                .collect();
                            json!({"name": f.name, "attempts": tried, "kept_partial_bytes": f.kept_partial})
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                println!("{:#}", json!({"ok": false, "error": e.to_string(), "failed": failed}));
            }
            Err(e.into())
        }
    }
}

fn verify(args: VerifyArgs) -> Result<(), Failure> {
    let store = args.store.open()?;
    let entries: Vec<&ModelFile> = if args.names.is_empty() {
        store
            .manifest()
            .files
            .iter()
            .filter(|e| !matches!(store.status_of(e).state, FileState::Missing | FileState::Partial(_)))
            .collect()
    } else {
        select(&store, &args.names, &[], false)?
    };
    let results = store.verify(&entries, &reporter(args.quiet || args.json))?;
    let bad: Vec<_> = results
        .iter()
        .filter(|r| !matches!(r.state, FileState::Verified))
        .map(|r| r.name.as_str())
        .collect();
    if args.json {
        let files: Vec<_> = results
            .iter()
            .map(|r| json!({"name": r.name, "state": r.state.as_str(), "path": r.path, "moved_to": r.moved_to}))
            .collect();
        println!("{:#}", json!({"ok": bad.is_empty(), "files": files}));
    } else if !args.quiet {
        if results.is_empty() {
            println!("no model files are installed (see `sadtalker models list`)");
        }
        for r in &results {
            let place = r
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "-".into());
            match &r.moved_to {
                Some(m) => println!("{}: {} at {place}; moved to {}", r.name, r.state.as_str(), m.display()),
                None => println!("{}: {} ({place})", r.name, r.state.as_str()),
            }
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Failure::new(
            Kind::Model,
            anyhow::anyhow!(
                "{} not the official file: {}; `sadtalker models fetch NAME` installs a good copy",
                if bad.len() == 1 { "1 file is" } else { "some files are" },
                bad.join(", ")
            ),
        ))
    }
}

fn import(args: ImportArgs) -> Result<(), Failure> {
    if !args.dir.is_dir() {
        return Err(Failure::new(
            Kind::BadInput,
            anyhow::anyhow!("{}: no such folder", args.dir.display()),
        ));
    }
    let store = StoreArgs {
        manifest: args.manifest.clone(),
        checkpoint_dir: None,
    }
    .open()?;
    let results = store.import(&args.dir, &reporter(args.quiet || args.json))?;
    if args.json {
        let files: Vec<_> = results
            .iter()
            .map(|r| json!({"name": r.name, "source": r.source, "ok": r.ok, "outcome": r.outcome}))
            .collect();
        println!("{:#}", json!({"store": store.root(), "files": files}));
    } else if !args.quiet {
        for r in &results {
            println!("{}: {} ({})", r.name, r.outcome, r.source.display());
        }
    }
    if results.is_empty() {
        let names: Vec<&str> = store.manifest().files.iter().map(|f| f.name.as_str()).collect();
        return Err(Failure::new(
            Kind::BadInput,
            anyhow::anyhow!(
                "no model file found under {} (looked for: {})",
                args.dir.display(),
                names.join(", ")
            ),
        ));
    }
    if !results.iter().any(|r| r.ok) {
        return Err(Failure::new(
            Kind::BadInput,
            anyhow::anyhow!(
                "no file under {} matches the official size and SHA-256",
                args.dir.display()
            ),
        ));
    }
    Ok(())
}

fn where_(args: WhereArgs) -> Result<(), Failure> {
    let store = args.store.open()?;
    if args.json {
        let order: Vec<_> = store
            .manifest()
            .files
            .iter()
            .map(|e| json!({"name": e.name, "candidates": store.candidates(e).iter().map(|(p, _)| p).collect::<Vec<_>>()}))
            .collect();
        let doc = json!({
            "store": store.root(),
            "default_store": default_root(),
            "checkpoint_dir": store.checkpoint_dir(),
            "manifest": store.manifest().source,
            "lookup": order,
        });
        println!("{doc:#}");
    } else {
        println!("{}", store.root().display());
    }
    Ok(())
}
