//! Download fault injection against a loopback server: every test checks the final state (the verified
//! file in place, or nothing at the final path and a clear error) and that no temporary file is left.

mod support;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sadtalker_store::{
    FileState, Manifest, ModelFile, ModelStore, NetworkOptions, Reporter, Silent, StoreError, StoreOptions,
};
use sha2::{Digest, Sha256};
use support::server::{Action, TestServer, test_bytes};
use tempfile::TempDir;

const NAME: &str = "tiny_model.safetensors";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// A manifest of one file `name` with `content`, downloadable from `urls`.
fn manifest_for(name: &str, content: &[u8], urls: Vec<String>) -> Manifest {
    let json = serde_json::json!({
        "version": 1,
        "files": [{
            "name": name,
            "path": format!("checkpoints/{name}"),
            "size": content.len(),
            "sha256": sha256_hex(content),
            "urls": urls,
            "features": ["test"],
        }]
    });
    Manifest::from_json(&json.to_string(), "test manifest").expect("test manifest")
}

/// Fast network settings: short stall timeout and backoff so faults resolve in milliseconds.
fn fast_net() -> NetworkOptions {
    NetworkOptions {
        connect_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_millis(400),
        attempts_per_mirror: 3,
        backoff: Duration::from_millis(10),
    }
}

fn options(root: &Path, manifest: Manifest, mirror: Option<String>) -> StoreOptions {
    StoreOptions {
        root: Some(root.to_path_buf()),
        manifest: Some(manifest),
        mirror,
        network: fast_net(),
        free_space: Arc::new(|_| Ok(u64::MAX)),
        ..StoreOptions::default()
    }
}

fn entry(store: &ModelStore) -> ModelFile {
    store.manifest().files[0].clone()
}

/// Every file under `root` except the store's bookkeeping folder (`.state`: locks, hash records).
fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        let Ok(items) = fs::read_dir(dir) else { return };
        for item in items.flatten() {
            let p = item.path();
            if p.file_name().is_some_and(|n| n == ".state") {
                continue;
            }
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                out.insert(p.strip_prefix(root).unwrap_or(&p).to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The store holds exactly the verified file and nothing else.
fn assert_installed(store: &ModelStore, content: &[u8]) {
    let e = entry(store);
    let path = store.store_path(&e);
    assert_eq!(
        fs::read(&path).expect("installed file"),
        content,
        "installed bytes differ"
    );
    assert_eq!(
        files_under(store.root()),
        BTreeSet::from([e.path.clone()]),
        "stray files in the store"
    );
    assert_eq!(store.status_of(&e).state, FileState::Verified);
    let located = store.locate(&e.name).expect("locate after fetch");
    assert!(located.official);
    assert_eq!(located.path, path);
}

/// Nothing at the final path, and no temporary file either.
fn assert_nothing_installed(store: &ModelStore) {
    let e = entry(store);
    assert!(!store.store_path(&e).exists(), "a file is at the final path");
    assert_eq!(files_under(store.root()), BTreeSet::new(), "stray files in the store");
}

/// Collects reporter notes, to check what users are told.
#[derive(Default)]
struct Notes(Mutex<Vec<String>>);
impl Reporter for Notes {
    fn note(&self, name: &str, message: &str) {
        self.0.lock().expect("notes").push(format!("{name}: {message}"));
    }
}
impl Notes {
    fn all(&self) -> String {
        self.0.lock().expect("notes").join("\n")
    }
}

fn fetch(store: &ModelStore, reporter: &dyn Reporter) -> Result<Vec<sadtalker_store::Fetched>, StoreError> {
    let e = entry(store);
    store.fetch(&[&e], reporter)
}

#[test]
fn not_found_on_user_mirror_then_manifest_url_delivers() {
    let server = TestServer::start();
    let content = test_bytes(40_000, 1);
    server.route("mirror/other.bin", b"", vec![], Action::Status(404));
    server.route("files/a", &content, vec![], Action::Serve);
    let dir = TempDir::new().expect("tempdir");
    let manifest = manifest_for(NAME, &content, vec![server.url("files/a")]);
    let store = ModelStore::open(options(dir.path(), manifest, Some(server.url("mirror")))).expect("open");
    let fetched = fetch(&store, &Silent).expect("fetch");
    assert_eq!(fetched[0].url.as_deref(), Some(server.url("files/a").as_str()));
    assert!(fetched[0].notes[0].contains("404"), "{:?}", fetched[0].notes);
    // The user mirror was asked first, at <mirror>/<file name>.
    assert_eq!(server.log()[0].path, format!("/mirror/{NAME}"));
    assert_installed(&store, &content);
}

#[test]
fn server_error_is_retried_then_succeeds() {
    let server = TestServer::start();
    let content = test_bytes(30_000, 2);
    server.route(
        "f",
        &content,
        vec![Action::Status(500), Action::Status(503)],
        Action::Serve,
    );
    let dir = TempDir::new().expect("tempdir");
    let store = ModelStore::open(options(
        dir.path(),
        manifest_for(NAME, &content, vec![server.url("f")]),
        None,
    ))
    .expect("open");
    let notes = Notes::default();
    let fetched = fetch(&store, &notes).expect("fetch");
    assert_eq!(server.requests_to("f").len(), 3);
    assert_eq!(fetched[0].notes.len(), 2);
    assert!(notes.all().contains("HTTP 500; retrying"), "{}", notes.all());
    assert_installed(&store, &content);
}

#[test]
fn truncated_body_is_resumed_with_range() {
    let server = TestServer::start();
    let content = test_bytes(50_000, 3);
    server.route("f", &content, vec![Action::Truncate(20_000)], Action::Serve);
    let dir = TempDir::new().expect("tempdir");
    let store = ModelStore::open(options(
        dir.path(),
        manifest_for(NAME, &content, vec![server.url("f")]),
        None,
    ))
    .expect("open");
    fetch(&store, &Silent).expect("fetch");
    let reqs = server.requests_to("f");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].range, None);
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=20000-"));
    assert_eq!(reqs[1].status, 206);
    assert_installed(&store, &content);
}

