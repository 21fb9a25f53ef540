//! The HTTP API end to end, in process, on the built-in test networks (a job takes about a second).

mod common;
use common::*;

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(180);

#[test]
fn a_job_goes_from_submit_to_a_video_with_audio() {
    let s = start(|_| {});
    let (img, lm, audio) = (portrait(), landmarks(), speech());
    let r = s.submit(&job_parts(
        &img,
        &lm,
        &audio,
        &[Part::Text("seed", "3"), Part::Text("pose-style", "2")],
    ));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let id = r.json()["id"].as_str().expect("id").to_owned();

    // The event stream: progress events, then `end` with the final state.
    let events = {
        let url = format!("{}/v1/jobs/{id}/events", s.base);
        let mut resp = agent().get(&url).call().expect("events");
        assert_eq!(resp.status().as_u16(), 200);
        resp.body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .expect("event stream")
    };
    assert!(events.contains("event: end"), "{events}");
    let end = events
        .split("event: end\ndata: ")
        .nth(1)
        .and_then(|t| t.lines().next())
        .expect("end data");
    let end: serde_json::Value = serde_json::from_str(end).expect("end json");
    assert_eq!(end["state"], "done", "{end}");

    let v = s.wait_final(&id, LIMIT);
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["options"]["pose_style"], "2");
    assert_eq!(v["inputs"]["image"], "astronaut.png");
    assert_eq!(v["attempts"], 1);
    let frames = v["report"]["frames"].as_u64().expect("frames");
    assert_eq!(v["frames_done"].as_u64(), Some(frames));
    assert!(frames >= 3, "{v}");

    let video = s.get(&format!("/v1/jobs/{id}/video"));
    assert_eq!(video.status, 200);
    let path = s.data.path().join("downloaded.mp4");
    std::fs::write(&path, &video.body).expect("write");
    let decoded = sadtalker_video::read_video(&path).expect("the video decodes");
    assert_eq!(decoded.frames.len() as u64, frames);
    assert_eq!(decoded.frames[0].width(), 64);
    let info = sadtalker_video::Mp4Reader::open(&path).expect("mp4").info().clone();
    assert!(info.has_audio, "no audio track");
    let sound = sadtalker_audio::load_speech(&path, &Default::default()).expect("the audio track decodes");
    assert!(sound.seconds() > 0.1, "{} s of audio", sound.seconds());

    // Range requests (players seek with them).
    let part = s.get_range(&format!("/v1/jobs/{id}/video"), "bytes=10-109");
    assert_eq!(part.status, 206);
    assert_eq!(part.body, video.body[10..110]);
    assert_eq!(
        part.content_range.as_deref(),
        Some(format!("bytes 10-109/{}", video.body.len()).as_str())
    );
    let tail = s.get_range(&format!("/v1/jobs/{id}/video"), "bytes=-16");
    assert_eq!(tail.body, video.body[video.body.len() - 16..]);
    let past = s.get_range(&format!("/v1/jobs/{id}/video"), &format!("bytes={}-", video.body.len()));
    assert_eq!(past.status, 416);

    let list = s.get("/v1/jobs").json();
    assert_eq!(list["jobs"].as_array().map(Vec::len), Some(1));
    // Removing a finished job removes its files.
    assert_eq!(s.delete(&format!("/v1/jobs/{id}")).status, 204);
    assert_eq!(s.get(&format!("/v1/jobs/{id}")).status, 404);
    assert!(s.stored().is_empty(), "{:?}", s.stored());
}

