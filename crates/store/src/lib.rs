//! The SadTalker model store: which model files exist, where they are, and how they get there.
//!
//! - **Manifest.** Every file has an exact size and SHA-256; the official list is compiled in
//!   (`manifest.json`, generated from the reference's list by `tools/reference/models_manifest.py`), and
//!   another can be loaded ([`Manifest::load`], `--manifest FILE`) for self-hosted or fine-tuned models.
//! - **Lookup** ([`ModelStore::locate`], [`ModelStore::require`]): with a reference-layout
//!   `--checkpoint-dir DIR`, a file is looked for in `DIR`, then (facexlib/GFPGAN files) in
//!   `DIR/../gfpgan/weights`, then in the store. The store is `$SADTALKER_HOME`, else
//!   `<cache dir>/sadtalker` (`$XDG_CACHE_HOME` or `~/.cache` on Linux), and keeps each file at its
//!   reference-layout path (`checkpoints/…`, `gfpgan/weights/…`), so `<store>/checkpoints` is itself a
//!   valid reference checkpoint folder.
//! - **Download** ([`ModelStore::fetch`]): a user mirror first (`<mirror>/<file name>`), then each manifest
//!   URL (`HF_ENDPOINT` rewrites Hugging Face URLs); transient errors (5xx, reset, timeout, truncated body,
//!   stall) are retried with backoff and resumed with `Range`, a 404/403/wrong size/wrong hash moves to the
//!   next mirror. Bytes go to `<file>.part` and are hashed while streaming; the part is renamed into place
//!   (after fsync) only when size and SHA-256 match. Free space (+10 %) is checked first; a per-file lock
//!   keeps two processes from writing the same file.
//! - **Verify, import** ([`ModelStore::verify`], [`ModelStore::import`]): re-hash (a bad store file is moved
//!   aside, never deleted); install files found by name under any folder, verified, by hard link or copy.
//!
//! # Manifest format (JSON)
//!
//! ```json
//! {
//!   "version": 1,
//!   "files": [
//!     {
//!       "name": "SadTalker_V0.0.2_256.safetensors",
//!       "path": "checkpoints/SadTalker_V0.0.2_256.safetensors",
//!       "size": 725066984,
//!       "sha256": "c211f5d6de003516bf1bbda9f47049a4c9c99133b1ab565c6961e5af16477bff",
//!       "urls": ["https://example.org/SadTalker_V0.0.2_256.safetensors"],
//!       "features": ["256"]
//!     }
//!   ]
//! }
//! ```
//!
//! `name` (a plain file name, unique), `path` (relative, no `..`, ending with `name`), `size` (bytes) and
//! `sha256` (64 hex digits) are required; `urls` (tried in order) and `features` default to empty;
//! `version` defaults to 1. Features of the built-in manifest: `256` and `512` (generator, mapping nets,
//! face detector + landmarks), `face` (detector + landmarks), `enhancer` (GFPGAN, face parser, detector),
//! `restoreformer`, `realesrgan` (the background enhancer), `legacy` (the pre-v0.0.2-rc checkpoints); a
//! custom manifest may name others.
//!
//! # State on disk
//!
//! `<store>/<path>` (installed, verified files), `<store>/<path>.part` and `.part.json` (a download in
//! progress or kept for resume), `<store>/<path>.bad-<time>` (a file that failed verification, moved
//! aside), `<store>/.state/locks/` (lock files, empty, kept), `<store>/.state/hashes/` (past hashes, keyed
//! by path, valid while size and modification time are unchanged).

mod download;
mod error;
mod fsutil;
mod manifest;
mod progress;
mod store;

pub use download::NetworkOptions;
pub use error::{Attempt, FailedFile, StoreError};
pub use fsutil::{SpaceProbe, disk_space_probe, structural_check};
pub use manifest::{Feature, Manifest, ModelFile};
pub use progress::{ConsoleMode, ConsoleReporter, Reporter, Silent};
pub use store::{
    Fetched, FileState, FileStatus, Imported, Located, ModelStore, Origin, StoreOptions, Verified, WarnSink,
    default_root,
};
