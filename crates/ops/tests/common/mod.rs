//! Golden helpers shared by `parity.rs` and `avx2.rs`.

#![allow(clippy::unwrap_used, dead_code)] // tests: a panic is the failure report; each binary uses a part

use candle_core::Tensor;
use sadtalker_ops::*;
use sadtalker_parity::{Case, Golden, assert_close};

/// Single ops in f32: rounding differences only.
pub const TOL: f32 = 1e-5;

pub fn run_family(file: &str, run: impl Fn(&Case) -> Tensor) {
    let g = Golden::open(file);
    let mut n = 0;
    for case in g.cases() {
        let ours = run(&case);
        assert_close(
            &format!("{}/{}", case.op(), case.name()),
            &ours,
            &case.tensor("output"),
            TOL,
        );
        n += 1;
    }
    assert!(n > 0, "{file}: no cases");
}

pub fn arr<const N: usize>(v: Vec<usize>) -> [usize; N] {
    v.try_into()
        .unwrap_or_else(|v| panic!("expected {N} values, got {v:?}"))
}

pub fn conv_case<const N: usize>(c: &Case, path: ConvPath, calls: usize) -> Tensor {
    let (x, w, b) = (c.tensor("input"), c.tensor("weight"), c.try_tensor("bias"));
    let prm = ConvParams::<N> {
        stride: arr(c.usizes("stride")),
        padding: arr(c.usizes("padding")),
        dilation: arr(c.usizes("dilation")),
        groups: c.f64("groups") as usize,
    };
    let cache = ConvCache::pinned(path);
    let first = conv_cached(&x, &w, b.as_ref(), prm, &cache).unwrap();
    let first = first.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for _ in 1..calls {
        let again = conv_cached(&x, &w, b.as_ref(), prm, &cache).unwrap();
        assert_eq!(
            again.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            first,
            "{}: a second call differs",
            c.name()
        );
    }
    conv_cached(&x, &w, b.as_ref(), prm, &cache).unwrap()
}

/// Every conv golden case on kernel `path`, each case run `calls` times on one cache.
pub fn conv_family(path: ConvPath, calls: usize) {
    eprintln!("conv kernel {path:?} at {}", sadtalker_ops::isa::active());
    run_family("goldens/ops/conv.safetensors", |c| match c.op() {
        "conv1d" => conv_case::<1>(c, path, calls),
        "conv2d" => conv_case::<2>(c, path, calls),
        "conv3d" => conv_case::<3>(c, path, calls),
        op => panic!("unknown op {op}"),
    });
}
