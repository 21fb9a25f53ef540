//! A layer's convolution weights, owned, and kept in the form its kernel reads.
//!
//! Why: the fast kernels read their own copies of the weights (16-channel panels for the direct
//! kernel, Winograd transforms 2.4–4× the size of the filters). Keeping the original filters next
//! to them as well cost the 256 renderer ~700 MB at no use: once a layer's fast layout exists,
//! [`ConvWeight`] drops the original. Should a later call need another form (another input size,
//! a stride, a lower instruction-set ceiling), it is derived from what is kept: exactly from the
//! direct panels, to within a few float32 ulps from a Winograd transform.

use std::sync::{Arc, Mutex, PoisonError};

use candle_core::{DType, Tensor};

use crate::access::{Input, output, with_opt};
use crate::conv::{ConvParams, ConvPath, Geometry, Kernel, Layout, geometry, op_name};
use crate::winograd::Plan;
use crate::{OpError, Result};

/// Convolution weights `(out, in/groups, k…)` that a layer owns; see the module doc.
#[derive(Debug)]
pub struct ConvWeight {
    dims: Vec<usize>,
    path: ConvPath,
    forms: Mutex<Forms>,
}

/// The forms held; at least one is always present.
#[derive(Debug, Default)]
struct Forms {
    original: Option<Arc<Vec<f32>>>,
    /// Packed for this many groups.
    direct: Option<(usize, Arc<Vec<f32>>)>,
    winograd: Option<(Plan, Arc<Vec<f32>>)>,
    /// bf16 AMX tiles (ungrouped only). The original stays beside them: fp32 calls must not
    /// see bf16-rounded weights, and the tiles are half the originals' size.
    amx: Option<Arc<Vec<u16>>>,
}

/// A [`Layout`] that owns its weights.
enum Held {
    F32(Arc<Vec<f32>>),
    Bf16(Arc<Vec<u16>>),
}

impl Held {
    fn as_layout(&self) -> Layout<'_> {
        match self {
            Held::F32(v) => Layout::F32(v),
            Held::Bf16(v) => Layout::Bf16(v),
        }
    }
}

impl ConvWeight {
    /// The weights of `weight` (a tensor of rank 3–5), choosing kernels by shape.
    pub fn new(weight: &Tensor) -> Result<Self> {
        let values = weight.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        Self::from_vec(weight.dims(), values, ConvPath::Auto)
    }

    /// Takes over row-major `values` of shape `dims`, `(out, in/groups, k…)` with 1 to 3 kernel
    /// axes; `path` pins a kernel where it applies (see [`ConvPath`]).
    pub fn from_vec(dims: &[usize], values: Vec<f32>, path: ConvPath) -> Result<Self> {
        let dims = dims.to_vec();
        if !(3..=5).contains(&dims.len()) || dims.iter().product::<usize>() != values.len() {
            return Err(OpError::Shape {
                op: "conv",
                msg: format!(
                    "weight {dims:?} with {} values: expected (out, in/groups, k…) with 1 to 3 kernel axes",
                    values.len()
                ),
            });
        }
        Ok(Self {
            dims,
            path,
            forms: Mutex::new(Forms {
                original: Some(Arc::new(values)),
                ..Forms::default()
            }),
        })
    }

    /// The weight's shape, `(out, in/groups, k…)`.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The original weights as a tensor (derived again when only a fast layout is kept).
    pub fn to_tensor(&self) -> Result<Tensor> {
        let values = self.lock().original(&self.dims);
        output(values.as_ref().clone(), self.dims.as_slice())
    }

    /// Bytes held in all forms together.
    pub fn held_bytes(&self) -> usize {
        let f = self.lock();
        let len = |v: &Arc<Vec<f32>>| v.len() * size_of::<f32>();
        f.original.as_ref().map_or(0, len)
            + f.direct.as_ref().map_or(0, |(_, v)| len(v))
            + f.winograd.as_ref().map_or(0, |(_, v)| len(v))
            + f.amx.as_ref().map_or(0, |v| v.len() * size_of::<u16>())
    }

