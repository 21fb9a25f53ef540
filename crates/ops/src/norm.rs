//! `F.batch_norm` in eval mode and `F.instance_norm`, over channel axis 1 of any rank.
//!
//! Why hand-written: one fused pass per channel plane instead of the four broadcast
//! passes (sub, div, mul, add) the same formula costs with candle's element-wise ops.
//! SadTalker's `SynchronizedBatchNorm` is plain batch norm at inference.

use candle_core::Tensor;
use rayon::prelude::*;

use crate::access::{Input, output, with_opt};
use crate::{Result, shape_err};

/// The buffers and parameters of a `BatchNormNd` layer.
#[derive(Clone, Debug)]
pub struct BatchNormStats {
    /// `running_mean`, one per channel.
    pub running_mean: Tensor,
    /// `running_var`, one per channel.
    pub running_var: Tensor,
    /// `weight` (gamma), absent when `affine=False`.
    pub weight: Option<Tensor>,
    /// `bias` (beta), absent when `affine=False`.
    pub bias: Option<Tensor>,
}

impl BatchNormStats {
    /// The per-channel `(alpha, beta)` of [`batch_norm`], `y = fma(x, alpha, beta)`, formed as ATen
    /// forms them (a GPU applies the same ones); a shape error unless every tensor has `c` entries.
    pub fn coefficients(&self, c: usize, eps: f64) -> Result<(Vec<f32>, Vec<f32>)> {
        const OP: &str = "batch_norm";
        let mean = Input::new(OP, &self.running_mean)?;
        let var = Input::new(OP, &self.running_var)?;
        let w = self.weight.as_ref().map(|t| Input::new(OP, t)).transpose()?;
        let b = self.bias.as_ref().map(|t| Input::new(OP, t)).transpose()?;
        for (name, t) in [
            ("running_mean", Some(&mean)),
            ("running_var", Some(&var)),
            ("weight", w.as_ref()),
            ("bias", b.as_ref()),
        ] {
            if let Some(t) = t
                && t.dims() != [c]
            {
                return shape_err(OP, format!("{name} {:?} does not match {c} channels", t.dims()));
            }
        }
        Ok(mean.with(|m| {
            var.with(|v| {
                with_opt(w.as_ref(), |w| {
                    with_opt(b.as_ref(), |b| {
                        (0..c)
                            .map(|i| {
                                let invstd = 1.0 / (v[i] + eps as f32).sqrt();
                                let a = invstd * w.map_or(1.0, |w| w[i]);
                                (a, (-m[i]).mul_add(a, b.map_or(0.0, |b| b[i])))
                            })
                            .unzip()
                    })
                })
            })
        }))
    }
}

/// `F.batch_norm(x, running_mean, running_var, weight, bias, training=False, eps=eps)`.
///
/// Computed as ATen does: `alpha = weight / sqrt(var + eps)`, `beta = bias - mean * alpha`,
/// `y = x * alpha + beta`.
pub fn batch_norm(x: &Tensor, stats: &BatchNormStats, eps: f64) -> Result<Tensor> {
    const OP: &str = "batch_norm";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let xd = x.dims().to_vec();
    if xd.len() < 2 {
        return shape_err(OP, format!("expected (N, C, ...), got {xd:?}"));
    }
    let c = xd[1];
    let (alpha, beta) = stats.coefficients(c, eps)?;
    let plane: usize = xd[2..].iter().product();
    let data = x.with(|xs| affine_planes(xs, plane, c, |ci| (alpha[ci], beta[ci])));
    output(data, xd)
}

/// `F.instance_norm(x, weight=..., bias=..., eps=eps)` without running statistics:
/// each (sample, channel) plane is normalised by its own mean and biased variance
/// (accumulated in `f64`, as ATen's CPU kernel does).
pub fn instance_norm(x: &Tensor, weight: Option<&Tensor>, bias: Option<&Tensor>, eps: f64) -> Result<Tensor> {
    const OP: &str = "instance_norm";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let xd = x.dims().to_vec();
    if xd.len() < 3 {
        return shape_err(OP, format!("expected (N, C, ...spatial), got {xd:?}"));
    }
    let c = xd[1];
    let (w, b) = affine_params(OP, weight, bias, c, &xd)?;
    let plane: usize = xd[2..].iter().product();
    let data = x.with(|xs| {
        with_opt(w.as_ref(), |w| {
            with_opt(b.as_ref(), |b| {
                let mut out = vec![0f32; xs.len()];
                out.par_chunks_mut(plane)
                    .zip(xs.par_chunks(plane))
                    .enumerate()
                    .for_each(|(k, (o, i))| {
                        let ci = k % c;
                        let n = plane as f64;
                        let mean = i.iter().map(|&v| v as f64).sum::<f64>() / n;
                        let var = i.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                        // ATen stores the statistics as f32, then forms alpha/beta in f32.
                        let (mean, invstd) = (mean as f32, (1.0 / (var + eps).sqrt()) as f32);
                        let a = invstd * w.map_or(1.0, |w| w[ci]);
                        let beta = (-mean).mul_add(a, b.map_or(0.0, |b| b[ci]));
                        fused_affine(o, i, a, beta);
                    });
                out
            })
        })
    });
    output(data, xd)
}

