//! Progress reporting: the store calls a [`Reporter`]; [`ConsoleReporter`] draws one indicatif bar per
//! file on a terminal, prints plain lines otherwise, or stays silent.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use indicatif::{HumanBytes, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives progress events of downloads, imports and verification. Every method has an empty default.
pub trait Reporter: Send + Sync {
    /// Work on `name` starts (or restarts): `total` bytes, `done` of them already there (a resumed part).
    fn begin(&self, name: &str, total: u64, done: u64) {
        let _ = (name, total, done);
    }
    /// `done` bytes of `name` are now there.
    fn advance(&self, name: &str, done: u64) {
        let _ = (name, done);
    }
    /// Something worth telling: a retry, a mirror switch, waiting for another process.
    fn note(&self, name: &str, message: &str) {
        let _ = (name, message);
    }
    /// Work on `name` ended; `outcome` says how (e.g. `verified`, `failed`).
    fn finish(&self, name: &str, outcome: &str) {
        let _ = (name, outcome);
    }
}

/// A reporter that says nothing.
pub struct Silent;
impl Reporter for Silent {}

/// How [`ConsoleReporter`] shows progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleMode {
    /// Bars on a terminal, plain lines when stderr is not a terminal.
    Auto,
    /// Plain lines (one per 10 % step, per retry, per end).
    Lines,
    /// Nothing.
    Quiet,
}

/// Progress on stderr.
pub struct ConsoleReporter {
    bars: Option<MultiProgress>,
    quiet: bool,
    state: Mutex<HashMap<String, FileState>>,
}

struct FileState {
    bar: Option<ProgressBar>,
    total: u64,
    /// Last 10 % step printed in line mode.
    step: u64,
}

impl ConsoleReporter {
    /// A reporter in the given mode.
    pub fn new(mode: ConsoleMode) -> Self {
        let bars = (mode == ConsoleMode::Auto && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        ConsoleReporter {
            bars,
            quiet: mode == ConsoleMode::Quiet,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: &str) {
        if self.quiet {
            return;
        }
        match &self.bars {
            // Printing through MultiProgress keeps the bars intact below the text.
            Some(bars) => {
                let _ = bars.println(text);
            }
            None => eprintln!("{text}"),
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg:32!} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>11} ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

impl Reporter for ConsoleReporter {
    fn begin(&self, name: &str, total: u64, done: u64) {
        if self.quiet {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let entry = state.entry(name.to_string()).or_insert_with(|| FileState {
            bar: self.bars.as_ref().map(|m| {
                let bar = m.add(ProgressBar::new(total));
                bar.set_style(bar_style());
                bar.set_message(name.to_string());
                bar
            }),
            total,
            step: u64::MAX,
        });
        entry.total = total;
        match &entry.bar {
            Some(bar) => {
                bar.set_length(total);
                bar.set_position(done);
                bar.reset_eta();
            }
            None => {
                if done > 0 {
                    eprintln!("{name}: resuming at {} of {}", HumanBytes(done), HumanBytes(total));
                } else {
                    eprintln!("{name}: started, {}", HumanBytes(total));
                }
                entry.step = done.saturating_mul(10) / total.max(1);
            }
        }
    }

    fn advance(&self, name: &str, done: u64) {
        if self.quiet {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = state.get_mut(name) else { return };
        match &entry.bar {
            Some(bar) => bar.set_position(done),
            None => {
                let step = done.saturating_mul(10) / entry.total.max(1);
                if step != entry.step && step < 10 {
                    entry.step = step;
                    eprintln!(
                        "{name}: {} % ({} of {})",
                        step * 10,
                        HumanBytes(done),
                        HumanBytes(entry.total)
                    );
                }
            }
        }
    }

    fn note(&self, name: &str, message: &str) {
        self.line(&format!("{name}: {message}"));
    }

    /// Clears the file's bar; the outcome itself is left to the caller's summary (stdout), so it is
    /// not printed twice.
    fn finish(&self, name: &str, _outcome: &str) {
        let entry = self.state.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
        if let Some(bar) = entry.and_then(|e| e.bar) {
            bar.finish_and_clear();
        }
    }
}
