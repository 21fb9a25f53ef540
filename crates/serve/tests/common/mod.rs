//! Shared helpers of the server tests: a server on the built-in test networks, multipart bodies, a
//! plain HTTP client.

#![allow(dead_code, reason = "each test file uses a part")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sadtalker_pipeline::{GenerateOptions, Models};
use sadtalker_serve::{ServeConfig, Server};
use serde_json::Value;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

/// The astronaut (256 px) and its 68 landmarks: the test networks find no face on their own.
pub fn portrait() -> Vec<u8> {
    std::fs::read(fixtures().join("preprocess/astronaut.png")).expect("portrait")
}
pub fn landmarks() -> Vec<u8> {
    std::fs::read(fixtures().join("pipeline/astronaut_lm.txt")).expect("landmarks")
}
/// Three video frames of speech.
pub fn speech() -> Vec<u8> {
    std::fs::read(fixtures().join("pipeline/speech_3f.wav")).expect("speech")
}
/// The example recording (5.7 s, 142 frames): a job that runs long enough to be interrupted.
pub fn long_speech() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/speech.wav")).expect("speech")
}

/// A server on the self-test networks (64-pixel renderer) listening on a free local port.
pub struct TestServer {
    pub server: Option<Server>,
    pub data: tempfile::TempDir,
    pub base: String,
    pub token: Option<String>,
}

pub fn config(data: &Path) -> ServeConfig {
    let mut cfg = ServeConfig::new(data);
    cfg.listen = "127.0.0.1:0".parse().expect("addr");
    cfg.base = GenerateOptions {
        size: 64,
        ..GenerateOptions::default()
    };
    cfg
}

pub fn start(edit: impl FnOnce(&mut ServeConfig)) -> TestServer {
    let data = tempfile::tempdir().expect("tempdir");
    let mut cfg = config(data.path());
    edit(&mut cfg);
    let token = cfg.token.clone();
    let server = Server::start(cfg, Arc::new(Models::self_test())).expect("server starts");
    let base = format!("http://{}", server.addr());
    TestServer {
        server: Some(server),
        data,
        base,
        token,
    }
}

impl TestServer {
    pub fn server(&self) -> &Server {
        self.server.as_ref().expect("running")
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

/// A form part: a text field or a file.
#[derive(Clone, Copy)]
pub enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, &'a str, &'a [u8]),
}

/// A `multipart/form-data` body and its content type.
pub fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "sadtalker-test-boundary-7d1c";
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match p {
            Part::Text(name, value) => {
                body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes());
                body.extend_from_slice(value.as_bytes());
            }
            Part::File(name, file, data) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(data);
            }
        }
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The parts of a good job (portrait, landmarks, 3 frames of speech) plus `extra`.
pub fn job_parts<'a>(img: &'a [u8], lm: &'a [u8], audio: &'a [u8], extra: &[Part<'a>]) -> Vec<Part<'a>> {
    let mut p = vec![
        Part::File("image", "astronaut.png", img),
        Part::File("audio", "speech.wav", audio),
        Part::File("landmarks", "astronaut_lm.txt", lm),
    ];
    p.extend_from_slice(extra);
    p
}

/// Status, headers we look at, and the body.
pub struct Resp {
    pub status: u16,
    pub retry_after: Option<String>,
    pub content_range: Option<String>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body[..self.body.len().min(500)])
            )
        })
    }
}

fn finish(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Resp {
    let mut r = r.expect("HTTP request");
    let h = |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (retry_after, content_range) = (h("retry-after"), h("content-range"));
    let body = r.body_mut().with_config().limit(256 << 20).read_to_vec().expect("body");
    Resp {
        status: r.status().as_u16(),
        retry_after,
        content_range,
        body,
    }
}

impl TestServer {
    fn auth(
        &self,
        req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
    ) -> ureq::RequestBuilder<ureq::typestate::WithoutBody> {
        match &self.token {
            Some(t) => req.header("Authorization", &format!("Bearer {t}")),
            None => req,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        finish(self.auth(agent().get(&format!("{}{path}", self.base))).call())
    }

    pub fn get_range(&self, path: &str, range: &str) -> Resp {
        finish(
            self.auth(agent().get(&format!("{}{path}", self.base)))
                .header("Range", range)
                .call(),
        )
    }

    pub fn delete(&self, path: &str) -> Resp {
        finish(self.auth(agent().delete(&format!("{}{path}", self.base))).call())
    }

    pub fn submit(&self, parts: &[Part<'_>]) -> Resp {
        let (ct, body) = multipart(parts);
        let mut req = agent()
            .post(&format!("{}/v1/jobs", self.base))
            .header("Content-Type", &ct);
        if let Some(t) = &self.token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        finish(req.send(&body[..]))
    }

    /// Polls a job until `pred` holds (or panics after `limit`).
    pub fn wait_for(&self, id: &str, limit: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let t = Instant::now();
        loop {
            let v = self.get(&format!("/v1/jobs/{id}")).json();
            if pred(&v) {
                return v;
            }
            assert!(t.elapsed() < limit, "job {id} did not get there in {limit:?}: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn wait_final(&self, id: &str, limit: Duration) -> Value {
        self.wait_for(id, limit, |v| {
            !matches!(v["state"].as_str(), Some("queued") | Some("running"))
        })
    }

    /// Files under the data folder's `jobs/` and `tmp/`.
    pub fn stored(&self) -> Vec<String> {
        let mut out = Vec::new();
        for sub in ["jobs", "tmp"] {
            if let Ok(entries) = std::fs::read_dir(self.data.path().join(sub)) {
                for e in entries.flatten() {
                    out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        out
    }
}
