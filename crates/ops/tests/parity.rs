//! Every op against PyTorch goldens (`tools/reference/gen_op_goldens.py`).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use sadtalker_ops::*;

mod common;
use common::{arr, conv_family, run_family};

/// Every kernel (see `ConvPath`) on every case; under `Auto` each case runs twice on one cache, as a
/// layer does, and both calls must give the same result (the kernel never depends on history).
#[test]
fn conv_matches_pytorch() {
    for (path, calls) in [
        (ConvPath::Auto, 2),
        (ConvPath::Gemm, 1),
        (ConvPath::Direct, 1),
        (ConvPath::Winograd, 1),
    ] {
        conv_family(path, calls);
    }
}

#[test]
fn conv_transpose_matches_pytorch() {
    run_family("goldens/ops/conv_transpose.safetensors", |c| {
        let (x, w, b) = (c.tensor("input"), c.tensor("weight"), c.try_tensor("bias"));
        let groups = c.f64("groups") as usize;
        let (s, p, d, op) = (
            c.usizes("stride"),
            c.usizes("padding"),
            c.usizes("dilation"),
            c.usizes("output_padding"),
        );
        match c.op() {
            "conv_transpose1d" => {
                let prm = ConvParams {
                    stride: arr(s),
                    padding: arr(p),
                    dilation: arr(d),
                    groups,
                };
                conv_transpose(&x, &w, b.as_ref(), prm, arr::<1>(op))
            }
            "conv_transpose2d" => {
                let prm = ConvParams {
                    stride: arr(s),
                    padding: arr(p),
                    dilation: arr(d),
                    groups,
                };
                conv_transpose(&x, &w, b.as_ref(), prm, arr::<2>(op))
            }
            "conv_transpose3d" => {
                let prm = ConvParams {
                    stride: arr(s),
                    padding: arr(p),
                    dilation: arr(d),
                    groups,
                };
                conv_transpose(&x, &w, b.as_ref(), prm, arr::<3>(op))
            }
            op => panic!("unknown op {op}"),
        }
        .unwrap()
    });
}

#[test]
fn grid_sample_matches_pytorch() {
    run_family("goldens/ops/grid_sample.safetensors", |c| {
        grid_sample(&c.tensor("input"), &c.tensor("grid"), c.flag("align_corners")).unwrap()
    });
}

#[test]
fn interpolate_matches_pytorch() {
    run_family("goldens/ops/interpolate.safetensors", |c| {
        let resize = if c.params.get("size").is_some() {
            Resize::Size(c.usizes("size"))
        } else {
            Resize::Scale(
                c.params["scale"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect(),
            )
        };
        match c.params["mode"].as_str().unwrap() {
            "nearest" => interpolate_nearest(&c.tensor("input"), &resize),
            "bilinear" => interpolate_bilinear(&c.tensor("input"), &resize, c.flag("align_corners")),
            m => panic!("unknown mode {m}"),
        }
        .unwrap()
    });
}

#[test]
fn pooling_matches_pytorch() {
    run_family("goldens/ops/pool.safetensors", |c| {
        let x = c.tensor("input");
        if c.op() == "adaptive_avg_pool" {
            return adaptive_avg_pool(&x, &c.usizes("output_size")).unwrap();
        }
        let (k, s, p) = (c.usizes("kernel"), c.usizes("stride"), c.usizes("padding"));
        match c.op() {
            "avg_pool2d" => avg_pool2d(&x, arr(k), arr(s), arr(p), c.flag("count_include_pad")),
            "avg_pool3d" => avg_pool3d(&x, arr(k), arr(s), arr(p), c.flag("count_include_pad")),
            "max_pool2d" => max_pool2d(&x, arr(k), arr(s), arr(p)),
            op => panic!("unknown op {op}"),
        }
        .unwrap()
    });
}

#[test]
fn norms_match_pytorch() {
    run_family("goldens/ops/norm.safetensors", |c| {
        let x = c.tensor("input");
        let eps = c.f64("eps");
        match c.op() {
            "batch_norm" => {
                let stats = BatchNormStats {
                    running_mean: c.tensor("running_mean"),
                    running_var: c.tensor("running_var"),
                    weight: c.try_tensor("weight"),
                    bias: c.try_tensor("bias"),
                };
                batch_norm(&x, &stats, eps)
            }
            "instance_norm" => instance_norm(&x, c.try_tensor("weight").as_ref(), c.try_tensor("bias").as_ref(), eps),
            op => panic!("unknown op {op}"),
        }
        .unwrap()
    });
}

#[test]
fn activations_match_pytorch() {
    run_family("goldens/ops/activation.safetensors", |c| {
        let x = c.tensor("input");
        match c.op() {
            "softmax" => softmax_last_dim(&x),
            "sigmoid" => sigmoid(&x),
            "leaky_relu" => leaky_relu(&x, c.f64("slope") as f32),
            op => panic!("unknown op {op}"),
        }
        .unwrap()
    });
}
