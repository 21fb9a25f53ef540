//! The store: where model files are looked for, installed, verified and imported.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::download::{Downloader, NetworkOptions, with_suffix};
use crate::error::{FailedFile, StoreError};
use crate::fsutil::{
    FileLock, HashRecords, SpaceProbe, create_dir, disk_space_probe, io_err, sha256_file, structural_check, sync_dir,
};
use crate::manifest::{Manifest, ModelFile};
use crate::progress::Reporter;

/// Receives one-line warnings (e.g. "using a file that is not the official one").
pub type WarnSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How to open a [`ModelStore`].
#[derive(Clone)]
pub struct StoreOptions {
    /// Store folder; `None`: `$SADTALKER_HOME`, else `<platform cache dir>/sadtalker`.
    pub root: Option<PathBuf>,
    /// Manifest; `None`: the built-in one.
    pub manifest: Option<Manifest>,
    /// A reference-layout `checkpoints` folder to use as is (looked in before the store).
    pub checkpoint_dir: Option<PathBuf>,
    /// A mirror tried before the manifest URLs: the file is at `<mirror>/<file name>`.
    pub mirror: Option<String>,
    /// Replaces `https://huggingface.co` in manifest URLs (as the Hugging Face hub client does).
    pub hf_endpoint: Option<String>,
    /// Never use the network: missing files are an error with the offline remedy.
    pub offline: bool,
    /// Timeouts and retries.
    pub network: NetworkOptions,
    /// Free-space probe (injectable for tests).
    pub free_space: SpaceProbe,
    /// Where warnings go (default: stderr).
    pub warn: WarnSink,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            root: None,
            manifest: None,
            checkpoint_dir: None,
            mirror: None,
            hf_endpoint: None,
            offline: false,
            network: NetworkOptions::default(),
            free_space: disk_space_probe(),
            warn: Arc::new(|line| eprintln!("warning: {line}")),
        }
    }
}

impl StoreOptions {
    /// Defaults plus what the environment sets: `SADTALKER_MIRROR`, `HF_ENDPOINT`
    /// (`SADTALKER_HOME` is read when the store opens with no `root`).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        StoreOptions {
            mirror: var("SADTALKER_MIRROR"),
            hf_endpoint: var("HF_ENDPOINT"),
            ..StoreOptions::default()
        }
    }
}

/// The default store folder: `$SADTALKER_HOME`, else `<cache dir>/sadtalker` (XDG on Linux:
/// `$XDG_CACHE_HOME/sadtalker` or `~/.cache/sadtalker`).
pub fn default_root() -> PathBuf {
    if let Some(home) = std::env::var_os("SADTALKER_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(home);
    }
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("sadtalker")
}

/// Where a located file was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// In the `--checkpoint-dir` folder.
    CheckpointDir,
    /// Beside it, where the reference keeps facexlib/GFPGAN files (`DIR/../gfpgan/weights`).
    ReferenceLayout,
    /// In the store.
    Store,
}

impl Origin {
    /// A short label.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::CheckpointDir => "checkpoint-dir",
            Origin::ReferenceLayout => "reference layout",
            Origin::Store => "store",
        }
    }
}

/// A model file found and checked, ready to load.
#[derive(Clone, Debug)]
pub struct Located {
    /// Manifest name.
    pub name: String,
    /// Its path.
    pub path: PathBuf,
    /// Where it was found.
    pub origin: Origin,
    /// `true` when its SHA-256 is the manifest's; `false` for a custom (e.g. fine-tuned) file that
    /// passed the structural check and was warned about.
    pub official: bool,
}

/// What [`ModelStore::status`] knows about a file without hashing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileState {
    /// Not found anywhere.
    Missing,
    /// Only a partial download (bytes) is in the store.
    Partial(u64),
    /// Found with the wrong size (bytes).
    WrongSize(u64),
    /// Found with the right size; not hashed yet (`sadtalker models verify` hashes it).
    Present,
    /// Hashed since its last change: the official file.
    Verified,
    /// Hashed since its last change: not the official file (custom or damaged).
    HashMismatch,
}