#[test]
fn wrong_bytes_on_one_mirror_then_good_on_the_next() {
    let server = TestServer::start();
    let content = test_bytes(30_000, 4);
    server.route("bad", &content, vec![], Action::Corrupt);
    server.route("good", &content, vec![], Action::Serve);
    let dir = TempDir::new().expect("tempdir");
    let manifest = manifest_for(NAME, &content, vec![server.url("bad"), server.url("good")]);
    let store = ModelStore::open(options(dir.path(), manifest, None)).expect("open");
    let fetched = fetch(&store, &Silent).expect("fetch");
    assert!(fetched[0].notes[0].contains("hash mismatch"), "{:?}", fetched[0].notes);
    // A corrupt mirror is not retried: a hash mismatch is not transient.
    assert_eq!(server.requests_to("bad").len(), 1);
    // The good mirror started from scratch (the corrupt bytes were dropped, not resumed).
    assert_eq!(server.requests_to("good")[0].range, None);
    assert_installed(&store, &content);
}

#[test]
fn wrong_size_on_one_mirror_moves_on() {
    let server = TestServer::start();
    let content = test_bytes(30_000, 5);
    server.route("short", &content, vec![], Action::WrongLength(29_000));
    server.route("good", &content, vec![], Action::Serve);
    let dir = TempDir::new().expect("tempdir");
    let manifest = manifest_for(NAME, &content, vec![server.url("short"), server.url("good")]);
    let store = ModelStore::open(options(dir.path(), manifest, None)).expect("open");
    let fetched = fetch(&store, &Silent).expect("fetch");
    assert!(fetched[0].notes[0].contains("wrong size"), "{:?}", fetched[0].notes);
    assert_eq!(server.requests_to("short").len(), 1);
    assert_installed(&store, &content);
}

#[test]
fn stall_mid_stream_then_resume_with_range() {
    let server = TestServer::start();
    let content = test_bytes(60_000, 6);
    server.route(
        "f",
        &content,
        vec![Action::Stall(25_000, Duration::from_secs(3))],
        Action::Serve,
    );
    let dir = TempDir::new().expect("tempdir");
    let store = ModelStore::open(options(
        dir.path(),
        manifest_for(NAME, &content, vec![server.url("f")]),
        None,
    ))
    .expect("open");
    let started = std::time::Instant::now();
    let fetched = fetch(&store, &Silent).expect("fetch");
    // Given up after the stall timeout (0.4 s), not after the server's 3 s pause.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "took {:?}",
        started.elapsed()
    );
    assert!(fetched[0].notes[0].contains("stalled"), "{:?}", fetched[0].notes);
    let reqs = server.requests_to("f");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=25000-"));
    assert_installed(&store, &content);
}

#[test]
fn server_ignoring_range_restarts_cleanly() {
    let server = TestServer::start();
    let content = test_bytes(40_000, 7);
    server.route("f", &content, vec![Action::Truncate(15_000)], Action::IgnoreRange);
    let dir = TempDir::new().expect("tempdir");
    let store = ModelStore::open(options(
        dir.path(),
        manifest_for(NAME, &content, vec![server.url("f")]),
        None,
    ))
    .expect("open");
    let notes = Notes::default();
    fetch(&store, &notes).expect("fetch");
    let reqs = server.requests_to("f");
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].range.as_deref(), Some("bytes=15000-"));
    assert_eq!(reqs[1].status, 200);
    assert!(notes.all().contains("does not resume"), "{}", notes.all());
    // The full body replaced the prefix rather than being appended to it.
    assert_installed(&store, &content);
}

