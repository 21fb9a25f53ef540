//! The multi-head self-attention of RestoreFormer's `MultiHeadAttnBlock`
//! (`RestoreFormer_arch.py`), on feature maps.

use candle_core::Tensor;

use crate::{Result, shape_err, softmax_last_dim};

/// `q`, `k`, `v` `(b, c, h, w)` split into `heads` of `c / heads` channels; per head
/// `softmax(q̂ᵀ k) v̂` with `q̂ = q · (c / heads)^-0.5`, returned as `(b, c, h, w)` in the
/// reference's channel order (head-major), as `MultiHeadAttnBlock.forward` computes it.
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    const OP: &str = "attention";
    let qd = q.dims().to_vec();
    let [b, c, h, w] = qd[..] else {
        return shape_err(OP, format!("expected (b, c, h, w), got {qd:?}"));
    };
    if k.dims() != qd || v.dims() != qd || heads == 0 || !c.is_multiple_of(heads) {
        return shape_err(
            OP,
            format!("q {qd:?}, k {:?}, v {:?} with {heads} heads", k.dims(), v.dims()),
        );
    }
    let att = c / heads;
    // (b, c, h, w) → (b, head, att, hw); q and v as (b, head, hw, att), k as (b, head, att, hw).
    let split = |t: &Tensor| t.reshape((b, heads, att, h * w));
    let q = split(q)?.transpose(2, 3)?.contiguous()?;
    let k = split(k)?.contiguous()?;
    let v = split(v)?.transpose(2, 3)?.contiguous()?;
    // `q.mul_(int(att) ** -0.5)`: the Python float applied as f32.
    let scale = (att as f64).powf(-0.5) as f32;
    let q = q.affine(f64::from(scale), 0.0)?;
    let w_ = softmax_last_dim(&q.matmul(&k)?)?;
    let w_ = w_.matmul(&v)?; // (b, head, hw, att)
    // → (b, hw, head, att) → (b, h, w, c) → (b, c, h, w)
    Ok(w_
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b, h, w, c))?
        .permute((0, 3, 1, 2))?
        .contiguous()?)
}
