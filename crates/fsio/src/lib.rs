//! Atomic file output, one implementation for every crate that writes a result: the bytes go to a
//! temporary file in the target's folder (same file system, so the final rename is atomic), are
//! fsynced, and the file is renamed into place; the folder is fsynced so the rename survives a crash.
//! Until [`AtomicFile::commit`], the target is untouched, and a dropped (failed, interrupted) write
//! removes its temporary file.
//!
//! Files are created with mode `0o666` less the process umask, as `File::create` and any Unix tool do
//! (`tempfile` alone would make them `0o600`).
//!
//! Every temporary file and every name [`Reservation`] is also listed in a process-wide registry while it
//! lives, so that a process that must exit at once (a second Ctrl-C during a stage that cannot stop
//! early) can remove them with [`remove_live_files`] before it exits: destructors do not run on
//! `std::process::exit`.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

mod live;
mod reserve;

pub use live::{live_files, remove_live_files};
pub use reserve::{Reservation, reserve_unique};

/// A file being written to a temporary name beside its target.
#[derive(Debug)]
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    target: PathBuf,
    // Declared after `temp`: fields drop in order, so the file is gone before it leaves the registry.
    entry: live::Entry,
}

/// The folder a target is written in (`.` for a bare file name).
pub fn parent_dir(target: &Path) -> &Path {
    target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

impl AtomicFile {
    /// Starts writing `target`: creates `.<name>.<random>.partial` in its folder.
    pub fn create(target: &Path) -> io::Result<Self> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".partial");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // Passed to open(2), so the kernel applies the umask.
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let temp = builder.tempfile_in(parent_dir(target))?;
        let entry = live::Entry::temp(temp.path());
        Ok(Self {
            temp,
            target: target.to_owned(),
            entry,
        })
    }

    /// The temporary file, to write to.
    pub fn file(&self) -> &File {
        self.temp.as_file()
    }

    /// The temporary file, mutably.
    pub fn file_mut(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// The temporary file's path (it exists until commit or drop).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes, fsyncs and renames the file into place (replacing a file already there), then fsyncs
    /// the folder.
    pub fn commit(self) -> io::Result<()> {
        let Self {
            mut temp,
            target,
            entry,
        } = self;
        temp.as_file_mut().flush()?;
        temp.as_file().sync_all()?;
        // On failure `persist` hands the file back and it is removed when dropped here.
        temp.persist(&target).map_err(|e| e.error)?;
        drop(entry);
        sync_dir(parent_dir(&target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.as_file_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.as_file_mut().flush()
    }
}

/// Writes `bytes` to `target` atomically (see the crate docs).
pub fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(target)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Makes a rename or a new file in `dir` durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        // Windows cannot open a folder as a file; NTFS journals the rename itself.
        let _ = dir;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .expect("readable")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".partial"))
            .collect()
    }

    #[test]
    fn commit_replaces_the_target_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("out.bin");
        std::fs::write(&target, b"old").expect("write");
        write_atomic(&target, b"new").expect("atomic write");
        assert_eq!(std::fs::read(&target).expect("read"), b"new");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_dropped_write_leaves_the_target_and_no_temporary() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("out.bin");
        std::fs::write(&target, b"old").expect("write");
        {
            let mut f = AtomicFile::create(&target).expect("create");
            f.write_all(b"half").expect("write");
            assert!(f.temp_path().exists());
        }
        assert_eq!(std::fs::read(&target).expect("read"), b"old");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn temporaries_are_registered_while_they_live() {
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("reg.bin");
        let f = AtomicFile::create(&target).expect("create");
        let temp = f.temp_path().to_owned();
        assert!(live_files().contains(&temp));
        f.commit().expect("commit");
        assert!(!live_files().contains(&temp));
        let f = AtomicFile::create(&target).expect("create");
        let temp = f.temp_path().to_owned();
        drop(f);
        assert!(!live_files().contains(&temp));
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn remove_live_files_removes_temporaries_and_untouched_reservations() {
        let dir = tempfile::tempdir().expect("temp dir");
        let f = AtomicFile::create(&dir.path().join("a.bin")).expect("create");
        let temp = f.temp_path().to_owned();
        let r = reserve_unique(dir.path(), "name", "mp4").expect("reserve");
        let reserved = r.path().to_owned();
        // The process is about to exit: no destructor will run.
        std::mem::forget(f);
        std::mem::forget(r);
        // Only this test's files: other tests of this process have theirs in the registry too.
        live::remove_where(|p| p.starts_with(dir.path()));
        assert!(!temp.exists() && !reserved.exists());
    }

    #[cfg(unix)]
    #[test]
    fn files_get_the_umask_mode_not_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let target = dir.path().join("out.bin");
        write_atomic(&target, b"x").expect("atomic write");
        let mode = std::fs::metadata(&target).expect("meta").permissions().mode() & 0o777;
        // Whatever the umask, group/other read is what it leaves of 0o666; a umask of 0o077 would give
        // 0o600 too, so compare with a file made the ordinary way.
        let plain = dir.path().join("plain.bin");
        std::fs::write(&plain, b"x").expect("write");
        let want = std::fs::metadata(&plain).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, want, "mode {mode:o}, File::create gives {want:o}");
    }
}