#[test]
fn changed_file_on_server_restarts_through_if_range() {
    let server = TestServer::start();
    let content = test_bytes(40_000, 8);
    let dir = TempDir::new().expect("tempdir");
    let store = ModelStore::open(options(
        dir.path(),
        manifest_for(NAME, &content, vec![server.url("f")]),
        None,
    ))
    .expect("open");
    // First run: 10 000 bytes with ETag "old", then every retry fails.
    server.route_with_etag(
        "f",
        &content,
        "\"old\"",
        vec![Action::Truncate(10_000)],
        Action::Status(503),
    );
    let err = fetch(&store, &Silent).expect_err("the first run must fail");
    assert!(matches!(err, StoreError::FetchFailed { .. }), "{err}");
    assert!(err.to_string().contains("resumes"), "{err}");
    let part = store.store_path(&entry(&store)).with_extension("safetensors.part");
    assert_eq!(fs::metadata(&part).expect("kept part").len(), 10_000);
    // The server now has a new version (ETag "new"): If-Range makes it send everything with 200.
    server.route_with_etag("f", &content, "\"new\"", vec![], Action::Serve);
    fetch(&store, &Silent).expect("fetch");
    let last = server.requests_to("f").pop().expect("requests");
    assert_eq!(last.range.as_deref(), Some("bytes=10000-"));
    assert_eq!(last.status, 200);
    assert_installed(&store, &content);
}

#[test]
fn redirect_chain_is_followed_and_keeps_the_range() {
    let server = TestServer::start();
    let content = test_bytes(45_000, 9);
    // As GitHub release URLs do: release link → object storage (here two hops).
    server.route("release/f", b"", vec![], Action::Redirect(server.url("hop/f")));
    server.route("hop/f", b"", vec![], Action::Redirect("/objects/f".into()));
    server.route("objects/f", &content, vec![Action::Truncate(12_345)], Action::Serve);
    let dir = TempDir::new().expect("tempdir");
    let manifest = manifest_for(NAME, &content, vec![server.url("release/f")]);
    let store = ModelStore::open(options(dir.path(), manifest, None)).expect("open");
    fetch(&store, &Silent).expect("fetch");
    let objects = server.requests_to("objects/f");
    assert_eq!(objects.len(), 2);
    assert_eq!(objects[1].range.as_deref(), Some("bytes=12345-"));
    assert_eq!(server.requests_to("release/f").len(), 2);
    assert_installed(&store, &content);
}

#[test]
fn all_mirrors_failing_lists_each_url_and_the_offline_remedy() {
    let server = TestServer::start();
    let content = test_bytes(20_000, 10);
    server.route("gone", b"", vec![], Action::Status(404));
    server.route("broken", b"", vec![], Action::Status(502));
    let dir = TempDir::new().expect("tempdir");
    let manifest = manifest_for(NAME, &content, vec![server.url("gone"), server.url("broken")]);
    let store = ModelStore::open(options(dir.path(), manifest, None)).expect("open");
    let err = fetch(&store, &Silent).expect_err("must fail");
    let msg = err.to_string();
    assert!(msg.contains(&format!("{}: HTTP 404", server.url("gone"))), "{msg}");
    assert!(
        msg.contains(&format!("{}: HTTP 502 (3 tries)", server.url("broken"))),
        "{msg}"
    );
    assert!(msg.contains("sadtalker models import"), "{msg}");
    assert!(msg.contains(&sha256_hex(&content)), "{msg}");
    // Transient errors were retried (3 tries), the 404 was not.
    assert_eq!(server.requests_to("gone").len(), 1);
    assert_eq!(server.requests_to("broken").len(), 3);
    assert_nothing_installed(&store);
}

#[test]
fn not_enough_disk_space_stops_before_downloading() {
    let server = TestServer::start();
    let content = test_bytes(20_000, 11);
    server.route("f", &content, vec![], Action::Serve);
    let dir = TempDir::new().expect("tempdir");
    let mut opts = options(dir.path(), manifest_for(NAME, &content, vec![server.url("f")]), None);
    // Exactly the file size free: not enough with the 10 % margin.
    opts.free_space = Arc::new(|_| Ok(20_000));
    let store = ModelStore::open(opts).expect("open");
    let err = fetch(&store, &Silent).expect_err("must fail");
    match &err {
        StoreError::InsufficientSpace {
            needed,
            available,
            dir: d,
        } => {
            assert_eq!(*needed, 22_000);
            assert_eq!(*available, 20_000);
            assert_eq!(d, dir.path());
        }
        other => panic!("unexpected error {other}"),
    }
    assert!(err.to_string().contains(&dir.path().display().to_string()), "{err}");
    assert!(server.log().is_empty(), "nothing may be requested");
    assert_nothing_installed(&store);
}

