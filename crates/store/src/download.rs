//! One file's download: mirrors in order, retries with backoff, resume with `Range`, SHA-256 and size
//! checked while streaming, atomic rename into place.
//!
//! Bytes go to `<dest>.part`; `<dest>.part.json` says which file (SHA-256, size) and which URL/ETag the
//! part came from, so that a later run resumes it only when it is a prefix of the same file. Nothing is
//! ever written at `<dest>` except by renaming a part whose size and hash both match.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Attempt, StoreError};
use crate::fsutil::{hex, io_err, sync_dir, write_atomic};
use crate::manifest::ModelFile;
use crate::progress::Reporter;

/// Network settings of downloads.
#[derive(Clone, Debug)]
pub struct NetworkOptions {
    /// Limit for establishing a connection (DNS excluded).
    pub connect_timeout: Duration,
    /// A transfer that receives no byte for this long is abandoned and resumed (separate from
    /// `connect_timeout`: a slow link is fine, a dead one is not).
    pub stall_timeout: Duration,
    /// Tries per mirror without progress before moving to the next mirror (transient errors only).
    pub attempts_per_mirror: u32,
    /// First retry delay; doubled for each further retry.
    pub backoff: Duration,
}

impl Default for NetworkOptions {
    fn default() -> Self {
        NetworkOptions {
            connect_timeout: Duration::from_secs(20),
            stall_timeout: Duration::from_secs(30),
            attempts_per_mirror: 4,
            backoff: Duration::from_secs(1),
        }
    }
}

/// What `<dest>.part.json` records about a partial download.
#[derive(Serialize, Deserialize, Default, Clone)]
struct PartMeta {
    sha256: String,
    size: u64,
    url: Option<String>,
    etag: Option<String>,
}

/// The partial file being written, with the hash of what it holds so far.
struct Part {
    path: PathBuf,
    meta_path: PathBuf,
    file: File,
    hasher: Sha256,
    len: u64,
    meta: PartMeta,
    /// The bytes did not all come from one response of the current URL (resumed from another run or
    /// another mirror): a hash mismatch may then be the old prefix's fault, not this mirror's.
    mixed: bool,
}

