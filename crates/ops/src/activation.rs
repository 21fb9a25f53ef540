//! Activations candle-core lacks or computes differently from PyTorch.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::access::{Input, output};
use crate::{Result, shape_err};

/// Elements per parallel task for element-wise maps.
const MAP_CHUNK: usize = 1 << 15;

fn map(op: &'static str, x: &Tensor, f: impl Fn(f32) -> f32 + Sync) -> Result<Tensor> {
    let _t = crate::profile::scope(op);
    let x = Input::new(op, x)?;
    let data = x.with(|xs| {
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(MAP_CHUNK)
            .zip(xs.par_chunks(MAP_CHUNK))
            .for_each(|(o, i)| {
                for (o, &v) in o.iter_mut().zip(i) {
                    *o = f(v);
                }
            });
        out
    });
    output(data, x.dims().to_vec())
}

/// `torch.sigmoid(x)`.
pub fn sigmoid(x: &Tensor) -> Result<Tensor> {
    map("sigmoid", x, |v| 1.0 / (1.0 + (-v).exp()))
}

/// `F.leaky_relu(x, negative_slope)` (PyTorch's default slope is 0.01).
pub fn leaky_relu(x: &Tensor, negative_slope: f32) -> Result<Tensor> {
    map("leaky_relu", x, move |v| if v > 0.0 { v } else { v * negative_slope })
}

/// `F.softmax(x, dim=-1)`: used on flattened 3-D heatmaps (`(N, K, D*H*W)`).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    const OP: &str = "softmax";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let Some(&len) = x.dims().last() else {
        return shape_err(OP, "expected at least one axis, got a scalar");
    };
    if len == 0 {
        return output(Vec::new(), x.dims().to_vec());
    }
    let data = x.with(|xs| {
        let mut out = vec![0f32; xs.len()];
        out.par_chunks_mut(len).zip(xs.par_chunks(len)).for_each(|(o, i)| {
            let m = i.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            // Accumulated in f64: over a 65536-voxel heatmap a running f32 sum drifts by
            // ~1e-5 relative, which moves the keypoint expectation more than PyTorch's
            // vectorised partial sums do.
            let mut sum = 0f64;
            for (o, &v) in o.iter_mut().zip(i) {
                *o = (v - m).exp();
                sum += *o as f64;
            }
            let inv = (1.0 / sum) as f32;
            for o in o.iter_mut() {
                *o *= inv;
            }
        });
        out
    });
    output(data, x.dims().to_vec())
}
