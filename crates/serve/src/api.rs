//! The HTTP API and the web page.

use std::convert::Infallible;
use std::io::SeekFrom;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use sadtalker_pipeline::Problem;

use crate::db::{JobRow, JobState, now};
use crate::upload::{self, TmpDir};
use crate::worker::{App, Readiness};

/// The web page (hand-written; no build step).
const PAGE: &str = include_str!("page.html");
/// The API description.
const OPENAPI: &str = include_str!("openapi.json");

/// A refused request: status, problem code, message, what to do.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Problem code (the pipeline's codes for input problems).
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub hint: String,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with its fields.
    pub fn new(status: StatusCode, code: &str, message: String, hint: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message,
            hint: hint.into(),
            retry_after: None,
        }
    }

    /// 400: a request that is not a job submission.
    pub fn bad_request(message: String) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            message,
            "POST multipart/form-data with the files `image` and `audio` and any options (see /openapi.json)",
        )
    }

    /// 422 with a pipeline problem: its code and hint.
    pub fn unprocessable(problem: Problem, message: String) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            problem.as_str(),
            message,
            problem.hint(),
        )
    }

    /// 500.
    pub fn internal(message: String) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message,
            "this is a bug or a full disk on the server: check its log",
        )
    }

    fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such job".into(),
            "job ids come from POST /v1/jobs; finished jobs are removed after the retention limit",
        )
    }
}

impl From<crate::ServeError> for ApiError {
    fn from(e: crate::ServeError) -> Self {
        ApiError::internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message, "hint": self.hint}});
        let mut r = (self.status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

type Shared = State<Arc<App>>;

/// The server's routes.
pub fn router(app: Arc<App>) -> Router {
    // Room for the multipart framing around the files; the byte cap itself is counted while streaming.
    let body_limit = usize::try_from(app.cfg.limits.max_upload_bytes.saturating_add(1 << 20)).unwrap_or(usize::MAX);
    let api = Router::new()
        .route("/v1/jobs", get(list_jobs).post(submit))
        .route("/v1/jobs/{id}", get(get_job).delete(delete_job))
        .route("/v1/jobs/{id}/events", get(events))
        .route("/v1/jobs/{id}/video", get(video))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(app.clone(), auth));
    Router::new()
        .route("/", get(page))
        .route("/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .merge(api)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::from_fn_with_state(app.clone(), cors))
        .with_state(app)
}

/// `Authorization: Bearer <token>` on every API call when the server has a token.
async fn auth(State(app): Shared, req: Request, next: Next) -> Response {
    if let Some(token) = &app.cfg.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = given.is_some_and(|g| {
            // Equal-time comparison of the hashes: no early exit on the first differing byte.
            let (a, b) = (Sha256::digest(g.as_bytes()), Sha256::digest(token.as_bytes()));
            a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
        });
        if !ok {
            app.metrics.refused("unauthorized");
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this server needs `Authorization: Bearer <token>`".into(),
                "send the token the server was started with (--token or $SADTALKER_TOKEN)",
            )
            .into_response();
        }
    }
    next.run(req).await
}

/// CORS headers, only when the server was asked for them (`--cors ORIGIN`).
async fn cors(State(app): Shared, req: Request, next: Next) -> Response {
    let Some(allowed) = app.cfg.cors_origin.clone() else {
        return next.run(req).await;
    };
    let origin = req.headers().get(header::ORIGIN).cloned();
    let matches = origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| allowed == "*" || o == allowed);
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = if preflight {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(req).await
    };
    if matches && let Some(o) = origin {
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, DELETE, OPTIONS"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("authorization, content-type, range"),
        );
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("content-range, retry-after, location"),
        );
    }
    resp
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn healthz() -> Response {
    axum::Json(json!({"ok": true})).into_response()
}

async fn readyz(State(app): Shared) -> Response {
    match app.readiness() {
        Readiness::Ready => {
            let files: Vec<Value> = app
                .models
                .files_used()
                .into_iter()
                .map(|(role, path)| json!({"role": role, "path": path}))
                .collect();
            axum::Json(json!({"ready": true, "models": files, "sizes": app.models.sizes()})).into_response()
        }
        Readiness::Loading => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "reason": "the models are loading", "sizes": app.models.sizes()})),
        )
            .into_response(),
        Readiness::Failed(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "reason": "the models cannot be loaded", "error": e, "sizes": app.models.sizes()})),
        )
            .into_response(),
    }
}

