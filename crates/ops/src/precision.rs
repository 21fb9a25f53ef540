//! The arithmetic precision of the convolutions: fp32 (the default) or the opt-in bf16, for the
//! process ([`set`]) or for what one thread runs ([`with`]).
//!
//! bf16 rounds a convolution's inputs and weights to bfloat16 and accumulates in fp32 on AMX
//! tiles ([`crate::conv_amx`]); every other op stays fp32. It runs only where the CPU has AMX:
//! elsewhere fp32 runs instead and [`bf16_unavailable`] says why, so the caller can tell the
//! user. A layer picks its kernel on the thread that calls it (the kernels' own worker threads
//! never choose), so a thread's setting covers everything it runs.

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};

/// The precision of the convolutions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// float32 throughout (matches the reference to float rounding).
    #[default]
    Fp32,
    /// bfloat16 operands, float32 accumulation.
    Bf16,
}

impl Precision {
    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Parses a name as [`Precision::name`] writes it (case-insensitive).
    pub fn parse(s: &str) -> Option<Precision> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Some(Precision::Fp32),
            "bf16" | "bfloat16" => Some(Precision::Bf16),
            _ => None,
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Precision::parse(s).ok_or_else(|| format!("`{}`: fp32 or bf16", s.trim()))
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The process's precision (0: fp32, 1: bf16).
static PROCESS: AtomicU8 = AtomicU8::new(0);

thread_local! {
    /// This thread's precision inside [`with`].
    static THREAD: Cell<Option<Precision>> = const { Cell::new(None) };
}

/// Why bf16 cannot run on this machine, or `None` when it can.
pub fn bf16_unavailable() -> Option<&'static str> {
    if crate::conv_amx::available() {
        None
    } else {
        Some("this CPU (or OS) offers no AMX bf16 tiles, which the bf16 convolutions need")
    }
}

/// The precision that runs when `p` is asked for: `Bf16` falls back to `Fp32` where
/// [`bf16_unavailable`].
pub fn effective(p: Precision) -> Precision {
    match p {
        Precision::Bf16 if bf16_unavailable().is_some() => Precision::Fp32,
        p => p,
    }
}

/// Sets the precision for the rest of the process (threads inside [`with`] keep theirs) and
/// returns the one that will run ([`effective`]). Convolutions already running finish at the
/// old precision.
pub fn set(p: Precision) -> Precision {
    let effective = effective(p);
    PROCESS.store(effective as u8, Ordering::Relaxed);
    effective
}

/// Runs `f` with precision `p` ([`effective`]) for the convolutions this thread calls, then
/// restores what was set before (also when `f` panics).
pub fn with<R>(p: Precision, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Precision>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD.set(self.0);
        }
    }
    let _restore = Restore(THREAD.replace(Some(effective(p))));
    f()
}

/// The precision the convolutions called from this thread run at now.
pub fn active() -> Precision {
    THREAD.get().unwrap_or(match PROCESS.load(Ordering::Relaxed) {
        0 => Precision::Fp32,
        _ => Precision::Bf16,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for p in [Precision::Fp32, Precision::Bf16] {
            assert_eq!(Precision::parse(p.name()), Some(p));
        }
        assert_eq!(Precision::parse(" BF16 "), Some(Precision::Bf16));
        assert_eq!(Precision::parse("fp16"), None);
    }

    #[test]
    fn with_scopes_the_precision_to_this_thread_and_restores_it() {
        let before = active();
        let inside = with(Precision::Bf16, || {
            // Another thread keeps the process's precision.
            let other = std::thread::spawn(active).join().unwrap();
            assert_eq!(other, before);
            active()
        });
        assert_eq!(inside, effective(Precision::Bf16));
        assert_eq!(active(), before);
        let nested = with(Precision::Bf16, || with(Precision::Fp32, active));
        assert_eq!(nested, Precision::Fp32);
        let caught = std::panic::catch_unwind(|| with(Precision::Bf16, || panic!("boom")));
        assert!(caught.is_err());
        assert_eq!(active(), before);
    }
}
