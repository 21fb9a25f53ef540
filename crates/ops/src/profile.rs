//! Opt-in timing of every op, for "where does the time go" reports (`sadtalker-bench`).
//!
//! Off by default: each op then pays one relaxed atomic load. [`enable`] turns it on for the
//! process; [`report`] returns the totals per op.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TOTALS: Mutex<BTreeMap<&'static str, (u64, f64)>> = Mutex::new(BTreeMap::new());

/// Starts collecting timings (and clears earlier ones).
pub fn enable() {
    if let Ok(mut t) = TOTALS.lock() {
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

/// Times the enclosing scope under `op` when profiling is on.
pub(crate) struct Scope {
    op: &'static str,
    start: Option<Instant>,
}

pub(crate) fn scope(op: &'static str) -> Scope {
    Scope {
        op,
        start: ENABLED.load(Ordering::Relaxed).then(Instant::now),
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if let Some(s) = self.start
            && let Ok(mut t) = TOTALS.lock()
        {
            let e = t.entry(self.op).or_insert((0, 0.0));
            e.0 += 1;
            e.1 += s.elapsed().as_secs_f64();
        }
    }
}
