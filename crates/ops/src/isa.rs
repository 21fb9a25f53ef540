//! The SIMD level our hand-written kernels (the direct convolution, Winograd) run at,
//! chosen once per process at run time.
//!
//! Why a ceiling: most laptops and desktops have AVX2 + FMA but no AVX-512, and CI and the
//! benchmark machines have AVX-512. `SADTALKER_ISA=avx2` (or `generic`) caps the level so the
//! AVX2 kernels can be measured and tested on an AVX-512 machine; the cap only ever lowers
//! the detected level. [`set_ceiling`] does the same from code (tests).
//!
//! Not covered: the `gemm` crate's kernels (1×1, strided and im2col convolutions, matmul)
//! detect the CPU on their own and keep AVX-512 where it exists.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// A kernel level, ordered: `Generic < Avx2 < Avx512`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// No hand-written SIMD kernel: the `gemm`-based paths only.
    Generic,
    /// AVX2 + FMA (256-bit).
    Avx2,
    /// AVX-512F (512-bit).
    Avx512,
}

impl Isa {
    /// The name used in `SADTALKER_ISA`, the bench's JSON and `doctor`.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a name as [`Isa::name`] writes it (case-insensitive).
    pub fn parse(s: &str) -> Option<Isa> {
        match s.trim().to_ascii_lowercase().as_str() {
            "generic" | "none" => Some(Isa::Generic),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx-512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    fn from_u8(v: u8) -> Isa {
        match v {
            0 => Isa::Generic,
            1 => Isa::Avx2,
            _ => Isa::Avx512,
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The highest level this CPU supports.
pub fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            // A ceiling can switch the process to the AVX2 kernels at any time, so AVX-512
            // also requires AVX2 + FMA (which every AVX-512 CPU has).
            let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
            if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if avx2 {
                return Isa::Avx2;
            }
        }
        Isa::Generic
    })
}

/// `u8::MAX`: no ceiling set from code yet (the environment decides).
static CEILING: AtomicU8 = AtomicU8::new(u8::MAX);

/// The ceiling from `SADTALKER_ISA`, if set to a known level (an unknown value is ignored;
/// `doctor` reports it).
pub fn env_ceiling() -> Option<Isa> {
    static ENV: OnceLock<Option<Isa>> = OnceLock::new();
    *ENV.get_or_init(|| std::env::var("SADTALKER_ISA").ok().as_deref().and_then(Isa::parse))
}

/// Caps the level for the rest of the process (it never raises it above [`detected`]).
/// Kernels already running finish at the old level.
pub fn set_ceiling(isa: Isa) {
    CEILING.store(isa as u8, Ordering::Relaxed);
}

/// [`set_ceiling`] to exactly `isa`, if this CPU has it; else an error saying so (tests that
/// must run a given level use it).
pub fn cap_at(isa: Isa) -> Result<(), String> {
    if detected() < isa {
        return Err(format!(
            "this CPU has no {isa} (best: {}): the {isa} kernels cannot run here",
            detected()
        ));
    }
    set_ceiling(isa);
    Ok(())
}

/// The level the kernels use now: the detected one, capped by [`set_ceiling`] or else by
/// `SADTALKER_ISA`.
pub fn active() -> Isa {
    let cap = match CEILING.load(Ordering::Relaxed) {
        u8::MAX => env_ceiling().unwrap_or(Isa::Avx512),
        v => Isa::from_u8(v),
    };
    detected().min(cap)
}

/// The environment that pins PyTorch (ATen's kernels and oneDNN's JIT) to the level ours run
/// at, for benchmarks that compare the two in one run: empty when ours run at the CPU's own
/// level.
pub fn torch_pin_env() -> &'static [(&'static str, &'static str)] {
    match active() {
        level if level == detected() => &[],
        Isa::Avx2 => &[("ATEN_CPU_CAPABILITY", "avx2"), ("ONEDNN_MAX_CPU_ISA", "AVX2")],
        _ => &[("ATEN_CPU_CAPABILITY", "default"), ("ONEDNN_MAX_CPU_ISA", "SSE41")],
    }
}

/// Calls `$body` (a plain-Rust function, vectorised by the compiler) compiled for `$isa`'s
/// target features: AVX-512F, else AVX2 + FMA. The caller must have checked that `$isa` is
/// available on this CPU.
macro_rules! at_level {
    ($isa:expr, $body:ident($($arg:ident: $ty:ty),* $(,)?)) => {{
        #[allow(clippy::too_many_arguments, unused_unsafe)]
        #[target_feature(enable = "avx512f")]
        unsafe fn avx512($($arg: $ty),*) {
            // SAFETY: forwarded from the caller of `at_level!`.
            unsafe { $body($($arg),*) }
        }
        #[allow(clippy::too_many_arguments, unused_unsafe)]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2($($arg: $ty),*) {
            // SAFETY: forwarded from the caller of `at_level!`.
            unsafe { $body($($arg),*) }
        }
        match $isa {
            Isa::Avx512 => avx512($($arg),*),
            _ => avx2($($arg),*),
        }
    }};
}
pub(crate) use at_level;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_order() {
        for isa in [Isa::Generic, Isa::Avx2, Isa::Avx512] {
            assert_eq!(Isa::parse(isa.name()), Some(isa));
            assert_eq!(Isa::from_u8(isa as u8), isa);
        }
        assert_eq!(Isa::parse(" AVX2 "), Some(Isa::Avx2));
        assert_eq!(Isa::parse("sse9"), None);
        assert!(Isa::Generic < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
    }

    #[test]
    fn the_active_level_never_exceeds_the_detected_one() {
        assert!(active() <= detected());
    }
}
