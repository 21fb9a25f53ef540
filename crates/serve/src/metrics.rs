//! Counters for `/metrics` (Prometheus text format).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

use sadtalker_pipeline::source_cache::CacheStats;

use crate::db::JobState;

#[derive(Default)]
struct Counters {
    jobs_finished: u64,
    frames: u64,
    job_seconds: f64,
    refused: BTreeMap<&'static str, u64>,
    last_seconds_per_frame: Option<f64>,
}

/// What this process has done.
#[derive(Default)]
pub struct Metrics {
    c: Mutex<Counters>,
}

impl Metrics {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.c.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A job wrote its video: `frames` in `seconds` of wall time.
    pub fn job_finished(&self, frames: u64, seconds: f64) {
        let mut c = self.lock();
        c.jobs_finished += 1;
        c.frames += frames;
        c.job_seconds += seconds;
        if frames > 0 {
            c.last_seconds_per_frame = Some(seconds / frames as f64);
        }
    }

    /// A submission was refused (`queue_full`, `too_large`, `bad_input`, `unauthorized`).
    pub fn refused(&self, reason: &'static str) {
        *self.lock().refused.entry(reason).or_default() += 1;
    }

    /// Whole-job seconds per video frame over the jobs this process finished.
    pub fn seconds_per_frame(&self) -> Option<f64> {
        let c = self.lock();
        (c.frames > 0).then(|| c.job_seconds / c.frames as f64)
    }

    /// The exposition text.
    pub fn render(&self, counts: &BTreeMap<JobState, u64>, uptime: f64, workers: usize, cache: CacheStats) -> String {
        let c = self.lock();
        let mut s = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} {kind}");
            for (labels, v) in lines {
                let _ = writeln!(s, "{name}{labels} {v}");
            }
        };
        let queued = counts.get(&JobState::Queued).copied().unwrap_or(0);
        metric(
            "sadtalker_queue_length",
            "gauge",
            "Jobs waiting for a worker.",
            vec![(String::new(), queued.to_string())],
        );
        metric(
            "sadtalker_jobs",
            "gauge",
            "Jobs in the queue database, by state.",
            JobState::ALL
                .iter()
                .map(|st| {
                    (
                        format!("{{state=\"{}\"}}", st.as_str()),
                        counts.get(st).copied().unwrap_or(0).to_string(),
                    )
                })
                .collect(),
        );
        metric(
            "sadtalker_workers",
            "gauge",
            "Worker threads.",
            vec![(String::new(), workers.to_string())],
        );
        metric(
            "sadtalker_jobs_finished_total",
            "counter",
            "Jobs that wrote their video since start.",
            vec![(String::new(), c.jobs_finished.to_string())],
        );
        metric(
            "sadtalker_frames_total",
            "counter",
            "Video frames written since start.",
            vec![(String::new(), c.frames.to_string())],
        );
        metric(
            "sadtalker_job_seconds_total",
            "counter",
            "Wall-clock seconds of the finished jobs.",
            vec![(String::new(), format!("{:.3}", c.job_seconds))],
        );
        let spf = if c.frames > 0 {
            c.job_seconds / c.frames as f64
        } else {
            0.0
        };
        metric(
            "sadtalker_seconds_per_frame",
            "gauge",
            "Whole-job wall-clock seconds per video frame (all finished jobs since start; 0 before the first).",
            vec![(String::new(), format!("{spf:.4}"))],
        );
        metric(
            "sadtalker_last_job_seconds_per_frame",
            "gauge",
            "Seconds per frame of the last finished job.",
            vec![(String::new(), format!("{:.4}", c.last_seconds_per_frame.unwrap_or(0.0)))],
        );
        metric(
            "sadtalker_submissions_refused_total",
            "counter",
            "Submissions refused, by reason.",
            ["queue_full", "too_large", "bad_input", "unauthorized"]
                .iter()
                .map(|r| {
                    (
                        format!("{{reason=\"{r}\"}}"),
                        c.refused.get(r).copied().unwrap_or(0).to_string(),
                    )
                })
                .collect(),
        );
        metric(
            "sadtalker_source_cache_lookups_total",
            "counter",
            "Jobs that looked up their prepared portrait, by result (hit: preprocessing skipped).",
            vec![
                ("{result=\"hit\"}".to_owned(), cache.hits.to_string()),
                ("{result=\"miss\"}".to_owned(), cache.misses.to_string()),
            ],
        );
        metric(
            "sadtalker_source_cache_entries",
            "gauge",
            "Prepared portraits held (at most --source-cache).",
            vec![(String::new(), cache.entries.to_string())],
        );
        metric(
            "sadtalker_uptime_seconds",
            "gauge",
            "Seconds since the server started.",
            vec![(String::new(), format!("{uptime:.1}"))],
        );
        s
    }
}
