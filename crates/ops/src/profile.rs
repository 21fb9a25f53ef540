//! Opt-in timing of every op, for "where does the time go" reports (`sadtalker-bench`).
//!
//! Off by default: each op then pays one relaxed atomic load. [`enable`] turns it on for the
//! process; [`report`] returns the totals per op.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

static ENABLED: AtomicBool = AtomicBool::new(false);
static CLOCK: OnceLock<fn() -> f64> = OnceLock::new();
static TOTALS: Mutex<BTreeMap<&'static str, (u64, f64)>> = Mutex::new(BTreeMap::new());
/// The same totals split finer, by a description the op gives (a convolution's shape and kernel).
static DETAILS: Mutex<BTreeMap<String, (u64, f64)>> = Mutex::new(BTreeMap::new());

/// Starts collecting timings read from `clock` (seconds from any origin: wall time, or the
/// process's CPU time), and clears earlier ones. The first clock given is kept.
pub fn enable(clock: fn() -> f64) {
    let _ = CLOCK.set(clock);
    if let Ok(mut t) = TOTALS.lock() {
        t.clear();
    }
    if let Ok(mut t) = DETAILS.lock() {
        t.clear();
    }
    ENABLED.store(true, Ordering::Relaxed);
}

/// Calls and seconds per op since [`enable`], slowest first.
pub fn report() -> Vec<(&'static str, u64, f64)> {
    let mut v: Vec<_> = TOTALS
        .lock()
        .map(|t| t.iter().map(|(k, &(n, s))| (*k, n, s)).collect())
        .unwrap_or_default();
    v.sort_by(|a, b| b.2.total_cmp(&a.2));
    v
}

/// Calls and seconds per detailed description (see [`scope_detail`]) since [`enable`],
/// slowest first.
pub fn report_detail() -> Vec<(String, u64, f64)> {
    let mut v: Vec<_> = DETAILS
        .lock()
        .map(|t| t.iter().map(|(k, &(n, s))| (k.clone(), n, s)).collect())
        .unwrap_or_default();
    v.sort_by(|a, b| b.2.total_cmp(&a.2));
    v
}

/// Times the enclosing scope under `op` when profiling is on.
pub(crate) struct Scope {
    op: &'static str,
    detail: Option<String>,
    start: Option<(fn() -> f64, f64)>,
}

pub(crate) fn scope(op: &'static str) -> Scope {
    let start = if ENABLED.load(Ordering::Relaxed) {
        CLOCK.get().map(|&c| (c, c()))
    } else {
        None
    };
    Scope {
        op,
        detail: None,
        start,
    }
}

/// [`scope`], also counted under the description `detail` gives (only called when profiling
/// is on, so formatting it costs nothing otherwise).
pub(crate) fn scope_detail(op: &'static str, detail: impl FnOnce() -> String) -> Scope {
    let mut s = scope(op);
    if s.start.is_some() {
        s.detail = Some(detail());
    }
    s
}

fn add<K: Ord>(map: &Mutex<BTreeMap<K, (u64, f64)>>, key: K, secs: f64) {
    if let Ok(mut t) = map.lock() {
        let e = t.entry(key).or_insert((0, 0.0));
        e.0 += 1;
        e.1 += secs;
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some((clock, s)) = self.start {
            let secs = clock() - s;
            add(&TOTALS, self.op, secs);
            if let Some(d) = self.detail.take() {
                add(&DETAILS, d, secs);
            }
        }
    }
}
