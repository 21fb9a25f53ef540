//! The renderer parity checks of `parity.rs` with the kernel level capped at AVX2 + FMA, so the
//! AVX2 convolution kernels are exercised on CI's AVX-512 machines (one test: the cap is
//! process-wide, and nothing else in this binary runs at another level).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{FRAME_TOL, Motion, check};
use sadtalker_ops::isa::{self, Isa};

#[test]
fn renderer_matches_the_reference_on_the_avx2_kernels() {
    if let Err(why) = isa::cap_at(Isa::Avx2) {
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    assert_eq!(isa::active(), Isa::Avx2);
    check("goldens/render/reduced.safetensors", FRAME_TOL, Motion::Recorded);
    check("goldens/render/full_256.safetensors", FRAME_TOL, Motion::Omitted);
}
