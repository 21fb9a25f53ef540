//! `sadtalker models …` end to end against a loopback server, including a download killed mid-way.

#[path = "../../store/tests/support/server.rs"]
mod server;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use server::{Action, TestServer, test_bytes};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

const NAME: &str = "tiny.safetensors";

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

struct Env {
    dir: TempDir,
    content: Vec<u8>,
}

impl Env {
    /// A temp folder with `m.json`: one file `NAME` of `len` bytes, feature `test`, the given URLs.
    fn new(len: usize, seed: u64, urls: Vec<String>) -> Env {
        let dir = TempDir::new().expect("tempdir");
        let content = test_bytes(len, seed);
        let manifest = serde_json::json!({"version": 1, "files": [{
            "name": NAME, "path": format!("checkpoints/{NAME}"), "size": len,
            "sha256": sha256_hex(&content), "urls": urls, "features": ["test"],
        }]});
        fs::write(dir.path().join("m.json"), manifest.to_string()).expect("write manifest");
        Env { dir, content }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn installed(&self) -> PathBuf {
        self.home().join("checkpoints").join(NAME)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sadtalker"));
        cmd.arg("models")
            .args(args)
            .arg("--manifest")
            .arg(self.dir.path().join("m.json"))
            .env("SADTALKER_HOME", self.home())
            .env_remove("SADTALKER_MIRROR")
            .env_remove("HF_ENDPOINT");
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run sadtalker")
    }

    /// Files in the store's `checkpoints` folder (temporary files included).
    fn store_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.home().join("checkpoints"))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

#[test]
fn killed_mid_download_then_rerun_resumes_and_verifies() {
    let server = TestServer::start();
    let env = Env::new(120_000, 21, vec![]);
    // Slow enough (about 1.2 s in all) to be killed half-way.
    server.route(
        NAME,
        &env.content,
        vec![],
        Action::Slow(2_000, Duration::from_millis(20)),
    );
    let part = PathBuf::from(format!("{}.part", env.installed().display()));
    let mut child = env
        .cmd(&["fetch", NAME, "--mirror", &server.base()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn sadtalker");
    let deadline = Instant::now() + Duration::from_secs(20);
    while file_len(&part) < 30_000 {
        assert!(Instant::now() < deadline, "the download never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().expect("kill");
    child.wait().expect("wait");
    let kept = file_len(&part);
    assert!((30_000..120_000).contains(&kept), "part has {kept} bytes");
    assert!(
        !env.installed().exists(),
        "nothing may be at the final path after a kill"
    );
    let list: serde_json::Value = serde_json::from_slice(&env.run(&["list", "--json"]).stdout).expect("list --json");
    assert_eq!(list["files"][0]["state"], "partial");
    assert_eq!(list["files"][0]["partial_bytes"], kept);

    server.route(NAME, &env.content, vec![], Action::Serve);
    let out = env.run(&["fetch", NAME, "--mirror", &server.base(), "--quiet"]);
    assert!(out.status.success(), "rerun failed: {}", text(&out.stderr));
    let last = server.requests_to(NAME).pop().expect("requests");
    assert_eq!(last.range, Some(format!("bytes={kept}-")));
    assert_eq!(last.status, 206);
    assert_eq!(fs::read(env.installed()).expect("installed"), env.content);
    assert_eq!(env.store_files(), [NAME], "temporary files left");
}

#[test]
fn fetch_list_verify_where_against_a_local_mirror() {
    let server = TestServer::start();
    let env = Env::new(30_000, 22, vec![]);
    server.route(NAME, &env.content, vec![Action::Status(503)], Action::Serve);
    let out = env.run(&["fetch", "--for", "test", "--mirror", &server.base(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("fetch --json");
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["files"][0]["url"], format!("{}/{NAME}", server.base()));
    assert!(
        doc["files"][0]["notes"][0].as_str().unwrap_or("").contains("HTTP 503"),
        "{doc}"
    );

    let list: serde_json::Value = serde_json::from_slice(&env.run(&["list", "--json"]).stdout).expect("list --json");
    assert_eq!(list["files"][0]["state"], "verified");
    assert_eq!(list["files"][0]["origin"], "store");

    let out = env.run(&["verify"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("verified"));

    let out = env.run(&["where"]);
    assert_eq!(text(&out.stdout).trim(), env.home().display().to_string());

    // Fetching again does not touch the network.
    let before = server.log().len();
    let out = env.run(&["fetch", NAME, "--mirror", &server.base()]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("already installed"));
    assert_eq!(server.log().len(), before);
}

#[test]
fn every_mirror_failing_exits_4_with_the_urls_and_the_offline_remedy() {
    let server = TestServer::start();
    let env = Env::new(10_000, 23, vec![server.url("gone/x")]);
    let out = env.run(&["fetch", "--all", "--mirror", &server.base(), "--retries", "1"]);
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}/{NAME}: HTTP 404", server.base())), "{err}");
    assert!(err.contains(&format!("{}: HTTP 404", server.url("gone/x"))), "{err}");
    assert!(err.contains("sadtalker models import"), "{err}");
    assert!(!env.installed().exists());
    assert!(env.store_files().is_empty(), "{:?}", env.store_files());
}

#[test]
fn import_then_use_and_bad_arguments() {
    let env = Env::new(5_000, 24, vec![]);
    let src = env.dir.path().join("usb/checkpoints");
    fs::create_dir_all(&src).expect("mkdir");
    fs::write(src.join(NAME), &env.content).expect("write");
    let out = env.run(&["import", env.dir.path().join("usb").to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read(env.installed()).expect("installed"), env.content);

    let out = env.run(&["list", "--checkpoint-dir", "/nonexistent/checkpoints"]);
    assert_eq!(out.status.code(), Some(3));
    let out = env.run(&["fetch", "no_such_file.pth"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stderr).contains(NAME), "known names are listed");
    let out = env.run(&["fetch"]);
    assert_eq!(out.status.code(), Some(2), "nothing to fetch named is a usage error");
}

#[test]
fn two_processes_fetching_one_file_download_it_once() {
    let server = TestServer::start();
    let env = Env::new(60_000, 25, vec![]);
    server.route(
        NAME,
        &env.content,
        vec![],
        Action::Slow(3_000, Duration::from_millis(40)),
    );
    let spawn = || {
        env.cmd(&["fetch", NAME, "--mirror", &server.base()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sadtalker")
    };
    let first = spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.requests_to(NAME).is_empty() {
        assert!(Instant::now() < deadline, "the first download never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    let second = spawn();
    let (first, second) = (
        first.wait_with_output().expect("wait"),
        second.wait_with_output().expect("wait"),
    );
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert!(text(&second.stderr).contains("waiting"), "{}", text(&second.stderr));
    assert!(
        text(&second.stdout).contains("already installed"),
        "{}",
        text(&second.stdout)
    );
    assert_eq!(server.requests_to(NAME).len(), 1);
    assert_eq!(fs::read(env.installed()).expect("installed"), env.content);
    assert_eq!(env.store_files(), [NAME], "temporary files left");
}
