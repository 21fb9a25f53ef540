//! The AVX2 + FMA kernels (direct convolution, Winograd) against the same PyTorch goldens as
//! `parity.rs`. CI's machines have AVX-512, so this binary caps the kernel level at AVX2 for
//! its whole process (one test, so nothing else in it runs at another level).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use sadtalker_ops::ConvPath;
use sadtalker_ops::isa::{self, Isa};

#[test]
fn conv_matches_pytorch_on_the_avx2_kernels() {
    if isa::detected() < Isa::Avx2 {
        assert!(
            std::env::var_os("CI").is_none(),
            "this CPU has no AVX2 + FMA: the AVX2 kernels cannot be tested here"
        );
        eprintln!("skipped: this CPU has no AVX2 + FMA");
        return;
    }
    isa::set_ceiling(Isa::Avx2);
    assert_eq!(isa::active(), Isa::Avx2);
    for (path, calls) in [(ConvPath::Auto, 2), (ConvPath::Direct, 1), (ConvPath::Winograd, 1)] {
        common::conv_family(path, calls);
    }
}