impl FileState {
    /// A short label for tables and JSON.
    pub fn as_str(&self) -> &'static str {
        match self {
            FileState::Missing => "missing",
            FileState::Partial(_) => "partial",
            FileState::WrongSize(_) => "wrong size",
            FileState::Present => "present",
            FileState::Verified => "verified",
            FileState::HashMismatch => "wrong hash",
        }
    }

    /// Whether a file in this state can be loaded as the official one.
    pub fn is_usable(&self) -> bool {
        matches!(self, FileState::Present | FileState::Verified)
    }
}

/// One row of [`ModelStore::status`].
#[derive(Clone, Debug)]
pub struct FileStatus {
    /// The manifest entry.
    pub entry: ModelFile,
    /// State of the first file found (or of the store's partial download).
    pub state: FileState,
    /// Where the file is, when found.
    pub path: Option<PathBuf>,
    /// Where it was found.
    pub origin: Option<Origin>,
}

/// What [`ModelStore::fetch`] did for one file.
#[derive(Clone, Debug)]
pub struct Fetched {
    /// Manifest name.
    pub name: String,
    /// The installed (or already present) file.
    pub path: PathBuf,
    /// The URL that delivered it; `None` when it was already there.
    pub url: Option<String>,
    /// Failed attempts before success (`url: outcome`).
    pub notes: Vec<String>,
}

/// What [`ModelStore::verify`] found for one file.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Manifest name.
    pub name: String,
    /// State after hashing (`Verified`, `HashMismatch`, `WrongSize` or `Missing`).
    pub state: FileState,
    /// The file checked.
    pub path: Option<PathBuf>,
    /// Where a bad store file was moved to (never deleted).
    pub moved_to: Option<PathBuf>,
}

/// What [`ModelStore::import`] did for one file.
#[derive(Clone, Debug)]
pub struct Imported {
    /// Manifest name.
    pub name: String,
    /// The source file.
    pub source: PathBuf,
    /// `installed (copied)`, `installed (hard link)`, `already installed`, or why it was skipped.
    pub outcome: String,
    /// Whether the store now has the verified file.
    pub ok: bool,
}

/// The model store. Cheap to open: nothing is created until a file is installed.
pub struct ModelStore {
    root: PathBuf,
    manifest: Manifest,
    opts: StoreOptions,
    records: HashRecords,
}

impl ModelStore {
    /// Opens the store described by `opts`.
    pub fn open(mut opts: StoreOptions) -> Result<ModelStore, StoreError> {
        let root = opts.root.clone().unwrap_or_else(default_root);
        let manifest = opts.manifest.take().unwrap_or_else(Manifest::official);
        let records = HashRecords::new(root.join(".state").join("hashes"));
        Ok(ModelStore {
            root,
            manifest,
            opts,
            records,
        })
    }

    /// The store folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The manifest in use.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The `--checkpoint-dir` folder, if any.
    pub fn checkpoint_dir(&self) -> Option<&Path> {
        self.opts.checkpoint_dir.as_deref()
    }

