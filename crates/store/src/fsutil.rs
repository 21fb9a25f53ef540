//! File-system helpers: hashing, locks, durable renames, free space, verification records and
//! the structural check of model files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::StoreError;

/// Reports the free bytes of the file system holding a folder. Injectable so tests can simulate a full disk.
pub type SpaceProbe = Arc<dyn Fn(&Path) -> io::Result<u64> + Send + Sync>;

/// The real probe: free space (for unprivileged users) of the nearest existing ancestor of `dir`.
pub fn disk_space_probe() -> SpaceProbe {
    Arc::new(|dir: &Path| fs4::available_space(nearest_existing(dir)))
}

/// `dir` or its nearest ancestor that exists (the store folder may not have been created yet).
pub(crate) fn nearest_existing(dir: &Path) -> &Path {
    let mut p = dir;
    while !p.exists() {
        match p.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => p = parent,
            _ => return Path::new("."),
        }
    }
    p
}

/// Lowercase hex of bytes.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a whole file (streamed; model files are hundreds of MB), with a progress callback.
pub(crate) fn sha256_file(path: &Path, mut progress: impl FnMut(u64)) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress(done);
    }
    Ok(hex(&hasher.finalize()))
}

/// Wraps an I/O error with the operation and file it concerns.
pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StoreError {
    let what = what.into();
    move |source| StoreError::Io { what, source }
}

/// Creates a folder and its parents.
pub(crate) fn create_dir(dir: &Path) -> Result<(), StoreError> {
    fs::create_dir_all(dir).map_err(io_err(format!("creating folder {}", dir.display())))
}

pub(crate) use sadtalker_fsio::{sync_dir, write_atomic};

/// An exclusive advisory lock on a lock file, released on drop (also when the process dies).
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Takes the lock; when another process holds it, calls `on_wait` once and blocks until it is free.
    pub(crate) fn acquire(path: &Path, on_wait: impl FnOnce()) -> Result<FileLock, StoreError> {
        if let Some(dir) = path.parent() {
            create_dir(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .map_err(io_err(format!("opening lock file {}", path.display())))?;
        // Called through the trait path: std's `File::lock` (Rust 1.89) is newer than the workspace MSRV.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                on_wait();
                fs4::FileExt::lock(&file).map_err(io_err(format!("locking {}", path.display())))?;
            }
            Err(fs4::TryLockError::Error(e)) => return Err(io_err(format!("locking {}", path.display()))(e)),
        }
        Ok(FileLock { _file: file })
    }

    /// Takes the lock if it is free; `None` when another process holds it.
    pub(crate) fn try_acquire(path: &Path) -> Option<FileLock> {
        fs::create_dir_all(path.parent()?).ok()?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(path)
            .ok()?;
        fs4::FileExt::try_lock(&file).ok()?;
        Some(FileLock { _file: file })
    }
}

/// What a past hash of a file found, valid while the file's size and modification time are unchanged.
#[derive(Serialize, Deserialize)]
struct VerifiedRecord {
    path: PathBuf,
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

/// Records of past hashes, so that a 700 MB checkpoint is hashed once, not on every run.
pub(crate) struct HashRecords {
    dir: PathBuf,
}

fn stat(path: &Path) -> io::Result<(u64, u128)> {
    let meta = fs::metadata(path)?;
    let mtime = meta
        .modified()?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok((meta.len(), mtime))
}

impl HashRecords {
    pub(crate) fn new(dir: PathBuf) -> Self {
        HashRecords { dir }
    }

    fn record_path(&self, path: &Path) -> PathBuf {
        let canonical = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let key = hex(&Sha256::digest(canonical.to_string_lossy().as_bytes()));
        self.dir.join(format!("{}.json", &key[..32]))
    }

    /// The recorded SHA-256 of `path`, if it was hashed and has not changed since.
    pub(crate) fn lookup(&self, path: &Path) -> Option<String> {
        let (size, mtime_ns) = stat(path).ok()?;
        let text = fs::read_to_string(self.record_path(path)).ok()?;
        let rec: VerifiedRecord = serde_json::from_str(&text).ok()?;
        (rec.size == size && rec.mtime_ns == mtime_ns).then_some(rec.sha256)
    }

    /// Remembers the SHA-256 of `path`. Best effort: a read-only store only costs a re-hash later.
    pub(crate) fn remember(&self, path: &Path, sha256: &str) {
        let Ok((size, mtime_ns)) = stat(path) else { return };
        let rec = VerifiedRecord {
            path: fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf()),
            size,
            mtime_ns,
            sha256: sha256.to_string(),
        };
        if fs::create_dir_all(&self.dir).is_ok()
            && let Ok(json) = serde_json::to_vec(&rec)
        {
            let _ = write_atomic(&self.record_path(path), &json);
        }
    }