#[test]
fn queued_and_running_jobs_can_be_cancelled() {
    let s = start(|c| c.start_paused = true);
    let (img, lm, short, long) = (portrait(), landmarks(), speech(), long_speech());
    let first = s.submit(&job_parts(&img, &lm, &short, &[])).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let second = s.submit(&job_parts(&img, &lm, &long, &[])).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    // Queued: cancelled at once, its inputs gone.
    let r = s.delete(&format!("/v1/jobs/{first}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["state"], "cancelled");
    assert_eq!(s.get(&format!("/v1/jobs/{first}")).json()["state"], "cancelled");
    assert!(!s.data.path().join("jobs").join(&first).exists());

    // Running: stopped inside the frame loop.
    s.server().resume();
    s.wait_for(&second, LIMIT, |v| {
        v["stage"] == "render" && v["frames_done"].as_u64() > Some(0)
    });
    let r = s.delete(&format!("/v1/jobs/{second}"));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let v = s.wait_final(&second, LIMIT);
    assert_eq!(v["state"], "cancelled", "{v}");
    assert!(v["frames_done"].as_u64() < v["frames_total"].as_u64(), "{v}");
    assert!(!s.data.path().join("jobs").join(&second).join("result.mp4").exists());
    assert_eq!(s.get(&format!("/v1/jobs/{second}/video")).status, 409);
}

#[test]
fn bad_inputs_are_refused_with_the_problem_and_leave_nothing_behind() {
    let s = start(|_| {});
    let (img, lm, audio) = (portrait(), landmarks(), speech());
    let check = |parts: &[Part<'_>], status: u16, code: &str| {
        let r = s.submit(parts);
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let e = &r.json()["error"];
        assert_eq!(e["code"], code, "{e}");
        assert!(!e["message"].as_str().unwrap_or_default().is_empty(), "{e}");
        assert!(!e["hint"].as_str().unwrap_or_default().is_empty(), "{e}");
        // No server path in what the client sees.
        assert!(!e.to_string().contains(&s.data.path().display().to_string()), "{e}");
        e.clone()
    };
    // Types come from the content: a WAV named .png is no portrait.
    check(
        &[
            Part::File("image", "face.png", &audio),
            Part::File("audio", "a.wav", &audio),
        ],
        415,
        "unsupported_type",
    );
    let mut broken_png = b"\x89PNG\r\n\x1a\n".to_vec();
    broken_png.extend_from_slice(&[0u8; 100]);
    check(
        &[
            Part::File("image", "face.png", &broken_png),
            Part::File("audio", "a.wav", &audio),
        ],
        422,
        "image_unreadable",
    );
    let e = check(&[Part::File("image", "face.png", &img)], 400, "bad_request");
    assert!(e["message"].as_str().unwrap_or_default().contains("audio"), "{e}");
    let e = check(
        &job_parts(&img, &lm, &audio, &[Part::Text("pose_style", "99")]),
        422,
        "bad_input",
    );
    assert!(e["message"].as_str().unwrap_or_default().contains("pose"), "{e}");
    check(
        &job_parts(&img, &lm, &audio, &[Part::Text("colour", "red")]),
        422,
        "bad_input",
    );
    check(
        &job_parts(&img, &lm, &audio, &[Part::Text("size", "512")]),
        422,
        "bad_input",
    );
    check(&job_parts(&img, b"1 2 3", &audio, &[]), 422, "bad_landmarks");
    let mut silence_header = audio[..44].to_vec();
    silence_header.extend_from_slice(&[0u8; 10]);
    check(
        &[
            Part::File("image", "f.png", &img),
            Part::File("audio", "a.wav", &silence_header),
        ],
        422,
        "audio_too_short",
    );
    // A path as a file name is only a label.
    let r = s.submit(&[
        Part::File("image", "../../../../tmp/evil.png", &img),
        Part::File("audio", "/etc/passwd", &audio),
        Part::File("landmarks", "lm.txt", &lm),
    ]);
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let v = s.get(&format!("/v1/jobs/{id}")).json();
    assert_eq!(v["inputs"]["image"], "evil.png");
    let mut names: Vec<String> = std::fs::read_dir(s.data.path().join("jobs").join(&id))
        .expect("job folder")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "result.mp4")
        .collect();
    names.sort();
    assert_eq!(names, ["audio.wav", "image.png", "landmarks.txt"]);
    s.wait_final(&id, LIMIT);
    assert_eq!(s.delete(&format!("/v1/jobs/{id}")).status, 204);
    // Nothing is left of the refused submissions.
    assert!(s.stored().is_empty(), "{:?}", s.stored());
    assert_eq!(s.get("/v1/jobs").json()["jobs"].as_array().map(Vec::len), Some(0));
    assert_eq!(s.get("/v1/jobs/0123").status, 404);
    assert_eq!(s.get("/v1/jobs/..%2F..%2Fqueue.sqlite3").status, 404);
}

#[test]
fn a_job_that_fails_reports_the_code_and_hint_of_the_cli() {
    let s = start(|_| {});
    let (img, audio) = (portrait(), speech());
    // Without landmarks the test networks find no face.
    let r = s.submit(&[Part::File("image", "f.png", &img), Part::File("audio", "a.wav", &audio)]);
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let v = s.wait_final(&id, LIMIT);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "no_face", "{v}");
    assert_eq!(v["error"]["stage"], "preprocess");
    assert_eq!(v["error"]["hint"], sadtalker_pipeline::Problem::NoFace.hint());
    // With the still fallback the same job is degraded, with a video.
    let r = s.submit(&[
        Part::File("image", "f.png", &img),
        Part::File("audio", "a.wav", &audio),
        Part::Text("fallback", "still"),
    ]);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let v = s.wait_final(&id, LIMIT);
    assert_eq!(v["state"], "degraded", "{v}");
    assert_eq!(v["error"]["code"], "no_face");
    assert_eq!(s.get(&format!("/v1/jobs/{id}/video")).status, 200);
}

