//! Softmax and the multi-head self-attention of RestoreFormer's `MultiHeadAttnBlock`, whose two
//! batched matrix products run as grouped 1 × 1 convolutions (the implicit-GEMM kernel) with one
//! operand as the weight.

use sadtalker_ops::ConvParams;

use crate::error::{Result, shape_err};
use crate::ops::elementwise::{per_thread, scale};
use crate::ops::layout::{cat_channels, narrow, transpose_last2};
use crate::ops::{conv::conv1d, u32_arg};
use crate::tensor::GpuTensor;

/// `torch.softmax(x, dim)`, as `sadtalker_ops::softmax_last_dim` rounds it (along any axis).
pub fn softmax(x: &GpuTensor, dim: usize) -> Result<GpuTensor> {
    const OP: &str = "softmax";
    let xd = x.dims();
    if dim >= xd.len() {
        return shape_err(OP, format!("axis {dim} of {xd:?}"));
    }
    let (len, inner) = (xd[dim], xd[dim + 1..].iter().product::<usize>());
    let y = GpuTensor::uninit(x.device(), OP, xd)?;
    if len == 0 || y.elem_count() == 0 {
        return Ok(y);
    }
    u32_arg(OP, x.elem_count())?;
    let lines = x.elem_count() / len;
    let args = [u32_arg(OP, len)?, u32_arg(OP, inner)?];
    per_thread(
        OP,
        OP,
        include_str!("../shaders/softmax.wgsl"),
        lines,
        y,
        &[&x.buffer],
        &args,
    )
}

/// `MultiHeadAttnBlock`'s attention: `q`, `k`, `v` `(b, c, h, w)` split into `heads` of
/// `c / heads` channels; per head `softmax(q̂ᵀ k) v̂` with `q̂ = q · (c / heads)^-0.5`, returned as
/// `(b, c, h, w)` in the reference's channel order (head-major).
///
/// Per sample and head, with `a` channels and `n = h·w` pixels: the scores' transpose
/// `Sᵀ[j, i] = Σ_a k[a, j] q̂[a, i]` is a grouped 1 × 1 convolution of `q̂` with `kᵀ` as its weight,
/// the softmax runs along `j` (the channel axis of that layout), and `out[a, i] = Σ_j v[a, j] Sᵀ[j, i]`
/// is one with `v` as the weight, so only `k` needs a transposed copy.
pub fn attention(q: &GpuTensor, k: &GpuTensor, v: &GpuTensor, heads: usize) -> Result<GpuTensor> {
    const OP: &str = "attention";
    let qd = q.dims();
    let [b, c, h, w] = *qd else {
        return shape_err(OP, format!("expected (b, c, h, w), got {qd:?}"));
    };
    if k.dims() != qd || v.dims() != qd || heads == 0 || !c.is_multiple_of(heads) {
        return shape_err(
            OP,
            format!("q {qd:?}, k {:?}, v {:?} with {heads} heads", k.dims(), v.dims()),
        );
    }
    let (att, n) = (c / heads, h * w);
    // `q.mul_(int(att) ** -0.5)`: the Python float applied as f32.
    let q = scale(q, (att as f64).powf(-0.5) as f32)?;
    let one = ConvParams {
        groups: heads,
        ..ConvParams::default()
    };
    let mut outs = Vec::with_capacity(b);
    for s in 0..b {
        let sample = |t: &GpuTensor| if b == 1 { Ok(t.clone()) } else { narrow(t, 0, s, 1) };
        let qs = sample(&q)?.reshape(&[1, c, n])?;
        // (heads, a, n) → (heads, n, a): row j of head g is weight row g·n + j.
        let kt = transpose_last2(&sample(k)?.reshape(&[heads, att, n])?)?.reshape(&[heads * n, att, 1])?;
        let st = conv1d(&qs, &kt, None, one)?.reshape(&[1, heads, n, n])?;
        let pt = softmax(&st, 2)?.reshape(&[1, heads * n, n])?;
        let vs = sample(v)?.reshape(&[c, n, 1])?;
        outs.push(conv1d(&pt, &vs, None, one)?.reshape(&[1, c, h, w])?);
    }
    match outs.as_slice() {
        [one] => Ok(one.clone()),
        // The samples one after another: (1, b·c, h, w) is (b, c, h, w) in memory.
        _ => cat_channels(&outs.iter().collect::<Vec<_>>())?.reshape(&[b, c, h, w]),
    }
}
