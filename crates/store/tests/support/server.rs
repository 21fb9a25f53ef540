//! A loopback HTTP/1.1 server with scripted faults, for download tests (no network but 127.0.0.1).
//!
//! Each route serves one body; the route's script says what the next requests get (a 500, a truncated
//! body, a stall, a redirect…), and its default applies once the script is used up. Every request is
//! logged (path, Range header, status sent) so tests can assert what the client asked for.

#![allow(dead_code, reason = "each test binary uses part of the server")]

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// What one request to a route gets.
#[derive(Clone, Debug)]
pub enum Action {
    /// The body, honouring `Range` (206) and `If-Range`.
    Serve,
    /// The whole body with 200, whatever `Range` says.
    IgnoreRange,
    /// This status and a short text body.
    Status(u16),
    /// Headers announce the full (ranged) length, but only this many body bytes come, then the
    /// connection closes.
    Truncate(usize),
    /// This many body bytes, then nothing for the duration, then the connection closes.
    Stall(usize, Duration),
    /// A redirect (302) to this path or URL.
    Redirect(String),
    /// Serve (with Range), in chunks of this many bytes with a pause after each.
    Slow(usize, Duration),
    /// Serve other bytes of the same length (a corrupt mirror), honouring Range.
    Corrupt,
    /// Serve a body of another length.
    WrongLength(usize),
}

/// One logged request.
#[derive(Clone, Debug)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
}

struct Route {
    body: Vec<u8>,
    etag: String,
    script: VecDeque<Action>,
    default: Action,
}

#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    log: Vec<Logged>,
}

/// The server; stops accepting when dropped.
pub struct TestServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    pub fn start() -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                thread::spawn(move || handle(conn, &st));
            }
        });
        TestServer { addr, state, stop }
    }

    /// `http://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/<path>`
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base(), path.trim_start_matches('/'))
    }

    /// Adds (or replaces) a route serving `body`; `script` applies first, then `default`.
    pub fn route(&self, path: &str, body: &[u8], script: Vec<Action>, default: Action) {
        self.route_with_etag(path, body, "\"v1\"", script, default);
    }

    pub fn route_with_etag(&self, path: &str, body: &[u8], etag: &str, script: Vec<Action>, default: Action) {
        let mut st = self.state.lock().expect("server state");
        st.routes.insert(
            format!("/{}", path.trim_start_matches('/')),
            Route {
                body: body.to_vec(),
                etag: etag.to_string(),
                script: script.into(),
                default,
            },
        );
    }

    /// Every request so far.
    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().expect("server state").log.clone()
    }

    /// The requests to one path.
    pub fn requests_to(&self, path: &str) -> Vec<Logged> {
        let p = format!("/{}", path.trim_start_matches('/'));
        self.log().into_iter().filter(|l| l.path == p).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so its thread ends.
        let _ = TcpStream::connect(self.addr);
    }
}

fn handle(mut conn: TcpStream, state: &Mutex<State>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() || first.is_empty() {
        return;
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let range = headers.get("range").cloned();
    let if_range = headers.get("if-range").cloned();

    let (action, body, etag) = {
        let mut st = state.lock().expect("server state");
        match st.routes.get_mut(&path) {
            Some(route) => {
                let action = route.script.pop_front().unwrap_or_else(|| route.default.clone());
                (action, route.body.clone(), route.etag.clone())
            }
            None => (Action::Status(404), Vec::new(), String::new()),
        }
    };

    let log = |status: u16| {
        state.lock().expect("server state").log.push(Logged {
            path: path.clone(),
            range: range.clone(),
            status,
        })
    };

    let simple = |conn: &mut TcpStream, status: u16, extra: &str| {
        let text = format!("status {status}\n");
        let _ = write!(
            conn,
            "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{text}",
            text.len()
        );
    };

    match action {
        Action::Status(code) => {
            log(code);
            simple(&mut conn, code, "");
        }
        Action::Redirect(to) => {
            log(302);
            simple(&mut conn, 302, &format!("Location: {to}\r\n"));
        }
        Action::WrongLength(n) => {
            log(200);
            let body: Vec<u8> = body.iter().cycle().take(n).copied().collect();
            send_limited(&mut conn, 200, &etag, None, &body, None, None, None);
        }
        other => {
            let body = if matches!(other, Action::Corrupt) {
                body.iter().map(|b| b ^ 0x5a).collect()
            } else {
                body
            };
            let total = body.len();
            // Honour Range unless told not to, or the If-Range validator is stale (RFC 9110 §13.1.5).
            let start = match (&other, range.as_deref().and_then(parse_range)) {
                (Action::IgnoreRange, _) => None,
                (_, Some(s)) if if_range.as_deref().is_none_or(|v| v == etag) => Some(s),
                _ => None,
            };
            if let Some(s) = start
                && s >= total
            {
                log(416);
                simple(&mut conn, 416, &format!("Content-Range: bytes */{total}\r\n"));
                return;
            }
            let status = if start.is_some() { 206 } else { 200 };
            log(status);
            let from = start.unwrap_or(0);
            let slice = &body[from..];
            let (limit, pause) = match other {
                Action::Truncate(n) => (Some(n), None),
                Action::Stall(n, d) => (Some(n), Some(d)),
                _ => (None, None),
            };
            let chunked = match other {
                Action::Slow(chunk, delay) => Some((chunk, delay)),
                _ => None,
            };
            let content_range = start.map(|s| format!("bytes {s}-{}/{total}", total - 1));
            send_limited(&mut conn, status, &etag, content_range, slice, limit, pause, chunked);
        }
    }
}

fn parse_range(v: &str) -> Option<usize> {
    v.strip_prefix("bytes=")?.strip_suffix('-')?.parse().ok()
}

#[allow(clippy::too_many_arguments, reason = "a test helper with every knob")]
fn send_limited(
    conn: &mut TcpStream,
    status: u16,
    etag: &str,
    content_range: Option<String>,
    body: &[u8],
    limit: Option<usize>,
    pause: Option<Duration>,
    chunked: Option<(usize, Duration)>,
) {
    let mut head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(cr) = content_range {
        head.push_str(&format!("Content-Range: {cr}\r\n"));
    }
    head.push_str("\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let sent = &body[..limit.unwrap_or(body.len()).min(body.len())];
    match chunked {
        Some((chunk, delay)) => {
            for piece in sent.chunks(chunk.max(1)) {
                if conn.write_all(piece).is_err() || conn.flush().is_err() {
                    return;
                }
                thread::sleep(delay);
            }
        }
        None => {
            let _ = conn.write_all(sent);
        }
    }
    let _ = conn.flush();
    if let Some(d) = pause {
        thread::sleep(d);
    }
    let _ = conn.shutdown(std::net::Shutdown::Both);
}

/// Deterministic pseudo-random bytes (xorshift), so content differs between tests.
pub fn test_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