#[test]
fn a_token_is_needed_for_every_api_call() {
    let mut s = start(|c| c.token = Some("s3cret".into()));
    s.token = None;
    for path in ["/v1/jobs", "/v1/jobs/00000000000000000000000000000000", "/metrics"] {
        assert_eq!(s.get(path).status, 401, "{path}");
    }
    let (img, lm, audio) = (portrait(), landmarks(), speech());
    assert_eq!(s.submit(&job_parts(&img, &lm, &audio, &[])).status, 401);
    s.token = Some("wrong".into());
    assert_eq!(s.get("/v1/jobs").status, 401);
    s.token = Some("s3cret".into());
    assert_eq!(s.get("/v1/jobs").status, 200);
    // The page, health and the API description are open.
    s.token = None;
    for path in ["/", "/healthz", "/openapi.json"] {
        assert_eq!(s.get(path).status, 200, "{path}");
    }
    assert!(s.stored().is_empty());
}

#[test]
fn oversized_uploads_pictures_and_recordings_are_refused() {
    let s = start(|c| {
        c.limits.max_upload_bytes = 200_000;
        c.limits.max_image_pixels = 200 * 200;
        c.limits.max_audio_seconds = 0.08;
    });
    let (img, lm, audio) = (portrait(), landmarks(), speech());
    let big = vec![0u8; 300_000];
    let r = s.submit(&job_parts(&img, &lm, &audio, &[Part::File("ref_pose", "p.mp4", &big)]));
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "upload_too_large");
    let r = s.submit(&job_parts(&img, &lm, &audio, &[]));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["code"], "image_too_large", "{}", r.json());
    let s = start(|c| c.limits.max_audio_seconds = 0.08);
    let r = s.submit(&job_parts(&img, &lm, &audio, &[]));
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["error"]["code"], "audio_too_long", "{}", r.json());
    assert!(s.stored().is_empty());
}

#[test]
fn a_full_queue_answers_429_with_retry_after() {
    let s = start(|c| {
        c.start_paused = true;
        c.limits.max_queue = 2;
    });
    let (img, lm, audio) = (portrait(), landmarks(), speech());
    assert_eq!(s.submit(&job_parts(&img, &lm, &audio, &[])).status, 202);
    assert_eq!(s.submit(&job_parts(&img, &lm, &audio, &[])).status, 202);
    let r = s.submit(&job_parts(&img, &lm, &audio, &[]));
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], "queue_full");
    let after: u64 = r
        .retry_after
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(after >= 1);
    let m = String::from_utf8(s.get("/metrics").body).expect("text");
    assert!(m.contains("sadtalker_queue_length 2"), "{m}");
    assert!(
        m.contains("sadtalker_submissions_refused_total{reason=\"queue_full\"} 1"),
        "{m}"
    );
}

/// 50 clients at once against a queue cap of 20: exactly 20 accepted and all of them completed, 30
/// refused with 429, none lost. The workers are held while the clients submit, so that no job finishes
/// (and frees a place) during the burst.
#[test]
fn load_50_concurrent_submissions_with_a_cap_of_20() {
    let s = start(|c| {
        c.start_paused = true;
        c.limits.max_queue = 20;
        c.workers = 2;
        c.retention.keep = 100;
    });
    let (img, lm, audio) = (Arc::new(portrait()), Arc::new(landmarks()), Arc::new(speech()));
    let barrier = Arc::new(Barrier::new(50));
    let t = Instant::now();
    let base = s.base.clone();
    let handles: Vec<_> = (0..50)
        .map(|_| {
            let (img, lm, audio, barrier, base) =
                (img.clone(), lm.clone(), audio.clone(), barrier.clone(), base.clone());
            std::thread::spawn(move || {
                let (ct, body) = multipart(&job_parts(&img, &lm, &audio, &[]));
                barrier.wait();
                let mut r = agent()
                    .post(&format!("{base}/v1/jobs"))
                    .header("Content-Type", &ct)
                    .send(&body[..])
                    .expect("request");
                let status = r.status().as_u16();
                let retry = r.headers().get("retry-after").is_some();
                let body = r.body_mut().read_to_string().unwrap_or_default();
                (status, retry, body)
            })
        })
        .collect();
    let results: Vec<(u16, bool, String)> = handles.into_iter().map(|h| h.join().expect("client")).collect();
    let submit_secs = t.elapsed().as_secs_f64();
    let accepted: Vec<String> = results
        .iter()
        .filter(|r| r.0 == 202)
        .map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.2).expect("json")["id"]
                .as_str()
                .expect("id")
                .to_owned()
        })
        .collect();
    let refused = results.iter().filter(|r| r.0 == 429 && r.1).count();
    assert_eq!(
        accepted.len(),
        20,
        "{:?}",
        results.iter().map(|r| r.0).collect::<Vec<_>>()
    );
    assert_eq!(refused, 30);
    s.server().resume();
    let t2 = Instant::now();
    for id in &accepted {
        let v = s.wait_final(id, LIMIT);
        assert_eq!(v["state"], "done", "{v}");
    }
    let run_secs = t2.elapsed().as_secs_f64();
    let list = s.get("/v1/jobs?limit=100").json();
    let jobs = list["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 20);
    assert!(jobs.iter().all(|j| j["state"] == "done"));
    println!(
        "load: 50 submitted at once, {} accepted, {refused} refused with 429, {} completed; submissions {submit_secs:.2} s, \
         the 20 jobs {run_secs:.1} s on 2 workers",
        accepted.len(),
        jobs.len()
    );
}