#[test]
fn two_concurrent_fetches_of_one_file_download_it_once() {
    let server = TestServer::start();
    let content = test_bytes(64_000, 12);
    server.route("f", &content, vec![], Action::Slow(4_000, Duration::from_millis(50)));
    let dir = TempDir::new().expect("tempdir");
    let manifest = manifest_for(NAME, &content, vec![server.url("f")]);
    let root = dir.path().to_path_buf();
    let first = {
        let (root, manifest) = (root.clone(), manifest.clone());
        std::thread::spawn(move || {
            let store = ModelStore::open(options(&root, manifest, None)).expect("open");
            fetch(&store, &Silent).map(|f| f[0].url.clone())
        })
    };
    // Start the second fetch while the first is mid-transfer.
    while server.requests_to("f").is_empty() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let store = ModelStore::open(options(&root, manifest, None)).expect("open");
    let notes = Notes::default();
    let second = fetch(&store, &notes).expect("second fetch");
    let first = first.join().expect("first thread").expect("first fetch");
    assert!(first.is_some(), "the first fetch downloads");
    assert_eq!(second[0].url, None, "the second finds it installed");
    assert!(notes.all().contains("waiting"), "{}", notes.all());
    assert_eq!(server.requests_to("f").len(), 1);
    assert_installed(&store, &content);
}

#[test]
fn stale_part_of_another_version_is_discarded() {
    let server = TestServer::start();
    let content = test_bytes(30_000, 13);
    server.route("f", &content, vec![], Action::Serve);
    let dir = TempDir::new().expect("tempdir");
    let store = ModelStore::open(options(
        dir.path(),
        manifest_for(NAME, &content, vec![server.url("f")]),
        None,
    ))
    .expect("open");
    let dest = store.store_path(&entry(&store));
    fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
    let part = PathBuf::from(format!("{}.part", dest.display()));
    fs::write(&part, vec![7u8; 50_000]).expect("write");
    fs::write(format!("{}.json", part.display()), r#"{"sha256":"00","size":50000}"#).expect("write");
    fetch(&store, &Silent).expect("fetch");
    assert_eq!(server.requests_to("f")[0].range, None);
    assert_installed(&store, &content);
}

#[test]
fn offline_mode_makes_no_request_and_says_how_to_install() {
    let server = TestServer::start();
    let content = test_bytes(10_000, 14);
    server.route("f", &content, vec![], Action::Serve);
    let dir = TempDir::new().expect("tempdir");
    let mut opts = options(dir.path(), manifest_for(NAME, &content, vec![server.url("f")]), None);
    opts.offline = true;
    let store = ModelStore::open(opts).expect("open");
    let err = fetch(&store, &Silent).expect_err("must fail");
    assert!(matches!(err, StoreError::Offline { .. }));
    assert!(err.to_string().contains("sadtalker models import"), "{err}");
    assert!(server.log().is_empty());
    assert_nothing_installed(&store);
}

#[test]
fn hf_endpoint_rewrites_hugging_face_urls_after_the_user_mirror() {
    let content = test_bytes(10, 15);
    let manifest = manifest_for(
        NAME,
        &content,
        vec![
            "https://github.com/x/y".into(),
            "https://huggingface.co/org/repo/resolve/main/f".into(),
        ],
    );
    let dir = TempDir::new().expect("tempdir");
    let mut opts = options(dir.path(), manifest, Some("http://127.0.0.1:9/models/".into()));
    opts.hf_endpoint = Some("https://hf-mirror.example/".into());
    let store = ModelStore::open(opts).expect("open");
    assert_eq!(
        store.urls_for(&entry(&store)),
        [
            format!("http://127.0.0.1:9/models/{NAME}"),
            "https://github.com/x/y".into(),
            "https://hf-mirror.example/org/repo/resolve/main/f".into(),
        ]
    );
}

#[test]
fn https_is_available_and_a_tls_failure_moves_to_the_next_mirror() {
    let server = TestServer::start();
    let content = test_bytes(8_000, 16);
    server.route("f", &content, vec![], Action::Serve);
    // The loopback server speaks plain HTTP: the TLS handshake fails (rustls is set up, nothing panics),
    // and the next mirror delivers.
    let https = server.url("f").replacen("http://", "https://", 1);
    let dir = TempDir::new().expect("tempdir");
    let manifest = manifest_for(NAME, &content, vec![https.clone(), server.url("f")]);
    let store = ModelStore::open(options(dir.path(), manifest, None)).expect("open");
    let fetched = fetch(&store, &Silent).expect("fetch");
    assert!(
        fetched[0].notes.iter().all(|n| n.starts_with(&https)),
        "{:?}",
        fetched[0].notes
    );
    assert!(!fetched[0].notes.is_empty());
    assert_installed(&store, &content);
}