    /// The manifest entry named `name`.
    pub fn entry(&self, name: &str) -> Result<&ModelFile, StoreError> {
        self.manifest.get(name).ok_or_else(|| StoreError::UnknownFile {
            name: name.to_string(),
            manifest: self.manifest.source.clone(),
            known: self
                .manifest
                .files
                .iter()
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    /// The entries `feature` needs.
    pub fn entries_for(&self, feature: &str) -> Result<Vec<&ModelFile>, StoreError> {
        let files = self.manifest.for_feature(feature);
        if files.is_empty() {
            return Err(StoreError::UnknownFeature {
                feature: feature.to_string(),
                manifest: self.manifest.source.clone(),
                known: self.manifest.features().into_iter().collect::<Vec<_>>().join(", "),
            });
        }
        Ok(files)
    }

    /// Where the store keeps `entry` (its reference-layout path under the store folder).
    pub fn store_path(&self, entry: &ModelFile) -> PathBuf {
        self.root.join(entry.rel_path())
    }

    /// The places `entry` is looked for, in order: `DIR/<name>`; for files the reference keeps outside
    /// `checkpoints/` (facexlib/GFPGAN weights), `DIR/../gfpgan/weights/<name>`; then the store.
    pub fn candidates(&self, entry: &ModelFile) -> Vec<(PathBuf, Origin)> {
        let mut out = Vec::new();
        if let Some(dir) = &self.opts.checkpoint_dir {
            out.push((dir.join(&entry.name), Origin::CheckpointDir));
            if !entry.path.starts_with("checkpoints/") {
                out.push((dir.join("..").join(entry.rel_path()), Origin::ReferenceLayout));
            }
        }
        out.push((self.store_path(entry), Origin::Store));
        out
    }

    /// State of every manifest file, from sizes and past hashes (no hashing: fast).
    pub fn status(&self) -> Vec<FileStatus> {
        self.manifest.files.iter().map(|e| self.status_of(e)).collect()
    }

    /// State of one file (see [`ModelStore::status`]).
    pub fn status_of(&self, entry: &ModelFile) -> FileStatus {
        for (path, origin) in self.candidates(entry) {
            let Ok(meta) = fs::metadata(&path) else { continue };
            if !meta.is_file() {
                continue;
            }
            let state = if meta.len() != entry.size {
                FileState::WrongSize(meta.len())
            } else {
                match self.records.lookup(&path) {
                    Some(h) if h == entry.sha256 => FileState::Verified,
                    Some(_) => FileState::HashMismatch,
                    None => FileState::Present,
                }
            };
            return FileStatus {
                entry: entry.clone(),
                state,
                path: Some(path),
                origin: Some(origin),
            };
        }
        let part = with_suffix(&self.store_path(entry), ".part");
        let state = match fs::metadata(&part) {
            Ok(m) if m.len() > 0 => FileState::Partial(m.len()),
            _ => FileState::Missing,
        };
        FileStatus {
            entry: entry.clone(),
            state,
            path: None,
            origin: None,
        }
    }

    /// SHA-256 of `path`, from a past hash when the file has not changed since, else hashed now.
    fn hash_of(&self, path: &Path) -> Result<String, StoreError> {
        if let Some(h) = self.records.lookup(path) {
            return Ok(h);
        }
        let h = sha256_file(path, |_| {}).map_err(io_err(format!("reading {}", path.display())))?;
        self.records.remember(path, &h);
        Ok(h)
    }

    /// Finds model file `name` (lookup order: [`ModelStore::candidates`]) and checks it: the official
    /// file is returned; in the `--checkpoint-dir` folders a file with another hash (fine-tuned, test
    /// weights) is accepted with a one-line warning if it is structurally a checkpoint; a damaged store
    /// file is an error. The first hash of a file is recorded, so later calls do not re-read it.
    pub fn locate(&self, name: &str) -> Result<Located, StoreError> {
        let entry = self.entry(name)?;
        let candidates = self.candidates(entry);
        let Some((path, origin)) = candidates.iter().find(|(p, _)| p.is_file()).cloned() else {
            return Err(StoreError::Missing {
                feature: None,
                files: vec![(entry.name.clone(), entry.size)],
                searched: candidates.into_iter().map(|(p, _)| p).collect(),
            });
        };
        let size = fs::metadata(&path)
            .map_err(io_err(format!("reading {}", path.display())))?
            .len();
        let mismatch = if size != entry.size {
            format!("size {size} bytes, the official file has {}", entry.size)
        } else {
            let h = self.hash_of(&path)?;
            if h == entry.sha256 {
                return Ok(Located {
                    name: entry.name.clone(),
                    path,
                    origin,
                    official: true,
                });
            }
            format!("sha256 {h}, the official file has {}", entry.sha256)
        };
        if origin == Origin::Store {
            return Err(StoreError::Damaged {
                name: entry.name.clone(),
                path,
                reason: mismatch,
            });
        }
        match structural_check(&path) {
            Ok(format) => {
                (self.opts.warn)(&format!(
                    "{} is not the official {} ({mismatch}); using it as a custom {format} checkpoint",
                    path.display(),
                    entry.name
                ));
                Ok(Located {
                    name: entry.name.clone(),
                    path,
                    origin,
                    official: false,
                })
            }
            Err(why) => Err(StoreError::Damaged {
                name: entry.name.clone(),
                path,
                reason: format!("{mismatch}, and {why}"),
            }),
        }
    }

    /// Locates every file `feature` needs; when some are missing, the error lists them all with the
    /// command that installs them.
    pub fn require(&self, feature: &str) -> Result<Vec<Located>, StoreError> {
        let names: Vec<String> = self.entries_for(feature)?.iter().map(|e| e.name.clone()).collect();
        self.require_files(Some(feature), &names)
    }

    /// Locates the named files (see [`ModelStore::require`]).
    pub fn require_files(&self, feature: Option<&str>, names: &[String]) -> Result<Vec<Located>, StoreError> {
        let mut found = Vec::new();
        let mut missing = Vec::new();
        let mut searched = Vec::new();
        for name in names {
            match self.locate(name) {
                Ok(l) => found.push(l),
                Err(StoreError::Missing { files, searched: s, .. }) => {
                    missing.extend(files);
                    for p in s {
                        if let Some(dir) = p.parent().map(Path::to_path_buf)
                            && !searched.contains(&dir)
                        {
                            searched.push(dir);
                        }
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if missing.is_empty() {
            Ok(found)
        } else {
            Err(StoreError::Missing {
                feature: feature.map(str::to_string),
                files: missing,
                searched,
            })
        }
    }

    /// The URLs to try for `entry`, in order: the user mirror, then the manifest's (with
    /// `HF_ENDPOINT` applied), without duplicates.
    pub fn urls_for(&self, entry: &ModelFile) -> Vec<String> {
        let mut urls = Vec::new();
        if let Some(base) = &self.opts.mirror {
            urls.push(format!("{}/{}", base.trim_end_matches('/'), entry.name));
        }
        for url in &entry.urls {
            let url = match (&self.opts.hf_endpoint, url.strip_prefix("https://huggingface.co/")) {
                (Some(endpoint), Some(rest)) => format!("{}/{rest}", endpoint.trim_end_matches('/')),
                _ => url.clone(),
            };
            if !urls.contains(&url) {
                urls.push(url);
            }
        }
        urls
    }

    fn lock_path(&self, entry: &ModelFile) -> PathBuf {
        self.root
            .join(".state")
            .join("locks")
            .join(format!("{}.lock", entry.name))
    }

    /// Downloads the entries that are not already usable, then returns where each one is. Checks free
    /// space for all of them first (+10 %). Each file is locked while it is fetched, so a second
    /// process waits and then finds it installed. Files already usable through `--checkpoint-dir`
    /// are not downloaded again.
    pub fn fetch(&self, entries: &[&ModelFile], reporter: &dyn Reporter) -> Result<Vec<Fetched>, StoreError> {
        let mut todo = Vec::new();
        let mut done = Vec::new();
        for entry in entries {
            let status = self.status_of(entry);
            match (status.state, status.path) {
                (state, Some(path)) if state.is_usable() => done.push(Fetched {
                    name: entry.name.clone(),
                    path,
                    url: None,
                    notes: Vec::new(),
                }),
                (FileState::Partial(n), _) => todo.push((*entry, n)),
                _ => todo.push((*entry, 0)),
            }
        }
        if todo.is_empty() {
            return Ok(done);
        }
        if self.opts.offline {
            return Err(StoreError::Offline {
                failed: todo.iter().map(|(e, _)| failed_file(e, Vec::new(), 0)).collect(),
                store_dir: self.root.clone(),
            });
        }
        let needed: u64 = todo.iter().map(|(e, have)| e.size.saturating_sub(*have)).sum();
        let needed = needed.saturating_add(needed / 10);
        let available = (self.opts.free_space)(&self.root)
            .map_err(io_err(format!("reading the free space of {}", self.root.display())))?;
        if available < needed {
            return Err(StoreError::InsufficientSpace {
                dir: self.root.clone(),
                needed,
                available,
            });
        }
        for removed in self.clean_stale_parts(STALE_PART_AGE) {
            reporter.note(
                "store",
                &format!("removed an abandoned partial file {}", removed.display()),
            );
        }
        let downloader = Downloader::new(self.opts.network.clone());
        let mut failed = Vec::new();
        for (entry, _) in todo {
            match self.fetch_one(&downloader, entry, reporter)? {
                Ok(f) => done.push(f),
                Err(f) => failed.push(f),
            }
        }
        if failed.is_empty() {
            Ok(done)
        } else {
            Err(StoreError::FetchFailed {
                failed,
                store_dir: self.root.clone(),
            })
        }
    }

    fn fetch_one(
        &self,
        downloader: &Downloader,
        entry: &ModelFile,
        reporter: &dyn Reporter,
    ) -> Result<Result<Fetched, FailedFile>, StoreError> {
        let dest = self.store_path(entry);
        let _lock = FileLock::acquire(&self.lock_path(entry), || {
            reporter.note(
                &entry.name,
                "another sadtalker process is fetching this file; waiting for it",
            )
        })?;
        // Re-check under the lock: the process we waited for may have installed it.
        if dest.is_file() {
            let size = fs::metadata(&dest).map(|m| m.len()).unwrap_or(0);
            if size == entry.size && self.hash_of(&dest)? == entry.sha256 {
                reporter.finish(&entry.name, "already installed");
                return Ok(Ok(Fetched {
                    name: entry.name.clone(),
                    path: dest,
                    url: None,
                    notes: Vec::new(),
                }));
            }
            let moved = self.move_aside(&dest)?;
            reporter.note(&entry.name, &format!("a damaged copy was moved to {}", moved.display()));
        }
        if let Some(dir) = dest.parent() {
            create_dir(dir)?;
        }
        let urls = self.urls_for(entry);
        match downloader.fetch(entry, &dest, &urls, reporter)? {
            Ok(done) => {
                self.records.remember(&dest, &entry.sha256);
                reporter.finish(&entry.name, &format!("verified, installed at {}", dest.display()));
                Ok(Ok(Fetched {
                    name: entry.name.clone(),
                    path: dest,
                    url: Some(done.url),
                    notes: done.attempts.iter().map(ToString::to_string).collect(),
                }))
            }
            Err(not) => {
                reporter.finish(&entry.name, "failed");
                Ok(Err(failed_file(entry, not.attempts, not.kept_partial)))
            }
        }
    }

    /// Removes temporary files nothing will resume: `<file>.part` (+ `.part.json`) of names the manifest does
    /// not list, and `<file>.import` copies of an interrupted import, once untouched for `max_age` and not
    /// locked by a running fetch. Parts of listed files are kept: the next fetch resumes them (or discards
    /// them if they belong to another version of the file). Returns what was removed.
    pub fn clean_stale_parts(&self, max_age: Duration) -> Vec<PathBuf> {
        let mut stale = Vec::new();
        let _ = walk_skipping_state(&self.root, &mut |path| {
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                return;
            };
            let name = if let Some(n) = file_name.strip_suffix(".part") {
                if self.manifest.get(n).is_some() {
                    return;
                }
                n
            } else if let Some(n) = file_name.strip_suffix(".import") {
                n
            } else {
                return;
            };
            let old = fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > max_age);
            if old {
                stale.push((name.to_string(), path.to_path_buf()));
            }
        });
        let mut removed = Vec::new();
        for (name, path) in stale {
            let lock = self.root.join(".state").join("locks").join(format!("{name}.lock"));
            let Some(_lock) = FileLock::try_acquire(&lock) else {
                continue;
            };
            if fs::remove_file(&path).is_ok() {
                let _ = fs::remove_file(with_suffix(&path, ".json"));
                removed.push(path);
            }
        }
        removed
    }

    /// Renames a bad file to `<file>.bad-<unix time>` beside it (never deletes a user's bytes).
    fn move_aside(&self, path: &Path) -> Result<PathBuf, StoreError> {
        let stamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut target = with_suffix(path, &format!(".bad-{stamp}"));
        let mut n = 1;
        while target.exists() {
            target = with_suffix(path, &format!(".bad-{stamp}-{n}"));
            n += 1;
        }
        fs::rename(path, &target).map_err(io_err(format!("moving {} aside", path.display())))?;
        self.records.forget(path);
        Ok(target)
    }

    /// Re-hashes the entries wherever they are found. A bad file in the store is moved aside
    /// (`<file>.bad-<time>`) and reported; a file in `--checkpoint-dir` folders is the user's and is
    /// only reported.
    pub fn verify(&self, entries: &[&ModelFile], reporter: &dyn Reporter) -> Result<Vec<Verified>, StoreError> {
        let mut out = Vec::new();
        for entry in entries {
            let status = self.status_of(entry);
            let (Some(path), Some(origin)) = (status.path, status.origin) else {
                out.push(Verified {
                    name: entry.name.clone(),
                    state: FileState::Missing,
                    path: None,
                    moved_to: None,
                });
                continue;
            };
            let size = fs::metadata(&path)
                .map_err(io_err(format!("reading {}", path.display())))?
                .len();
            let state = if size != entry.size {
                FileState::WrongSize(size)
            } else {
                reporter.begin(&entry.name, size, 0);
                let h = sha256_file(&path, |done| reporter.advance(&entry.name, done))
                    .map_err(io_err(format!("reading {}", path.display())))?;
                self.records.remember(&path, &h);
                if h == entry.sha256 {
                    FileState::Verified
                } else {
                    FileState::HashMismatch
                }
            };
            let mut moved_to = None;
            if state != FileState::Verified && origin == Origin::Store {
                let _lock = FileLock::acquire(&self.lock_path(entry), || {})?;
                moved_to = Some(self.move_aside(&path)?);
            }
            let outcome = match &moved_to {
                Some(m) => format!("{}: moved to {}", state.as_str(), m.display()),
                None => state.as_str().to_string(),
            };
            reporter.finish(&entry.name, &outcome);
            out.push(Verified {
                name: entry.name.clone(),
                state,
                path: Some(path),
                moved_to,
            });
        }
        Ok(out)
    }

    /// Finds manifest files by name anywhere under `dir` (a reference `checkpoints/` tree, a download
    /// folder…), verifies each (size + SHA-256) and installs it in the store: a hard link when `dir`
    /// is on the same file system, else a copy (to a temporary file, renamed when complete).
    /// Files with the wrong size or hash are reported and not installed.
    pub fn import(&self, dir: &Path, reporter: &dyn Reporter) -> Result<Vec<Imported>, StoreError> {
        let mut found: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        walk(dir, &mut |path| {
            if let Some(name) = path.file_name().and_then(|n| n.to_str())
                && self.manifest.get(name).is_some()
            {
                found.entry(name.to_string()).or_default().push(path.to_path_buf());
            }
        })
        .map_err(io_err(format!("reading folder {}", dir.display())))?;
        let mut out = Vec::new();
        for (name, sources) in found {
            let entry = self.entry(&name)?;
            let mut result = None;
            let mut rejected = Vec::new();
            for source in sources {
                match self.import_one(entry, &source, reporter)? {
                    Ok(outcome) => {
                        result = Some(Imported {
                            name: name.clone(),
                            source,
                            outcome,
                            ok: true,
                        });
                        break;
                    }
                    Err(why) => rejected.push((source, why)),
                }
            }
            match result {
                Some(r) => {
                    reporter.finish(&name, &r.outcome);
                    out.push(r)
                }
                None => {
                    for (source, why) in rejected {
                        reporter.finish(&name, &format!("not imported: {} {why}", source.display()));
                        out.push(Imported {
                            name: name.clone(),
                            source,
                            outcome: format!("skipped: {why}"),
                            ok: false,
                        });
                    }
                }
            }
        }
        Ok(out)
    }

    /// Installs one candidate; `Ok(Err(why))` when it is not the official file.
    fn import_one(
        &self,
        entry: &ModelFile,
        source: &Path,
        reporter: &dyn Reporter,
    ) -> Result<Result<String, String>, StoreError> {
        // The file a link names, not the link: a Hugging Face cache holds relative links into
        // `blobs/`, and a hard link to such a link would dangle in the store.
        let resolved = fs::canonicalize(source).map_err(io_err(format!("resolving {}", source.display())))?;
        let source = resolved.as_path();
        let size = fs::metadata(source)
            .map_err(io_err(format!("reading {}", source.display())))?
            .len();
        if size != entry.size {
            return Ok(Err(format!("has {size} bytes, the official file has {}", entry.size)));
        }
        let dest = self.store_path(entry);
        if let (Ok(a), Ok(b)) = (fs::canonicalize(source), fs::canonicalize(&dest))
            && a == b
        {
            return Ok(Ok("already installed".into()));
        }
        let dir = dest.parent().unwrap_or(&self.root).to_path_buf();
        create_dir(&dir)?;
        let _lock = FileLock::acquire(&self.lock_path(entry), || {
            reporter.note(
                &entry.name,
                "another sadtalker process is installing this file; waiting for it",
            )
        })?;
        if dest.is_file() && self.hash_of(&dest).ok().as_deref() == Some(entry.sha256.as_str()) {
            return Ok(Ok("already installed".into()));
        }
        reporter.begin(&entry.name, size, 0);
        let hash = sha256_file(source, |d| reporter.advance(&entry.name, d))
            .map_err(io_err(format!("reading {}", source.display())))?;
        if hash != entry.sha256 {
            return Ok(Err(format!(
                "has sha256 {hash}, the official file has {}",
                entry.sha256
            )));
        }
        // Link or copy to a temporary name in the destination folder, then rename: atomic.
        let tmp = with_suffix(&dest, ".import");
        let _ = fs::remove_file(&tmp);
        let how = if fs::hard_link(source, &tmp).is_ok() {
            "installed (hard link)"
        } else {
            fs::copy(source, &tmp).map_err(io_err(format!("copying {} to {}", source.display(), tmp.display())))?;
            // The copy is what ends up in the store: check it, not just the source.
            let copied = sha256_file(&tmp, |_| {}).map_err(io_err(format!("reading {}", tmp.display())))?;
            if copied != entry.sha256 {
                let _ = fs::remove_file(&tmp);
                return Ok(Err(format!(
                    "the copy at {} does not match (disk error?)",
                    tmp.display()
                )));
            }
            fs::File::open(&tmp)
                .and_then(|f| f.sync_all())
                .map_err(io_err(format!("syncing {}", tmp.display())))?;
            "installed (copied)"
        };
        if dest.exists() {
            self.move_aside(&dest)?;
        }
        fs::rename(&tmp, &dest).map_err(io_err(format!("renaming {} to {}", tmp.display(), dest.display())))?;
        sync_dir(&dir).map_err(io_err(format!("syncing folder {}", dir.display())))?;
        self.records.remember(&dest, &entry.sha256);
        Ok(Ok(how.into()))
    }
}

fn failed_file(entry: &ModelFile, attempts: Vec<crate::error::Attempt>, kept_partial: u64) -> FailedFile {
    FailedFile {
        name: entry.name.clone(),
        path: entry.path.clone(),
        size: entry.size,
        sha256: entry.sha256.clone(),
        urls: entry.urls.clone(),
        attempts,
        kept_partial,
    }
}

/// Age after which an orphaned temporary file in the store is removed (see [`ModelStore::clean_stale_parts`]).
const STALE_PART_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// [`walk`] over the store, without its `.state` bookkeeping folder.
fn walk_skipping_state(root: &Path, visit: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    for item in fs::read_dir(root)? {
        let path = item?.path();
        if path.file_name().is_some_and(|n| n == ".state") {
            continue;
        }
        if path.is_dir() {
            walk(&path, visit)?;
        } else if path.is_file() {
            visit(&path);
        }
    }
    Ok(())
}

/// Calls `visit` for every regular file under `dir` (symlinks to files included, symlinked folders not
/// followed, so a link loop cannot trap the walk).
fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) -> std::io::Result<()> {
    for item in fs::read_dir(dir)? {
        let item = item?;
        let path = item.path();
        let kind = item.file_type()?;
        if kind.is_dir() {
            walk(&path, visit)?;
        } else if path.is_file() {
            visit(&path);
        }
    }
    Ok(())
}