/// SPADE's modulation of a parameter-free instance norm, fused: `instance_norm(x) * (1 + γ) + β`
/// with γ and β the two halves of `gamma_beta` `(N, 2C, ...)` (γ channels first), as
/// `sadtalker_render`'s `Spade` computes them in one convolution. Bit-identical to the three
/// steps done apart ([`instance_norm`], then `γ + 1`, the product and the sum, each rounded to
/// f32), in one pass over the activations instead of four, with one output instead of four.
pub fn instance_norm_modulate(x: &Tensor, gamma_beta: &Tensor, eps: f64) -> Result<Tensor> {
    const OP: &str = "instance_norm_modulate";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let gb = Input::new(OP, gamma_beta)?;
    let xd = x.dims().to_vec();
    let mut expected = xd.clone();
    if xd.len() < 3 {
        return shape_err(OP, format!("expected (N, C, ...spatial), got {xd:?}"));
    }
    expected[1] *= 2;
    if gb.dims() != expected {
        return shape_err(OP, format!("γ|β {:?} must be {expected:?} for x {xd:?}", gb.dims()));
    }
    let c = xd[1];
    let plane: usize = xd[2..].iter().product();
    let data = x.with(|xs| {
        gb.with(|gbs| {
            let mut out = vec![0f32; xs.len()];
            out.par_chunks_mut(plane)
                .zip(xs.par_chunks(plane))
                .enumerate()
                .for_each(|(k, (o, i))| {
                    let (ni, ci) = (k / c, k % c);
                    let gamma = &gbs[(ni * 2 * c + ci) * plane..][..plane];
                    let beta = &gbs[(ni * 2 * c + c + ci) * plane..][..plane];
                    let (a, shift) = plane_affine(i, eps);
                    modulate(o, i, a, shift, gamma, beta);
                });
            out
        })
    });
    output(data, xd)
}

/// The per-plane `(invstd, -mean·invstd)` of a parameter-free [`instance_norm`], computed as it
/// does.
fn plane_affine(i: &[f32], eps: f64) -> (f32, f32) {
    let n = i.len() as f64;
    let mean = i.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = i.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let (mean, invstd) = (mean as f32, (1.0 / (var + eps).sqrt()) as f32);
    (invstd, (-mean).mul_add(invstd, 0.0))
}

/// `o = (i·a + shift) * (γ + 1) + β`, the affine rounded as [`fused_affine`] rounds it.
fn modulate(o: &mut [f32], i: &[f32], a: f32, shift: f32, gamma: &[f32], beta: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports FMA, checked just above.
        unsafe { modulate_fma(o, i, a, shift, gamma, beta) };
        return;
    }
    modulate_body(o, i, a, shift, gamma, beta);
}

