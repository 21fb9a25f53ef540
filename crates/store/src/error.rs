//! Errors of the model store: each says what went wrong, with which file, and what to do.

use std::fmt;
use std::path::PathBuf;

use indicatif::HumanBytes;

/// A model-store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A manifest could not be read or is inconsistent.
    #[error("manifest {source_name} is invalid: {reason}")]
    BadManifest {
        /// The manifest's path (or "built-in manifest").
        source_name: String,
        /// What is wrong.
        reason: String,
    },

    /// A file-system operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The operation, naming the file.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },

    /// A name that the manifest does not list.
    #[error("no model file named `{name}` in the {manifest}; known files: {known}")]
    UnknownFile {
        /// The name asked for.
        name: String,
        /// The manifest's source.
        manifest: String,
        /// The names it does list.
        known: String,
    },

    /// A feature that no file of the manifest names.
    #[error("no model file of the {manifest} is needed by feature `{feature}`; features: {known}")]
    UnknownFeature {
        /// The feature asked for.
        feature: String,
        /// The manifest's source.
        manifest: String,
        /// The features it does name.
        known: String,
    },

    /// Model files needed for a feature are not installed.
    #[error("{}", missing_message(.feature.as_deref(), .files, .searched))]
    Missing {
        /// The feature that needs them, if the request was for a feature.
        feature: Option<String>,
        /// The missing files (name, size).
        files: Vec<(String, u64)>,
        /// Where they were looked for.
        searched: Vec<PathBuf>,
    },

    /// A model file is there but is not the file the manifest describes and cannot be used.
    #[error(
        "model file {path} is damaged: {reason}; run `sadtalker models verify` then `sadtalker models fetch {name}`"
    )]
    Damaged {
        /// The manifest name.
        name: String,
        /// Where it is.
        path: PathBuf,
        /// Size or hash mismatch, or failed structural check.
        reason: String,
    },

    /// Not enough free disk space for the downloads.
    #[error(
        "not enough free disk space in {}: the downloads need {} (with a 10 % margin) but only {} is free; \
         free some space, or set SADTALKER_HOME to a folder on a disk with more room",
        dir.display(), HumanBytes(*needed), HumanBytes(*available)
    )]
    InsufficientSpace {
        /// The store folder that would receive the files.
        dir: PathBuf,
        /// Bytes needed, margin included.
        needed: u64,
        /// Bytes free.
        available: u64,
    },

    /// One or more downloads failed on every mirror.
    #[error("{}", fetch_failed_message(.failed, .store_dir))]
    FetchFailed {
        /// Each file that could not be fetched, with every URL tried.
        failed: Vec<FailedFile>,
        /// The store folder.
        store_dir: PathBuf,
    },

    /// `--offline` was given and files are missing.
    #[error("{}", offline_message(.failed, .store_dir))]
    Offline {
        /// The files that would need a download (no URL is tried).
        failed: Vec<FailedFile>,
        /// The store folder.
        store_dir: PathBuf,
    },

    /// The HTTP client could not be set up.
    #[error("cannot set up the HTTP client: {0}")]
    Http(String),
}

/// A file whose download failed, with the attempts made.
#[derive(Clone, Debug)]
pub struct FailedFile {
    /// Manifest name.
    pub name: String,
    /// Relative reference-layout path.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 expected.
    pub sha256: String,
    /// The URLs of the manifest (to print in the offline remedy).
    pub urls: Vec<String>,
    /// Every attempt: URL and what happened.
    pub attempts: Vec<Attempt>,
    /// Bytes kept in the `.part` file for a later resume (0 when none).
    pub kept_partial: u64,
}

/// One try at one URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// The URL requested.
    pub url: String,
    /// What happened (e.g. `HTTP 404`, `hash mismatch`, `stalled: no data for 30 s`).
    pub outcome: String,
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.url, self.outcome)
    }
}

fn missing_message(feature: Option<&str>, files: &[(String, u64)], searched: &[PathBuf]) -> String {
    let mut s = match feature {
        Some(f) => format!("model files for `{f}` are missing:"),
        None => "model files are missing:".to_string(),
    };
    for (name, size) in files {
        s.push_str(&format!("\n  {name} ({})", HumanBytes(*size)));
    }
    let places: Vec<String> = searched.iter().map(|p| p.display().to_string()).collect();
    s.push_str(&format!("\nlooked in: {}", places.join(", ")));
    let fetch = match feature {
        Some(f) => format!("sadtalker models fetch --for {f}"),
        None => {
            let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
            format!("sadtalker models fetch {}", names.join(" "))
        }
    };
    s.push_str(&format!(
        "\nto install them run `{fetch}`; without internet, copy the files from another machine and run \
         `sadtalker models import DIR`, or pass the reference `checkpoints` folder with --checkpoint-dir"
    ));
    s
}

fn offline_remedy(failed: &[FailedFile], store_dir: &std::path::Path) -> String {
    let mut s = String::from(
        "\nto install offline: download these files on a machine with internet access (check the SHA-256),",
    );
    for f in failed {
        s.push_str(&format!("\n  {} ({} bytes, sha256 {})", f.name, f.size, f.sha256));
        for url in &f.urls {
            s.push_str(&format!("\n      {url}"));
        }
    }
    s.push_str(&format!(
        "\nput them in one folder (any layout), bring it here, and run `sadtalker models import FOLDER`; \
         the store is {} (files go to their reference-layout paths there, e.g. {})",
        store_dir.display(),
        failed.first().map(|f| f.path.as_str()).unwrap_or("checkpoints/NAME"),
    ));
    s
}

fn fetch_failed_message(failed: &[FailedFile], store_dir: &std::path::Path) -> String {
    let mut s = String::new();
    for (i, f) in failed.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str(&format!("could not download {}; tried:", f.name));
        if f.attempts.is_empty() {
            s.push_str(" no URL (the manifest lists none; give one with --mirror)");
        }
        // Retries of one URL that failed the same way are shown once, with a count.
        let mut i = 0;
        while i < f.attempts.len() {
            let same = f.attempts[i..].iter().take_while(|a| **a == f.attempts[i]).count();
            s.push_str(&format!("\n  {}", f.attempts[i]));
            if same > 1 {
                s.push_str(&format!(" ({same} tries)"));
            }
            i += same;
        }
        if f.kept_partial > 0 {
            s.push_str(&format!(
                "\n  {} already downloaded is kept; the next `sadtalker models fetch` resumes from there",
                HumanBytes(f.kept_partial)
            ));
        }
    }
    s.push_str(&offline_remedy(failed, store_dir));
    s
}

fn offline_message(failed: &[FailedFile], store_dir: &std::path::Path) -> String {
    let names: Vec<&str> = failed.iter().map(|f| f.name.as_str()).collect();
    format!("offline: not downloading {}", names.join(", ")) + &offline_remedy(failed, store_dir)
}