#[test]
fn health_readiness_metrics_and_the_api_description() {
    let s = start(|c| c.retention.keep = 1);
    assert_eq!(s.get("/healthz").json()["ok"], true);
    let t = Instant::now();
    loop {
        let r = s.get("/readyz");
        if r.status == 200 {
            assert_eq!(r.json()["ready"], true);
            break;
        }
        assert_eq!(r.status, 503);
        assert!(t.elapsed() < LIMIT, "never ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    let api = s.get("/openapi.json").json();
    assert!(api["paths"]["/v1/jobs"]["post"].is_object(), "{api}");
    let page = String::from_utf8(s.get("/").body).expect("html");
    assert!(page.contains("<form") && page.contains("/v1/jobs"));

    // Retention: with --keep 1 the older finished job goes, with its files.
    let (img, lm, audio) = (portrait(), landmarks(), speech());
    let a = s.submit(&job_parts(&img, &lm, &audio, &[])).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.wait_final(&a, LIMIT);
    let b = s.submit(&job_parts(&img, &lm, &audio, &[])).json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    s.wait_final(&b, LIMIT);
    assert_eq!(s.get(&format!("/v1/jobs/{a}")).status, 404);
    assert!(!s.data.path().join("jobs").join(&a).exists());
    let second = s.get(&format!("/v1/jobs/{b}")).json();
    assert_eq!(second["state"], "done");
    // The same portrait again: its preparation came from the source cache.
    assert_eq!(second["report"]["source_cached"], true, "{second}");

    let m = String::from_utf8(s.get("/metrics").body).expect("text");
    for name in [
        "sadtalker_source_cache_lookups_total{result=\"hit\"} 1",
        "sadtalker_source_cache_lookups_total{result=\"miss\"} 1",
        "sadtalker_source_cache_entries 1",
        "sadtalker_queue_length 0",
        "sadtalker_jobs{state=\"done\"} 1",
        "sadtalker_jobs_finished_total 2",
        "sadtalker_seconds_per_frame",
        "sadtalker_uptime_seconds",
    ] {
        assert!(m.contains(name), "{name} not in\n{m}");
    }
}

#[test]
fn a_job_past_the_time_limit_is_stopped_and_failed() {
    let s = start(|c| c.limits.job_timeout = Duration::from_millis(1500));
    let (img, lm, audio) = (portrait(), landmarks(), long_speech());
    let r = s.submit(&job_parts(&img, &lm, &audio, &[]));
    assert_eq!(r.status, 202);
    let id = r.json()["id"].as_str().expect("id").to_owned();
    let v = s.wait_final(&id, LIMIT);
    assert_eq!(v["state"], "failed", "{v}");
    assert_eq!(v["error"]["code"], "time_limit", "{v}");
    assert!(!s.data.path().join("jobs").join(&id).join("result.mp4").exists());
}

#[test]
fn cors_headers_only_when_asked_for() {
    let origin_of = |base: &str, method: &str| {
        let url = format!("{base}/v1/jobs");
        let r = match method {
            "OPTIONS" => agent().options(&url).header("Origin", "https://app.example").call(),
            _ => agent().get(&url).header("Origin", "https://app.example").call(),
        }
        .expect("request");
        let allow = r
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (r.status().as_u16(), allow)
    };
    let off = start(|_| {});
    assert_eq!(origin_of(&off.base, "GET"), (200, None));
    let on = start(|c| c.cors_origin = Some("https://app.example".into()));
    assert_eq!(
        origin_of(&on.base, "GET"),
        (200, Some("https://app.example".to_owned()))
    );
    assert_eq!(
        origin_of(&on.base, "OPTIONS"),
        (204, Some("https://app.example".to_owned()))
    );
    let other = start(|c| c.cors_origin = Some("https://other.example".into()));
    assert_eq!(origin_of(&other.base, "GET").1, None);
}