async fn metrics(State(app): Shared) -> Result<Response, ApiError> {
    let counts = blocking({
        let app = app.clone();
        move || app.db.counts().map_err(ApiError::from)
    })
    .await?;
    let text = app.metrics.render(
        &counts,
        app.started.elapsed().as_secs_f64(),
        app.cfg.workers,
        app.models.source_cache().stats(),
    );
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response())
}

/// Runs blocking work (SQLite, decoding) off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T, ApiError> + Send + 'static) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("a server task failed: {e}")))?
}

/// A new job id: 32 hex digits, not guessable from the previous ones.
fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = Sha256::new();
    h.update(now().to_le_bytes());
    h.update(COUNTER.fetch_add(1, Ordering::SeqCst).to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(format!("{:?}", Instant::now()).as_bytes());
    let local = 0u8;
    h.update((&local as *const u8 as usize).to_le_bytes());
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Ids are ours: 32 hex digits. Anything else is no job (and never reaches a path).
fn check_id(id: &str) -> Result<(), ApiError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(ApiError::not_found())
    }
}

fn retry_after(app: &App, outstanding: usize) -> u64 {
    let per_job = app.metrics.seconds_per_frame().map_or(30.0, |s| (s * 150.0).max(1.0));
    ((outstanding as f64 * per_job / app.cfg.workers.max(1) as f64).ceil() as u64).clamp(1, 3600)
}

fn queue_full(app: &App, outstanding: usize) -> ApiError {
    app.metrics.refused("queue_full");
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "queue_full",
        format!(
            "the queue is full: {outstanding} jobs are waiting or running (this server's cap is {})",
            app.cfg.limits.max_queue
        ),
        "try again after the time in Retry-After",
    );
    e.retry_after = Some(retry_after(app, outstanding));
    e
}

async fn submit(
    State(app): Shared,
    headers: HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let result = submit_inner(&app, &headers, multipart).await;
    if let Err(e) = &result {
        match e.status {
            StatusCode::PAYLOAD_TOO_LARGE => app.metrics.refused("too_large"),
            StatusCode::TOO_MANY_REQUESTS => {}
            s if s.is_client_error() => app.metrics.refused("bad_input"),
            _ => {}
        }
    }
    result
}

