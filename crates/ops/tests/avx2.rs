//! The AVX2 + FMA kernels (direct convolution, Winograd) against the same PyTorch goldens as
//! `parity.rs`. CI's machines have AVX-512, so this binary caps the kernel level at AVX2 for
//! its whole process (one test, so nothing else in it runs at another level).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use sadtalker_ops::ConvPath;
use sadtalker_ops::isa::{self, Isa};

#[test]
fn conv_matches_pytorch_on_the_avx2_kernels() {
    if let Err(why) = isa::cap_at(Isa::Avx2) {
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("skipped: {why}");
        return;
    }
    assert_eq!(isa::active(), Isa::Avx2);
    for (path, calls) in [(ConvPath::Auto, 2), (ConvPath::Direct, 1), (ConvPath::Winograd, 1)] {
        common::conv_family(path, calls);
    }
}