    /// `F.conv{N}d(x, weight, bias, …)` with these weights.
    pub fn forward<const N: usize>(&self, x: &Tensor, bias: Option<&Tensor>, p: ConvParams<N>) -> Result<Tensor> {
        let op = op_name::<N>()?;
        let x = Input::new(op, x)?;
        let b = bias.map(|b| Input::new(op, b)).transpose()?;
        let g = geometry(op, x.dims(), &self.dims, b.as_ref().map(Input::dims), p)?;
        let _t = crate::conv::profile_scope(op, &g, self.path);
        let isa = crate::isa::active();
        let kernel = Kernel::choose(&g, self.path, isa, crate::precision::active());
        let layout = self.layout(kernel, &g);
        let data = x.with(|xs| with_opt(b.as_ref(), |bs| kernel.run(xs, layout.as_layout(), bs, &g, isa)));
        output(data, g.output_shape::<N>())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Forms> {
        // Forms are replaced whole, never left half-written: a panic elsewhere cannot spoil them.
        self.forms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The weights in the form `kernel` reads, built (once) if not held; building a fast layout
    /// drops the original.
    fn layout(&self, kernel: Kernel, g: &Geometry) -> Held {
        let mut f = self.lock();
        match kernel {
            Kernel::Amx => {
                if let Some(t) = &f.amx {
                    return Held::Bf16(t.clone());
                }
                let w = f.original(&self.dims);
                let t = Arc::new(crate::conv_amx::pack_weights(&w, g));
                f.original = Some(w);
                f.amx = Some(t.clone());
                Held::Bf16(t)
            }
            Kernel::Winograd(plan) => {
                if let Some((p, u)) = &f.winograd
                    && *p == plan
                {
                    return Held::F32(u.clone());
                }
                let w = f.original(&self.dims);
                let u = Arc::new(crate::winograd::transform_weights(&w, g.cout, g.cin, plan));
                f.winograd = Some((plan, u.clone()));
                f.original = None;
                Held::F32(u)
            }
            Kernel::Direct => {
                if let Some((groups, packed)) = &f.direct
                    && *groups == g.groups
                {
                    return Held::F32(packed.clone());
                }
                let w = f.original(&self.dims);
                let packed = Arc::new(crate::conv_direct::pack_all_groups(&w, g));
                f.direct = Some((g.groups, packed.clone()));
                f.original = None;
                Held::F32(packed)
            }
            Kernel::Gemm => {
                let w = f.original(&self.dims);
                f.original = Some(w.clone());
                Held::F32(w)
            }
        }
    }
}

impl Forms {
    /// The original weights: held, unpacked from the direct panels (exact) or recovered from the
    /// Winograd transform.
    fn original(&self, dims: &[usize]) -> Arc<Vec<f32>> {
        if let Some(w) = &self.original {
            return w.clone();
        }
        let (cout, cg) = (dims[0], dims[1]);
        let kk = cg * dims[2..].iter().product::<usize>();
        if let Some((groups, packed)) = &self.direct {
            return Arc::new(crate::conv_direct::unpack_all_groups(packed, cout, *groups, kk));
        }
        if let Some((plan, u)) = &self.winograd {
            // Winograd runs ungrouped convolutions only: cg is all the input channels.
            return Arc::new(crate::winograd::recover_weights(u, cout, cg, *plan));
        }
        unreachable!("a ConvWeight always holds at least one form")
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Tensor;

    use super::*;
    use crate::conv::conv_cached;
    use crate::test_util::{max_diff, rand};
    use crate::{ConvCache, conv2d};

    /// The kernel an `Auto` layer runs for these sizes on this machine.
    fn kernel_for(x: &Tensor, w: &Tensor, p: ConvParams<2>) -> Kernel {
        let g = geometry("conv2d", x.dims(), w.dims(), None, p).unwrap();
        Kernel::choose(&g, ConvPath::Auto, crate::isa::active(), crate::Precision::Fp32)
    }

    #[test]
    fn same_result_as_the_borrowing_cache_and_drops_the_original() {
        let w = rand(&[32, 32, 3, 3], 1);
        let b = rand(&[32], 2);
        let cw = ConvWeight::new(&w).unwrap();
        let original_bytes = cw.held_bytes();
        assert_eq!(original_bytes, 32 * 32 * 9 * 4);
        for (size, p) in [(16, ConvParams::padding(1)), (3, ConvParams::padding(0))] {
            let x = rand(&[2, 32, size, size], 3);
            let ours = cw.forward(&x, Some(&b), p).unwrap();
            let cached = conv_cached(&x, &w, Some(&b), p, &ConvCache::default()).unwrap();
            let kernel = kernel_for(&x, &w, p);
            if size == 16 {
                // The first call builds its layout from the exact original: equal bit for bit.
                assert_eq!(max_diff(&ours, &cached), 0.0, "{kernel:?}");
                if kernel != Kernel::Gemm {
                    assert!(cw.lock().original.is_none(), "original kept beside {kernel:?}");
                }
            } else {
                // Derived from the first call's layout.
                assert!(
                    max_diff(&ours, &cached) < 1e-5,
                    "{kernel:?}: {}",
                    max_diff(&ours, &cached)
                );
            }
        }
    }

    #[test]
    fn gemm_after_a_fast_layout_gets_the_weights_back() {
        // A stride-2 call runs GEMM, which needs the original weights the fast layout replaced.
        for (shape, pad) in [([64usize, 32, 1, 1], 0), ([32, 32, 3, 3], 1)] {
            let w = rand(&shape, 4);
            let cw = ConvWeight::new(&w).unwrap();
            let x = rand(&[1, 32, 12, 12], 5);
            cw.forward(&x, None, ConvParams::<2>::padding(pad)).unwrap();
            let strided = ConvParams::padding(pad).with_stride(2);
            let ours = cw.forward(&x, None, strided).unwrap();
            let reference = conv2d(&x, &w, None, strided).unwrap();
            let first = kernel_for(&x, &w, ConvParams::padding(pad));
            let d = max_diff(&ours, &reference);
            match first {
                // Unpacking the direct panels is exact.
                // (AMX keeps the original beside its tiles.)
                Kernel::Direct | Kernel::Gemm | Kernel::Amx => assert_eq!(d, 0.0, "{shape:?} after {first:?}"),
                Kernel::Winograd(_) => assert!(d < 1e-5, "{shape:?} after Winograd: {d}"),
            }
            assert!(max_diff(&cw.to_tensor().unwrap(), &w) < 1e-6);
        }
    }

    #[test]
    fn recovered_filters_are_within_float_rounding() {
        let w = rand(&[48, 40, 3, 3], 6);
        let cw = ConvWeight::new(&w).unwrap();
        let x = rand(&[1, 40, 16, 16], 7);
        cw.forward(&x, None, ConvParams::<2>::padding(1)).unwrap();
        // Whatever the kernel, the weights come back to float32 rounding of their 0.5 scale.
        assert!(max_diff(&cw.to_tensor().unwrap(), &w) < 2e-7);
    }

    #[test]
    fn rejects_a_weight_of_the_wrong_rank() {
        let w = rand(&[4, 4], 8);
        assert!(ConvWeight::new(&w).is_err());
    }
}