impl Part {
    /// Opens `<dest>.part`, keeping its content only when its record says it is a prefix of this file.
    fn open(dest: &Path, entry: &ModelFile, reporter: &dyn Reporter) -> Result<Part, StoreError> {
        let path = with_suffix(dest, ".part");
        let meta_path = with_suffix(dest, ".part.json");
        let meta: Option<PartMeta> = fs::read_to_string(&meta_path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let existing = fs::metadata(&path).map(|m| m.len()).ok();
        let reusable = match (&meta, existing) {
            (Some(m), Some(len)) => m.sha256 == entry.sha256 && m.size == entry.size && len <= entry.size,
            _ => false,
        };
        if existing.is_some() && !reusable {
            reporter.note(
                &entry.name,
                "discarding a stale partial download of another file version",
            );
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(!reusable)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        let mut part = Part {
            path,
            meta_path,
            file,
            hasher: Sha256::new(),
            len: 0,
            meta: if reusable {
                meta.unwrap_or_default()
            } else {
                PartMeta {
                    sha256: entry.sha256.clone(),
                    size: entry.size,
                    ..PartMeta::default()
                }
            },
            mixed: false,
        };
        if reusable {
            // The hash state is not saved across runs: re-read the prefix (fast next to a download).
            let mut buf = vec![0u8; 1 << 20];
            part.file.seek(SeekFrom::Start(0)).map_err(part.err("reading"))?;
            loop {
                let n = part.file.read(&mut buf).map_err(part.err("reading"))?;
                if n == 0 {
                    break;
                }
                part.hasher.update(&buf[..n]);
                part.len += n as u64;
            }
            part.mixed = part.len > 0;
        }
        part.save_meta()?;
        Ok(part)
    }

    fn err(&self, what: &str) -> impl FnOnce(io::Error) -> StoreError {
        io_err(format!("{what} {}", self.path.display()))
    }

    fn save_meta(&self) -> Result<(), StoreError> {
        let json = serde_json::to_vec(&self.meta).map_err(|e| io_err("encoding part record")(io::Error::other(e)))?;
        write_atomic(&self.meta_path, &json).map_err(io_err(format!("writing {}", self.meta_path.display())))
    }

    /// Empties the part (the server restarted from byte 0, or the content was bad).
    fn reset(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0).map_err(self.err("truncating"))?;
        self.file.seek(SeekFrom::Start(0)).map_err(self.err("rewinding"))?;
        self.hasher = Sha256::new();
        self.len = 0;
        self.mixed = false;
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file.seek(SeekFrom::End(0)).map_err(self.err("seeking"))?;
        self.file.write_all(bytes).map_err(self.err("writing"))?;
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Removes the part and its record.
    fn discard(self) {
        drop(self.file);
        let _ = fs::remove_file(&self.path);
        let _ = fs::remove_file(&self.meta_path);
    }
}

/// `<path><suffix>` (e.g. `x.pth` → `x.pth.part`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The result of one HTTP exchange.
enum Step {
    /// All `size` bytes are in the part.
    Complete,
    /// The part was emptied; ask again (server ignored the range, or the file changed).
    Restart(String),
    /// Worth retrying on the same mirror (5xx, reset, timeout, truncated body).
    Transient(String),
    /// This mirror cannot deliver the file (404/403, wrong size, TLS, too many redirects).
    Permanent(String),
}

/// Downloads files with one HTTP agent.
pub(crate) struct Downloader {
    agent: ureq::Agent,
    net: NetworkOptions,
}

/// A successful download: the URL that completed it and what went wrong before.
pub(crate) struct Downloaded {
    pub url: String,
    pub attempts: Vec<Attempt>,
}

/// A failed download: every attempt, and the bytes kept for a resume.
pub(crate) struct NotDownloaded {
    pub attempts: Vec<Attempt>,
    pub kept_partial: u64,
}

impl Downloader {
    pub(crate) fn new(net: NetworkOptions) -> Downloader {
        // The default config reads proxies from ALL_PROXY / HTTPS_PROXY / HTTP_PROXY (and NO_PROXY),
        // as curl does. Statuses are handled here (404 → next mirror, 5xx → retry), not as errors.
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(net.connect_timeout))
            .timeout_per_read(Some(net.stall_timeout))
            .max_redirects(10)
            .user_agent(format!("sadtalker/{}", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Downloader { agent, net }
    }

    /// Fetches `entry` to `dest` from the first mirror of `urls` that delivers the right bytes.
    /// The caller holds the file's lock. On failure nothing is at `dest`; a part whose bytes may be
    /// resumed is kept, any other is removed.
    pub(crate) fn fetch(
        &self,
        entry: &ModelFile,
        dest: &Path,
        urls: &[String],
        reporter: &dyn Reporter,
    ) -> Result<Result<Downloaded, NotDownloaded>, StoreError> {
        let mut part = Part::open(dest, entry, reporter)?;
        let mut attempts = Vec::new();
        for url in urls {
            let mut tries_without_progress = 0u32;
            let mut total_tries = 0u32;
            let mut restarts = 0u32;
            let mut scratch_retry = true;
            loop {
                let before = part.len;
                total_tries += 1;
                let step = self.transfer(url, &mut part, entry, reporter)?;
                let failure = match step {
                    Step::Complete => {
                        let digest = hex(&part.hasher.clone().finalize());
                        if digest == entry.sha256 {
                            finalize(part, dest)?;
                            return Ok(Ok(Downloaded {
                                url: url.clone(),
                                attempts,
                            }));
                        }
                        let outcome = format!("hash mismatch (got sha256 {digest})");
                        let mixed = part.mixed;
                        part.reset()?;
                        if mixed && scratch_retry {
                            // The bad bytes may be an old prefix from elsewhere: give this mirror a clean try.
                            scratch_retry = false;
                            reporter.note(&entry.name, &format!("{outcome}; downloading again from the start"));
                            attempts.push(Attempt {
                                url: url.clone(),
                                outcome: format!("{outcome} on a resumed download; retried from the start"),
                            });
                            continue;
                        }
                        attempts.push(Attempt {
                            url: url.clone(),
                            outcome,
                        });
                        break;
                    }
                    Step::Restart(why) => {
                        restarts += 1;
                        if restarts <= 3 {
                            reporter.note(&entry.name, &format!("{why}; restarting from byte 0"));
                            continue;
                        }
                        Attempt {
                            url: url.clone(),
                            outcome: format!("{why} (gave up after {restarts} restarts)"),
                        }
                    }
                    Step::Transient(why) => {
                        if part.len > before {
                            tries_without_progress = 0;
                        }
                        tries_without_progress += 1;
                        attempts.push(Attempt {
                            url: url.clone(),
                            outcome: why.clone(),
                        });
                        // Progress resets the count, but a bound on all tries keeps a server that sends one
                        // byte per connection from holding us forever.
                        if tries_without_progress < self.net.attempts_per_mirror
                            && total_tries < self.net.attempts_per_mirror * 8
                        {
                            let delay = self.net.backoff * 2u32.saturating_pow(tries_without_progress - 1);
                            reporter.note(&entry.name, &format!("{why}; retrying in {delay:.1?}"));
                            std::thread::sleep(delay);
                            continue;
                        }
                        break;
                    }
                    Step::Permanent(why) => Attempt {
                        url: url.clone(),
                        outcome: why,
                    },
                };
                reporter.note(&entry.name, &failure.to_string());
                attempts.push(failure);
                break;
            }
        }
        let kept_partial = part.len;
        if kept_partial == 0 {
            part.discard();
        } else {
            part.file.sync_all().map_err(part.err("syncing"))?;
        }
        Ok(Err(NotDownloaded { attempts, kept_partial }))
    }

    /// One request: from `part.len` to the end of the file.
    fn transfer(
        &self,
        url: &str,
        part: &mut Part,
        entry: &ModelFile,
        reporter: &dyn Reporter,
    ) -> Result<Step, StoreError> {
        let size = entry.size;
        if part.len == size {
            // A previous run got every byte but did not finish (killed while renaming): just verify.
            return Ok(Step::Complete);
        }
        let offset = part.len;
        let same_source = part.meta.url.as_deref() == Some(url);
        let mut request = self.agent.get(url);
        if offset > 0 {
            request = request.header("Range", format!("bytes={offset}-"));
            // If-Range: a server whose file changed since the part was written answers 200 with the whole
            // new file instead of 206 with a tail that would not fit the prefix.
            if let (true, Some(etag)) = (same_source, part.meta.etag.as_deref()) {
                request = request.header("If-Range", etag);
            }
        }
        let response = match request.call() {
            Ok(r) => r,
            Err(e) => return Ok(classify_call_error(e, &self.net)),
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let etag = header("etag");
        let content_length: Option<u64> = header("content-length").and_then(|v| v.trim().parse().ok());
        match status {
            200 => {
                if offset > 0 {
                    reporter.note(
                        &entry.name,
                        "the server does not resume (sent the whole file); starting over",
                    );
                    part.reset()?;
                }
                if let Some(len) = content_length
                    && len != size
                {
                    return Ok(Step::Permanent(format!(
                        "wrong size: the server has {len} bytes, expected {size}"
                    )));
                }
            }
            206 => {
                let range = header("content-range").and_then(|v| parse_content_range(&v));
                match range {
                    Some((_, Some(total))) if total != size => {
                        return Ok(Step::Permanent(format!(
                            "wrong size: the server has {total} bytes, expected {size}"
                        )));
                    }
                    Some((start, _)) if start == offset => {}
                    _ => {
                        part.reset()?;
                        return Ok(Step::Restart(format!("unexpected Content-Range from {url}")));
                    }
                }
                if same_source && part.meta.etag.is_some() && etag.is_some() && etag != part.meta.etag {
                    part.reset()?;
                    return Ok(Step::Restart("the file on the server changed (new ETag)".into()));
                }
            }
            416 => {
                part.reset()?;
                return Ok(Step::Restart("the server refused the byte range".into()));
            }
            404 | 410 => return Ok(Step::Permanent(format!("HTTP {status}: not on this mirror"))),
            401 | 403 => return Ok(Step::Permanent(format!("HTTP {status}: access denied"))),
            408 | 429 | 500..=599 => return Ok(Step::Transient(format!("HTTP {status}"))),
            _ => return Ok(Step::Permanent(format!("HTTP {status}"))),
        }
        if part.meta.url.as_deref() != Some(url) || part.meta.etag != etag {
            if part.len > 0 && !same_source {
                part.mixed = true;
            }
            part.meta.url = Some(url.to_string());
            part.meta.etag = etag;
            part.save_meta()?;
        }
        reporter.begin(&entry.name, size, part.len);
        let mut body = response.into_body().into_reader();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    return Ok(match ureq::Error::from(e) {
                        ureq::Error::Timeout(_) => Step::Transient(format!(
                            "stalled: no data for {:?} at byte {} of {size}",
                            self.net.stall_timeout, part.len
                        )),
                        other => Step::Transient(format!("connection lost at byte {} of {size}: {other}", part.len)),
                    });
                }
            };
            if part.len + n as u64 > size {
                part.reset()?;
                return Ok(Step::Permanent(format!(
                    "wrong size: the server sent more than {size} bytes"
                )));
            }
            part.append(&buf[..n])?;
            reporter.advance(&entry.name, part.len);
        }
        if part.len < size {
            return Ok(Step::Transient(format!(
                "body truncated at byte {} of {size}",
                part.len
            )));
        }
        Ok(Step::Complete)
    }
}

/// Sorts a request error into retry-here or try-the-next-mirror.
fn classify_call_error(e: ureq::Error, net: &NetworkOptions) -> Step {
    match e {
        ureq::Error::Timeout(t) => Step::Transient(format!(
            "timed out ({t}; limits: connect {:?}, no data {:?})",
            net.connect_timeout, net.stall_timeout
        )),
        ureq::Error::Io(io) => Step::Transient(format!("connection error: {io}")),
        ureq::Error::ConnectionFailed => Step::Transient("connection failed".into()),
        ureq::Error::HostNotFound => Step::Permanent("host not found (no network, or DNS blocked?)".into()),
        other => Step::Permanent(other.to_string()),
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL) (TOTAL is `None` for `*`).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

/// Makes the verified part durable and renames it into place.
fn finalize(part: Part, dest: &Path) -> Result<(), StoreError> {
    part.file.sync_all().map_err(part.err("syncing"))?;
    let Part {
        path, meta_path, file, ..
    } = part;
    drop(file);
    fs::rename(&path, dest).map_err(io_err(format!("renaming {} to {}", path.display(), dest.display())))?;
    let _ = fs::remove_file(&meta_path);
    if let Some(dir) = dest.parent() {
        sync_dir(dir).map_err(io_err(format!("syncing folder {}", dir.display())))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(parse_content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(parse_content_range("items 5-9/10"), None);
        assert_eq!(parse_content_range("bytes x-9/10"), None);
    }
}
