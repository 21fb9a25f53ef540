//! `nn.ReflectionPad2d` / `F.pad(x, (left, right, top, bottom), mode='reflect')`.
//!
//! Why hand-written: candle's `pad_with_same` replicates the edge and has no reflect mode. facexlib's
//! ParseNet pads every convolution this way.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::access::{Input, output};
use crate::{Result, shape_err};

/// PyTorch's reflection index: `-1 → 1`, `n → n - 2` (the edge itself is not repeated).
fn reflect(i: isize, n: usize) -> usize {
    let n = n as isize;
    let r = if i < 0 {
        -i
    } else if i >= n {
        2 * (n - 1) - i
    } else {
        i
    };
    r as usize
}

/// `F.pad(x, (left, right, top, bottom), mode='reflect')` on an `(N, C, H, W)` tensor, as
/// `nn.ReflectionPad2d(padding)` does. Each padding must be smaller than the axis it pads (PyTorch's rule).
pub fn reflection_pad2d(x: &Tensor, padding: [usize; 4]) -> Result<Tensor> {
    const OP: &str = "reflection_pad2d";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let d = x.dims().to_vec();
    if d.len() != 4 {
        return shape_err(OP, format!("expected an (N, C, H, W) input, got {d:?}"));
    }
    let [left, right, top, bottom] = padding;
    let (h, w) = (d[2], d[3]);
    if left >= w.max(1) || right >= w.max(1) || top >= h.max(1) || bottom >= h.max(1) {
        return shape_err(
            OP,
            format!("padding {padding:?} must be smaller than the padded axes (H {h}, W {w})"),
        );
    }
    let (oh, ow) = (h + top + bottom, w + left + right);
    let cols: Vec<usize> = (0..ow).map(|j| reflect(j as isize - left as isize, w)).collect();
    let data = x.with(|xs| {
        let mut out = vec![0f32; d[0] * d[1] * oh * ow];
        out.par_chunks_mut(oh * ow)
            .zip(xs.par_chunks(h * w))
            .for_each(|(o, plane)| {
                for (i, orow) in o.chunks_exact_mut(ow).enumerate() {
                    let src = &plane[reflect(i as isize - top as isize, h) * w..][..w];
                    orow[left..left + w].copy_from_slice(src);
                    for j in (0..left).chain(left + w..ow) {
                        orow[j] = src[cols[j]];
                    }
                }
            });
        out
    });
    output(data, vec![d[0], d[1], oh, ow])
}