async fn submit_inner(
    app: &Arc<App>,
    headers: &HeaderMap,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    if let Readiness::Failed(e) = app.readiness() {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            &e.code,
            format!("the server's models cannot be loaded: {}", e.message),
            e.hint,
        ));
    }
    let max = app.cfg.limits.max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(1 << 20)) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "upload_too_large",
            format!("the upload is larger than this server's limit of {max} bytes"),
            "send smaller files (downscale the portrait, shorten the recording)",
        ));
    }
    // Refuse before receiving the files when the queue is already full (checked again on insert).
    let counts = blocking({
        let app = app.clone();
        move || app.db.counts().map_err(ApiError::from)
    })
    .await?;
    let outstanding = (counts.get(&JobState::Queued).copied().unwrap_or(0)
        + counts.get(&JobState::Running).copied().unwrap_or(0)) as usize;
    if outstanding >= app.cfg.limits.max_queue {
        return Err(queue_full(app, outstanding));
    }
    let multipart = multipart.map_err(|e| ApiError::bad_request(format!("not a multipart form: {e}")))?;
    let id = new_id();
    let tmp = TmpDir::create(app.tmp_dir(&id))?;
    let received = upload::receive(multipart, tmp.path(), max).await?;
    let final_dir = app.job_dir(&id);
    let (received, tmp) = blocking({
        let app = app.clone();
        let final_dir = final_dir.clone();
        move || {
            upload::check(
                &received,
                &app.cfg.base,
                app.models.sizes(),
                &app.cfg.limits,
                &final_dir,
            )?;
            Ok((received, tmp))
        }
    })
    .await?;
    let row = JobRow {
        id: id.clone(),
        state: JobState::Queued,
        options: received.fields.clone(),
        files: received.files.clone(),
        client_names: received.client_names.clone(),
        created: now(),
        started: None,
        finished: None,
        stage: None,
        done: 0,
        total: None,
        attempts: 0,
        error: None,
        report: None,
    };
    let inserted = blocking({
        let app = app.clone();
        move || {
            std::fs::rename(tmp.path(), &final_dir)
                .map_err(|e| ApiError::internal(format!("cannot store the upload: {e}")))?;
            tmp.keep();
            match app.db.insert(&row, app.cfg.limits.max_queue) {
                Ok(Ok(())) => Ok(Ok(())),
                Ok(Err(full)) => {
                    let _ = std::fs::remove_dir_all(&final_dir);
                    Ok(Err(full.outstanding))
                }
                Err(e) => {
                    let _ = std::fs::remove_dir_all(&final_dir);
                    Err(ApiError::from(e))
                }
            }
        }
    })
    .await?;
    if let Err(outstanding) = inserted {
        return Err(queue_full(app, outstanding));
    }
    app.notify();
    let url = format!("/v1/jobs/{id}");
    let mut resp = (
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": id, "state": "queued", "url": url})),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&url) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// A job as the API shows it.
fn job_json(app: &App, row: &JobRow) -> Value {
    let live = (row.state == JobState::Running).then(|| app.live(&row.id)).flatten();
    let (stage, done, total) = match &live {
        Some(l) => (Some(l.stage.as_str().to_owned()), l.done, l.total),
        None => (row.stage.clone(), row.done, row.total),
    };
    let label = stage.as_deref().and_then(|s| {
        sadtalker_pipeline::Stage::ALL
            .iter()
            .find(|k| k.as_str() == s)
            .map(|k| k.label())
    });
    let report_frames = row
        .report
        .as_ref()
        .and_then(|r| r.get("frames"))
        .and_then(Value::as_u64);
    let (frames_done, frames_total) = match (&live, stage.as_deref()) {
        _ if row.state == JobState::Done || row.state == JobState::Degraded => (report_frames, report_frames),
        (_, Some("render")) => (Some(done), total),
        (Some(l), Some("paste_back" | "enhance" | "encode")) => (l.frames, l.frames),
        _ => (None, None),
    };
    let eta = live
        .as_ref()
        .and_then(|l| l.eta_seconds(app.metrics.seconds_per_frame()));
    let has_video = matches!(row.state, JobState::Done | JobState::Degraded);
    json!({
        "id": row.id,
        "state": row.state.as_str(),
        "created": row.created,
        "started": row.started,
        "finished": row.finished,
        "attempts": row.attempts,
        "stage": stage,
        "stage_label": label,
        "done": done,
        "total": total,
        "frames_done": frames_done,
        "frames_total": frames_total,
        "eta_seconds": eta.map(|e| (e * 10.0).round() / 10.0),
        "options": row.options,
        "inputs": row.client_names,
        "error": row.error,
        "report": row.report,
        "video_url": has_video.then(|| format!("/v1/jobs/{}/video", row.id)),
    })
}

async fn load(app: &Arc<App>, id: &str) -> Result<JobRow, ApiError> {
    check_id(id)?;
    let (app, id) = (app.clone(), id.to_owned());
    blocking(move || app.db.get(&id).map_err(ApiError::from)?.ok_or_else(ApiError::not_found)).await
}

async fn get_job(State(app): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = load(&app, &id).await?;
    Ok(axum::Json(job_json(&app, &row)).into_response())
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list_jobs(State(app): Shared, Query(q): Query<ListQuery>) -> Result<Response, ApiError> {
    let limit = q.limit.unwrap_or(20).clamp(1, 200);
    let rows = blocking({
        let app = app.clone();
        move || app.db.list(limit).map_err(ApiError::from)
    })
    .await?;
    let jobs: Vec<Value> = rows.iter().map(|r| job_json(&app, r)).collect();
    Ok(axum::Json(json!({"jobs": jobs})).into_response())
}

async fn delete_job(State(app): Shared, Path(id): Path<String>) -> Result<Response, ApiError> {
    let row = load(&app, &id).await?;
    match row.state {
        JobState::Queued => {
            let cancelled = blocking({
                let (app, id) = (app.clone(), id.clone());
                move || {
                    let ok = app.db.cancel_queued(&id).map_err(ApiError::from)?;
                    if ok {
                        let _ = std::fs::remove_dir_all(app.job_dir(&id));
                    }
                    Ok(ok)
                }
            })
            .await?;
            if cancelled {
                return Ok(axum::Json(json!({"id": id, "state": "cancelled"})).into_response());
            }
            // It started meanwhile: stop it.
            if app.cancel_running(&id) {
                return Ok(cancelling(&id));
            }
            Err(conflict())
        }
        JobState::Running => {
            if app.cancel_running(&id) {
                Ok(cancelling(&id))
            } else {
                Err(conflict())
            }
        }
        _ => {
            blocking({
                let (app, id) = (app.clone(), id.clone());
                move || {
                    if app.db.delete_final(&id).map_err(ApiError::from)? {
                        let _ = std::fs::remove_dir_all(app.job_dir(&id));
                    }
                    Ok(())
                }
            })
            .await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
    }
}

fn cancelling(id: &str) -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": id, "state": "running", "cancelling": true})),
    )
        .into_response()
}

fn conflict() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "busy",
        "the job is changing state; try again".into(),
        "repeat the request",
    )
}