#[inline(always)]
fn modulate_body(o: &mut [f32], i: &[f32], a: f32, shift: f32, gamma: &[f32], beta: &[f32]) {
    for (((o, &v), &g), &b) in o.iter_mut().zip(i).zip(gamma).zip(beta) {
        *o = v.mul_add(a, shift) * (g + 1.0) + b;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma,avx2")]
fn modulate_fma(o: &mut [f32], i: &[f32], a: f32, shift: f32, gamma: &[f32], beta: &[f32]) {
    modulate_body(o, i, a, shift, gamma, beta);
}

/// `F.group_norm(x, num_groups, weight, bias, eps)` (`torch.nn.GroupNorm`): the channels of each sample
/// are split into `num_groups` groups, each normalised by its own mean and biased variance
/// (accumulated in `f64`; the statistics kept as f32 and applied as a fused per-channel affine, as
/// ATen's CPU kernel does).
pub fn group_norm(
    x: &Tensor,
    num_groups: usize,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    eps: f64,
) -> Result<Tensor> {
    const OP: &str = "group_norm";
    let _t = crate::profile::scope(OP);
    let x = Input::new(OP, x)?;
    let xd = x.dims().to_vec();
    if xd.len() < 2 {
        return shape_err(OP, format!("expected (N, C, ...), got {xd:?}"));
    }
    let c = xd[1];
    if num_groups == 0 || c % num_groups != 0 {
        return shape_err(OP, format!("{c} channels cannot be split into {num_groups} groups"));
    }
    let (w, b) = affine_params(OP, weight, bias, c, &xd)?;
    let plane: usize = xd[2..].iter().product();
    let per_group = c / num_groups;
    let group_len = per_group * plane;
    let data = x.with(|xs| {
        with_opt(w.as_ref(), |w| {
            with_opt(b.as_ref(), |b| {
                let mut out = vec![0f32; xs.len()];
                if group_len == 0 {
                    return out;
                }
                out.par_chunks_mut(group_len)
                    .zip(xs.par_chunks(group_len))
                    .enumerate()
                    .for_each(|(k, (o, i))| {
                        let g = k % num_groups;
                        let n = group_len as f64;
                        let mean = i.iter().map(|&v| v as f64).sum::<f64>() / n;
                        let var = i.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                        let (mean, invstd) = (mean as f32, (1.0 / (var + eps).sqrt()) as f32);
                        for j in 0..per_group {
                            let ci = g * per_group + j;
                            let a = invstd * w.map_or(1.0, |w| w[ci]);
                            let beta = (-mean).mul_add(a, b.map_or(0.0, |b| b[ci]));
                            let span = j * plane..(j + 1) * plane;
                            fused_affine(&mut o[span.clone()], &i[span], a, beta);
                        }
                    });
                out
            })
        })
    });
    output(data, xd)
}

/// The optional per-channel `weight` and `bias` of a normalisation, each checked to hold `c` values.
fn affine_params(
    op: &'static str,
    weight: Option<&Tensor>,
    bias: Option<&Tensor>,
    c: usize,
    xd: &[usize],
) -> Result<(Option<Input>, Option<Input>)> {
    let w = weight.map(|t| Input::new(op, t)).transpose()?;
    let b = bias.map(|t| Input::new(op, t)).transpose()?;
    for t in [w.as_ref(), b.as_ref()].into_iter().flatten() {
        if t.dims() != [c] {
            return shape_err(
                op,
                format!(
                    "affine parameter {:?} does not match {c} channels of input {xd:?}",
                    t.dims()
                ),
            );
        }
    }
    Ok((w, b))
}

/// `y = x * alpha[c] + beta[c]` over `(N, C, plane)` data.
fn affine_planes(xs: &[f32], plane: usize, c: usize, ab: impl Fn(usize) -> (f32, f32) + Sync) -> Vec<f32> {
    let mut out = vec![0f32; xs.len()];
    if plane == 0 {
        return out;
    }
    out.par_chunks_mut(plane)
        .zip(xs.par_chunks(plane))
        .enumerate()
        .for_each(|(k, (o, i))| {
            let (a, b) = ab(k % c);
            fused_affine(o, i, a, b);
        });
    out
}

/// `o = fma(i, a, b)`. ATen's normalisation kernels are compiled with FMA contraction, so
/// fused multiply-adds (one rounding) are what reproduces them exactly: with a separate
/// multiply and add, a plane with a large mean differs by an ulp of `x * a` (1.5e-5
/// relative in the golden with mean 100).
fn fused_affine(o: &mut [f32], i: &[f32], a: f32, b: f32) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports FMA, checked just above.
        unsafe { fused_affine_fma(o, i, a, b) };
        return;
    }
    // Without hardware FMA, `mul_add` is a (slower) exactly rounded library call.
    for (o, &v) in o.iter_mut().zip(i) {
        *o = v.mul_add(a, b);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "fma,avx2")]
fn fused_affine_fma(o: &mut [f32], i: &[f32], a: f32, b: f32) {
    for (o, &v) in o.iter_mut().zip(i) {
        *o = v.mul_add(a, b);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use candle_core::{Device, Tensor};

    #[test]
    fn modulate_is_bit_identical_to_the_steps_apart_and_checks_shapes() {
        let x = (Tensor::randn(0.5f32, 2.0, (2, 3, 5, 7), &Device::Cpu).unwrap() * 3.0).unwrap();
        let gb = Tensor::randn(0f32, 1.0, (2, 6, 5, 7), &Device::Cpu).unwrap();
        let ours = super::instance_norm_modulate(&x, &gb, 1e-5).unwrap();
        let norm = super::instance_norm(&x, None, None, 1e-5).unwrap();
        let (gamma, beta) = (gb.narrow(1, 0, 3).unwrap(), gb.narrow(1, 3, 3).unwrap());
        let apart = ((norm * (gamma + 1.0).unwrap()).unwrap() + beta).unwrap();
        let (a, b) = (
            ours.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            apart.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(
            a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()),
            "fused and apart differ"
        );
        assert!(super::instance_norm_modulate(&x, &x, 1e-5).is_err());
    }
}
