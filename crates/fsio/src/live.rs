//! The process-wide registry of live temporary files and name reservations (see the crate docs).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// What a registered path is, which decides how it is cleaned up.
#[derive(Clone, Debug)]
enum Kind {
    /// A temporary file: always removed.
    Temp,
    /// A reserved name: removed only while it is still the reservation (a finished file renamed over
    /// it is the result, and stays).
    Reserved(Identity),
}

/// A file's identity (device and inode on Unix; the length elsewhere, where a reservation is empty).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    dev: u64,
    ino: u64,
}

impl Identity {
    /// The identity of the file at `path` (not following a final link), if it exists.
    pub(crate) fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::symlink_metadata(path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(Self {
                dev: meta.dev(),
                ino: meta.ino(),
            })
        }
        #[cfg(not(unix))]
        {
            // No inode numbers: an empty regular file is taken to be the reservation.
            (meta.is_file() && meta.len() == 0).then_some(Self { dev: 0, ino: 0 })
        }
    }
}

/// Entries by a unique id (two entries may name one path for a moment: a reservation and the file
/// renamed over it are told apart by identity, not by name).
static LIVE: Mutex<Vec<(u64, PathBuf, Kind)>> = Mutex::new(Vec::new());
static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn live() -> MutexGuard<'static, Vec<(u64, PathBuf, Kind)>> {
    // A panic while holding the lock leaves a consistent list: every operation is one push or retain.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A registration, removed from the registry when dropped.
#[derive(Debug)]
pub(crate) struct Entry(u64);

impl Entry {
    fn add(path: &Path, kind: Kind) -> Self {
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        live().push((id, absolute(path), kind));
        Entry(id)
    }

    /// Registers a temporary file.
    pub(crate) fn temp(path: &Path) -> Self {
        Self::add(path, Kind::Temp)
    }

    /// Registers a reserved name whose file has identity `id`.
    pub(crate) fn reserved(path: &Path, id: Identity) -> Self {
        Self::add(path, Kind::Reserved(id))
    }
}

impl Drop for Entry {
    fn drop(&mut self) {
        live().retain(|(id, _, _)| *id != self.0);
    }
}

/// Registered paths are made absolute, so that a later change of the working folder cannot make the
/// cleanup miss (or hit) the wrong file.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The temporary files and reserved names that exist now (for tests and diagnostics).
pub fn live_files() -> Vec<PathBuf> {
    live().iter().map(|(_, p, _)| p.clone()).collect()
}

/// Removes every live temporary file and every reservation not yet replaced by its result, and empties
/// the registry. For a process about to exit without unwinding (a second interrupt): the guards'
/// destructors will not run. Errors are ignored: the process is exiting and a file already gone is fine.
pub fn remove_live_files() {
    remove_where(|_| true);
}

/// [`remove_live_files`] for the entries whose path passes `select`.
pub(crate) fn remove_where(select: impl Fn(&Path) -> bool) {
    let mut list = live();
    list.retain(|(_, path, kind)| {
        if !select(path) {
            return true;
        }
        let remove = match kind {
            Kind::Temp => true,
            Kind::Reserved(id) => Identity::of(path) == Some(*id),
        };
        if remove {
            let _ = std::fs::remove_file(path);
        }
        false
    });
}