/// Server-sent events: `progress` whenever the job changes, then `end` with its final state.
async fn events(
    State(app): Shared,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    load(&app, &id).await?;
    // Bounded: a stream ends at the job's end, or after the job time limit plus an hour.
    let until = Instant::now() + app.cfg.limits.job_timeout + Duration::from_secs(3600);
    let state = (app, id, String::new(), false, true);
    let stream = futures_util::stream::unfold(state, move |(app, id, last, ended, first)| async move {
        if ended || Instant::now() > until {
            return None;
        }
        let mut last = last;
        let mut first = first;
        loop {
            if !first {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            first = false;
            let row = {
                let (app, id) = (app.clone(), id.clone());
                blocking(move || app.db.get(&id).map_err(ApiError::from)).await
            };
            let row = match row {
                Ok(Some(r)) => r,
                _ => {
                    let ev = Event::default().event("end").data(r#"{"state":"removed"}"#);
                    return Some((Ok(ev), (app, id, last, true, false)));
                }
            };
            let v = job_json(&app, &row).to_string();
            if row.state.is_final() {
                let ev = Event::default().event("end").data(v);
                return Some((Ok(ev), (app, id, last, true, false)));
            }
            if v != last || Instant::now() > until {
                last = v.clone();
                let ev = Event::default().event("progress").data(v);
                return Some((Ok(ev), (app, id, last, false, false)));
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// `bytes=a-b`, `bytes=a-`, `bytes=-n` → the inclusive range within `len`; `Err` when unsatisfiable.
fn parse_range(h: &str, len: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    // Several ranges: answer the first only (allowed: a server may ignore the others... or the header).
    let spec = spec.split(',').next()?.trim();
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    if len == 0 {
        return Some(Err(()));
    }
    let r = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        (len.saturating_sub(n), len - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            len - 1
        } else {
            b.parse::<u64>().ok()?.min(len - 1)
        };
        if start >= len || end < start {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(r))
}

#[derive(Deserialize)]
struct VideoQuery {
    download: Option<String>,
}

async fn video(
    State(app): Shared,
    Path(id): Path<String>,
    Query(q): Query<VideoQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let row = load(&app, &id).await?;
    if !matches!(row.state, JobState::Done | JobState::Degraded) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_ready",
            format!("the job is {}; the video exists once it is done", row.state.as_str()),
            "wait for the state `done` (GET /v1/jobs/{id} or its /events)",
        ));
    }
    let path = app.job_dir(&id).join("result.mp4");
    let mut file = tokio::fs::File::open(&path).await.map_err(|_| ApiError::not_found())?;
    let len = file
        .metadata()
        .await
        .map_err(|e| ApiError::internal(format!("video: {e}")))?
        .len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| parse_range(h, len));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, len.saturating_sub(1)),
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(Err(())) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    let count = if len == 0 { 0 } else { end - start + 1 };
    file.seek(SeekFrom::Start(start))
        .await
        .map_err(|e| ApiError::internal(format!("video: {e}")))?;
    let stream = futures_util::stream::unfold((file, count), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(64 * 1024) as usize];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(buf), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("video/mp4"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Ok(v) = HeaderValue::from_str(&count.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{len}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    let disposition = if q.download.is_some() { "attachment" } else { "inline" };
    if let Ok(v) = HeaderValue::from_str(&format!("{disposition}; filename=\"sadtalker-{id}.mp4\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-99", 1000), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=900-", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=-100", 1000), Some(Ok((900, 999))));
        assert_eq!(parse_range("bytes=0-5000", 1000), Some(Ok((0, 999))));
        assert_eq!(parse_range("bytes=1000-", 1000), Some(Err(())));
        assert_eq!(parse_range("items=0-1", 1000), None);
    }

    #[test]
    fn ids_are_hex_and_unique() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(check_id(&a).is_ok());
        assert!(check_id("../../etc").is_err());
    }
}
