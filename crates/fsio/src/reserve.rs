//! Unique output names claimed atomically: two processes choosing a name at the same moment get two
//! names, because the name is taken by creating the file (`O_CREAT | O_EXCL`), not by testing whether
//! it exists.

use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use crate::live::{Entry, Identity};

/// A name taken in a folder: an empty file, until the result is renamed over it
/// ([`AtomicFile::commit`](crate::AtomicFile::commit) to [`Reservation::path`]).
///
/// Dropped while the name still holds the empty placeholder (the job failed or was stopped), the
/// placeholder is removed; once a result has replaced it, dropping leaves the result alone. The test is
/// by file identity (device and inode), not by name or size.
#[derive(Debug)]
pub struct Reservation {
    path: PathBuf,
    id: Option<Identity>,
    _entry: Option<Entry>,
}

impl Reservation {
    /// The reserved path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the path still holds the placeholder (no result has replaced it).
    pub fn is_placeholder(&self) -> bool {
        self.id.is_some() && Identity::of(&self.path) == self.id
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.is_placeholder() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Reserves `dir/<stem>.<ext>`, or `dir/<stem>_2.<ext>`, `_3`, … when taken, by creating it
/// exclusively; the first free name wins. Fails on any error other than the name being taken.
pub fn reserve_unique(dir: &Path, stem: &str, ext: &str) -> io::Result<Reservation> {
    for n in 1u32.. {
        let name = if n == 1 {
            format!("{stem}.{ext}")
        } else {
            format!("{stem}_{n}.{ext}")
        };
        let path = dir.join(name);
        let mut open = OpenOptions::new();
        open.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // The result renamed over it gets its own mode; the placeholder needs none beyond the umask's.
            open.mode(0o666);
        }
        match open.open(&path) {
            Ok(file) => {
                drop(file);
                let id = Identity::of(&path);
                let entry = id.map(|id| Entry::reserved(&path, id));
                return Ok(Reservation {
                    path,
                    id,
                    _entry: entry,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "no free name for {stem}.{ext} in {}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::write_atomic;

    #[test]
    fn names_are_unique_and_placeholders_removed_unless_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let a = reserve_unique(dir.path(), "t", "mp4").expect("reserve");
        let b = reserve_unique(dir.path(), "t", "mp4").expect("reserve");
        let c = reserve_unique(dir.path(), "t", "mp4").expect("reserve");
        assert_eq!(a.path(), dir.path().join("t.mp4"));
        assert_eq!(b.path(), dir.path().join("t_2.mp4"));
        assert_eq!(c.path(), dir.path().join("t_3.mp4"));
        // `a` gets its result, `b` fails, `c` is still held.
        write_atomic(a.path(), b"video").expect("write");
        assert!(!a.is_placeholder());
        let (pa, pb) = (a.path().to_owned(), b.path().to_owned());
        drop(a);
        drop(b);
        assert_eq!(std::fs::read(&pa).expect("result kept"), b"video");
        assert!(!pb.exists(), "a failed job's placeholder is removed");
        // A freed name is taken again by the next job.
        let d = reserve_unique(dir.path(), "t", "mp4").expect("reserve");
        assert_eq!(d.path(), pb);
        drop(c);
    }

    #[test]
    fn concurrent_reservations_never_share_a_name() {
        let dir = tempfile::tempdir().expect("temp dir");
        let held: Vec<Reservation> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| s.spawn(|| reserve_unique(dir.path(), "same", "mp4").expect("reserve")))
                .collect();
            handles.into_iter().map(|h| h.join().expect("thread")).collect()
        });
        let mut names: Vec<&Path> = held.iter().map(Reservation::path).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 8);
    }

    #[test]
    fn other_errors_are_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let e = reserve_unique(&dir.path().join("missing"), "t", "mp4").expect_err("no folder");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
