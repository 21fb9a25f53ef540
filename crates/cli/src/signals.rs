//! SIGINT / SIGTERM during `generate` and `batch`: the first asks the run to stop (cooperatively, after
//! the current frame or at the next stage), so that the writers' guards remove their temporary files and
//! a batch keeps its report; the exit code is then 130 / 143. A second signal, for a stage that cannot
//! stop early (loading models), removes the live temporary files (`sadtalker_fsio`'s registry) and exits
//! at once with the same codes.

use std::sync::atomic::{AtomicI32, Ordering};

/// SIGINT's number (POSIX).
pub const SIGINT: i32 = 2;
/// SIGTERM's number (POSIX).
pub const SIGTERM: i32 = 15;

/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The signal that asked the run to stop, if one came.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

fn name(signal: i32) -> &'static str {
    if signal == SIGTERM { "SIGTERM" } else { "SIGINT" }
}

/// Not Unix: Ctrl-C keeps its default (the process ends at once).
#[cfg(not(unix))]
pub fn install() {}

/// Starts watching SIGINT and SIGTERM (on a thread of its own, so no work is done in a signal handler).
/// Without it, either signal kills the process where it stands and leaves its `.partial` files.
#[cfg(unix)]
pub fn install() {
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: cannot watch for Ctrl-C ({e}): an interrupt may leave temporary files");
            return;
        }
    };
    let spawned = std::thread::Builder::new().name("signals".into()).spawn(move || {
        for signal in signals.forever() {
            if RECEIVED
                .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
            {
                eprintln!(
                    "\n{}: stopping after the current step and removing temporary files (send it again to \
                         stop at once)",
                    name(signal)
                );
            } else {
                // Destructors do not run on exit: remove what they would have.
                sadtalker_fsio::remove_live_files();
                eprintln!("\n{}: stopped at once; temporary files removed", name(signal));
                std::process::exit(128 + signal);
            }
        }
    });
    if let Err(e) = spawned {
        eprintln!("warning: cannot watch for Ctrl-C ({e}): an interrupt may leave temporary files");
    }
}
