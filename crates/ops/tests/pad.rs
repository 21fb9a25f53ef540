//! `reflection_pad2d` against `nn.ReflectionPad2d` (`tools/reference/gen_op_goldens_pad.py`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use candle_core::{Device, Tensor};
use sadtalker_ops::reflection_pad2d;
use sadtalker_parity::{Golden, assert_close};

#[test]
fn reflection_pad_matches_pytorch() {
    let g = Golden::open("goldens/ops/pad.safetensors");
    let mut n = 0;
    for case in g.cases() {
        let p = case.usizes("padding");
        let ours = reflection_pad2d(&case.tensor("input"), [p[0], p[1], p[2], p[3]]).unwrap();
        // A copy: exact.
        assert_close(case.name(), &ours, &case.tensor("output"), 0.0);
        n += 1;
    }
    assert!(n > 0);
}

#[test]
fn padding_as_large_as_the_axis_is_refused() {
    let x = Tensor::zeros((1, 1, 3, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
    let err = reflection_pad2d(&x, [4, 0, 0, 0]).unwrap_err().to_string();
    assert!(err.contains("smaller than the padded axes"), "{err}");
    assert!(reflection_pad2d(&x, [0, 0, 3, 0]).is_err());
}