    /// Forgets `path` (after it was moved aside).
    pub(crate) fn forget(&self, path: &Path) {
        let _ = fs::remove_file(self.record_path(path));
    }
}

/// Checks that a file has the structure of a checkpoint (used for files whose hash is not an official
/// one, e.g. fine-tuned weights): a safetensors header that parses, a zip central directory
/// (`torch.save` since 1.6), a legacy pickle (`torch.save` before 1.6), or a tar archive.
/// Returns the format found, or why the file is not a checkpoint.
pub fn structural_check(path: &Path) -> Result<&'static str, String> {
    let mut file = File::open(path).map_err(|e| format!("cannot open: {e}"))?;
    let len = file.metadata().map_err(|e| format!("cannot stat: {e}"))?.len();
    let mut head = [0u8; 512];
    let n = read_up_to(&mut file, &mut head).map_err(|e| format!("cannot read: {e}"))?;
    let head = &head[..n];
    let is_safetensors_name = path.extension().is_some_and(|e| e == "safetensors");
    if is_safetensors_name || (n >= 9 && head[8] == b'{') {
        if n < 8 {
            return Err("too short for a safetensors file".into());
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&head[..8]);
        let header_len = u64::from_le_bytes(word);
        if header_len == 0 || header_len.saturating_add(8) > len || header_len > 100 << 20 {
            return Err(format!(
                "safetensors header length {header_len} does not fit a {len}-byte file"
            ));
        }
        let mut header = vec![0u8; header_len as usize];
        use std::io::{Seek, SeekFrom};
        file.seek(SeekFrom::Start(8)).map_err(|e| format!("cannot read: {e}"))?;
        file.read_exact(&mut header)
            .map_err(|e| format!("cannot read the safetensors header: {e}"))?;
        let parsed: Result<serde_json::Map<String, serde_json::Value>, _> = serde_json::from_slice(&header);
        return match parsed {
            Ok(_) => Ok("safetensors"),
            Err(e) => Err(format!("safetensors header is not valid JSON: {e}")),
        };
    }
    if head.starts_with(b"PK\x03\x04") {
        // The end-of-central-directory record sits in the last 22 bytes + up to 64 KiB of comment.
        use std::io::{Seek, SeekFrom};
        let tail_len = len.min(22 + 65_535);
        file.seek(SeekFrom::Start(len - tail_len))
            .map_err(|e| format!("cannot read: {e}"))?;
        let mut tail = vec![0u8; tail_len as usize];
        file.read_exact(&mut tail).map_err(|e| format!("cannot read: {e}"))?;
        return if tail.windows(4).any(|w| w == b"PK\x05\x06") {
            Ok("zip (torch.save)")
        } else {
            Err("zip file without a central directory (truncated download?)".into())
        };
    }
    if head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1]) {
        return Ok("pickle (legacy torch.save)");
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Ok("tar (legacy torch.save)");
    }
    Err("not a safetensors, zip, pickle or tar file".into())
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structural_check_tells_formats_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = dir.path().join("a.safetensors");
        let header = br#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0; 4]);
        fs::write(&st, &bytes).expect("write");
        assert_eq!(structural_check(&st), Ok("safetensors"));
        bytes.truncate(20);
        fs::write(&st, &bytes).expect("write");
        assert!(structural_check(&st).is_err());

        let zip = dir.path().join("b.pth");
        let mut z = b"PK\x03\x04rest-of-entry".to_vec();
        fs::write(&zip, &z).expect("write");
        assert!(
            structural_check(&zip)
                .expect_err("no central directory")
                .contains("central directory")
        );
        z.extend_from_slice(b"PK\x05\x06");
        z.extend_from_slice(&[0; 18]);
        fs::write(&zip, &z).expect("write");
        assert!(structural_check(&zip).is_ok());

        let junk = dir.path().join("c.pth");
        fs::write(&junk, b"<html>404</html>").expect("write");
        assert!(structural_check(&junk).is_err());
    }

    #[test]
    fn hash_records_follow_file_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let records = HashRecords::new(dir.path().join("records"));
        let f = dir.path().join("f.bin");
        fs::write(&f, b"abc").expect("write");
        assert_eq!(records.lookup(&f), None);
        let sum = sha256_file(&f, |_| {}).expect("hash");
        assert_eq!(sum, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        records.remember(&f, &sum);
        assert_eq!(records.lookup(&f).as_deref(), Some(sum.as_str()));
        fs::write(&f, b"abcd").expect("write");
        assert_eq!(records.lookup(&f), None);
    }
}
