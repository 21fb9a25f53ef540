//! Direct convolution for stride-1 convolutions on AVX-512 or AVX2 + FMA: no im2col, no GEMM
//! packing.
//!
//! Why hand-written: with im2col + `gemm`, every tile is copied twice (our unfold, then
//! gemm's own packing) and the weights are re-packed per tile; for the renderer's shapes —
//! few output channels (the 112→16 7×7×7 mask conv), huge K (1024-channel 3-D convs) or
//! narrow rows (8×8 planes) — that overhead halves throughput or worse. Here the input is
//! zero-padded once, the weights are packed once per call into 16-channel vectors, and a
//! register-blocked microkernel reads the input in place:
//!
//! * Output positions are taken along the padded plane: for output plane `z`, position
//!   `q = y·Wp + x` reads input `z·Hp·Wp + q + tap(kz, ky, kx)` for every tap, so NP
//!   consecutive positions are NP consecutive floats for every tap. The `x ≥ W'` positions
//!   in between rows are computed and dropped (3 % extra work on a 64-wide plane).
//! * The microkernel keeps NP positions × OCV·16 output channels in zmm registers and, per
//!   tap, loads OCV weight vectors and broadcasts NP input values: NP·OCV FMAs per step.
//!   The AVX2 kernel reads the same packed layout as 8-wide ymm halves, with fewer
//!   positions per call (16 ymm registers instead of 32 zmm).
//!
//! Used when [`crate::isa::active`] is AVX2 or AVX-512 and every stride is 1; everything
//! else takes the GEMM paths in `conv.rs`. Results equal the GEMM paths' up to summation
//! order.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use rayon::prelude::*;

use crate::access::SharedMut;
use crate::conv::Geometry;
use crate::isa::Isa;

/// Output channels per zmm register.
const LANES: usize = 16;
/// Taps per weight panel chunk at `isa` for blocks of `ocb` channels: the chunk and the input
/// lines it reads should stay in L1 across the segments of a task. AVX-512: 256 taps (32 KiB at
/// 32 channels). AVX2 (whose kernel reads 6 positions per call, so a chunk is re-read ~6× as
/// often): 12 KiB, 96 taps at 32 channels — measured on an AVX2-only EPYC, 1 thread, against
/// 256: a 1×1 256→64 layer 2.3× faster, 3×3×3 80→64 1.5×, 32→32 1.4×;
/// `SADTALKER_AVX2_PANEL_KIB` overrides it (to measure).
pub(crate) fn taps_per_chunk(isa: Isa, ocb: usize) -> usize {
    static AVX2_BYTES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    match isa {
        Isa::Avx512 => 256,
        _ => {
            let bytes = *AVX2_BYTES.get_or_init(|| {
                std::env::var("SADTALKER_AVX2_PANEL_KIB")
                    .ok()
                    .and_then(|v| v.parse::<usize>().ok())
                    .filter(|&k| k > 0)
                    .unwrap_or(12)
                    << 10
            });
            (bytes / (ocb * size_of::<f32>())).max(8)
        }
    }
}
/// Positions per task: a multiple of the AVX-512 kernel's widths (28, 14); the AVX2 kernel's
/// 6 leaves up to 5 spare positions at a task's end, computed into the slack and dropped.
const NQ: usize = 224;

/// Whether [`conv_direct`] can run this convolution at `isa` (from [`crate::isa::active`]).
pub(crate) fn applicable(g: &Geometry, isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        // SADTALKER_NO_DIRECT_CONV=1 forces the GEMM paths (to compare them).
        g.stride == [1, 1, 1] && isa >= Isa::Avx2 && std::env::var_os("SADTALKER_NO_DIRECT_CONV").is_none()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (g, isa);
        false
    }
}

/// The original `(out, in/groups, k…)` weights back from [`pack_all_groups`]'s layout: the
/// packing only moves values (and pads lanes with zeros), so this is exact.
pub(crate) fn unpack_all_groups(packed: &[f32], cout: usize, groups: usize, kk: usize) -> Vec<f32> {
    let og = cout / groups;
    let ocb = block_width(og);
    let per_group = og.div_ceil(ocb) * kk * ocb;
    let mut w = vec![0f32; cout * kk];
    for (gi, wg) in w.chunks_mut(og * kk).enumerate() {
        let pg = &packed[gi * per_group..][..per_group];
        for (o, row) in wg.chunks_mut(kk).enumerate() {
            let block = &pg[(o / ocb) * kk * ocb..][..kk * ocb];
            for (k, v) in row.iter_mut().enumerate() {
                *v = block[k * ocb + o % ocb];
            }
        }
    }
    w
}

/// Output channels per register block for `og` outputs: one zmm (16) for up to 16, else
/// two (32).
pub(crate) fn block_width(og: usize) -> usize {
    if og <= LANES { LANES } else { 2 * LANES }
}

/// The weights of every group packed for [`conv_direct`]: group after group, each
/// `[block][k][ocb]`.
pub(crate) fn pack_all_groups(w: &[f32], g: &Geometry) -> Vec<f32> {
    let og = g.cout / g.groups;
    let kk = g.cin / g.groups * g.k.iter().product::<usize>();
    (0..g.groups)
        .flat_map(|gi| pack_weights(&w[gi * og * kk..][..og * kk], og, kk, block_width(og)))
        .collect()
}

/// The convolution (stride 1) into a fresh `(N, Cout, D', H', W')` buffer; `packed` comes
/// from [`pack_all_groups`]; `isa` (AVX2 or AVX-512) must be available.
#[cfg(target_arch = "x86_64")]
pub(crate) fn conv_direct(x: &[f32], bias: Option<&[f32]>, g: &Geometry, packed_all: &[f32], isa: Isa) -> Vec<f32> {
    let [id, ih, iw] = g.in_sp;
    let [pd, ph, pw] = g.pad;
    let [od, oh, ow] = g.out_sp;
    let [kd, kh, kw] = g.k;
    let [dd, dh, dw] = g.dil;
    let (dp, hp, wp) = (id + 2 * pd, ih + 2 * ph, iw + 2 * pw);
    let cg = g.cin / g.groups;
    let og = g.cout / g.groups;
    let taps = kd * kh * kw;
    let kk = cg * taps;
    let vol = dp * hp * wp;
    let p_out = od * oh * ow;
    let ocb = block_width(og);
    let ocv = ocb / LANES;
    let blocks = og.div_ceil(ocb);
    // Positions computed per output plane (junk columns between rows included).
    let q_len = (oh - 1) * wp + ow;
    let q_tasks = q_len.div_ceil(NQ);
    let np = positions_per_call(isa, ocv);
    let kc = taps_per_chunk(isa, ocb);
    // Reads run past the last position by up to one microkernel width.
    let slack = NQ + wp;

    // Tap offsets into one image-group's padded input, in weight order (c, kz, ky, kx).
    let offsets: Vec<usize> = (0..kk)
        .map(|k| {
            let (c, t) = (k / taps, k % taps);
            let (z, y, xx) = (t / (kh * kw), (t / kw) % kh, t % kw);
            c * vol + z * dd * hp * wp + y * dh * wp + xx * dw
        })
        .collect();

    let mut out = vec![0f32; g.n * g.cout * p_out];
    let out_ptr = SharedMut::new(&mut out);
    for ni in 0..g.n {
        for gi in 0..g.groups {
            let padded = pad_input(
                &x[(ni * g.cin + gi * cg) * id * ih * iw..][..cg * id * ih * iw],
                cg,
                g,
                slack,
            );
            let group_len = blocks * kk * ocb;
            let packed = &packed_all[gi * group_len..][..group_len];
            let b_g = bias.map(|b| &b[gi * og..(gi + 1) * og]);
            (0..od * q_tasks)
                .into_par_iter()
                .for_each_init(Vec::new, |tmp: &mut Vec<f32>, task| {
                    let (z, qt) = (task / q_tasks, task % q_tasks);
                    let q0 = qt * NQ;
                    let nq = NQ.min(q_len - q0);
                    let base = &padded[z * hp * wp + q0..];
                    // SAFETY (the scatters): this task owns plane z, positions q0..q0+nq of every
                    // output channel of image ni, group gi.
                    let plane = |o: usize| unsafe {
                        std::slice::from_raw_parts_mut(
                            out_ptr.ptr().add(((ni * g.cout + gi * og + o) * od + z) * oh * ow),
                            oh * ow,
                        )
                    };
                    if og <= NARROW_MAX {
                        tmp.resize(NQ, 0.0);
                        for o in 0..og {
                            // SAFETY: the caller checked `isa`; reads stay within `slack`.
                            unsafe { narrow_dispatch(isa, base, &offsets, packed, ocb, o, &mut tmp[..nq]) };
                            let bv = b_g.map_or(0.0, |bb| bb[o]);
                            let dst = plane(o);
                            for_each_row_run(q0, nq, wp, ow, |i, at, len| {
                                for (d, v) in dst[at..][..len].iter_mut().zip(&tmp[i..]) {
                                    *d = v + bv;
                                }
                            });
                        }
                        return;
                    }
                    let segs = nq.div_ceil(np);
                    // The first chunk of taps writes every accumulator: no memset.
                    tmp.resize(segs * np * blocks * ocb, 0.0);
                    for k0 in (0..kk).step_by(kc) {
                        let k1 = (k0 + kc).min(kk);
                        for b in 0..blocks {
                            let panel = &packed[(b * kk + k0) * ocb..(b * kk + k1) * ocb];
                            for s in 0..segs {
                                let acc = &mut tmp[((s * blocks + b) * np) * ocb..][..np * ocb];
                                let src = &base[s * np..];
                                // SAFETY: the caller checked `isa`; `src` extends past every
                                // offset + np thanks to `slack`; `panel` holds (k1 - k0) × ocb
                                // floats and `acc` np × ocb.
                                unsafe { micro_dispatch(isa, ocv, k0 == 0, src, &offsets[k0..k1], panel, acc) };
                            }
                        }
                    }
                    // Scatter the valid positions into the output planes, adding the bias.
                    for o in 0..og {
                        let (b, lane) = (o / ocb, o % ocb);
                        let bv = b_g.map_or(0.0, |bb| bb[o]);
                        let dst = plane(o);
                        for_each_row_run(q0, nq, wp, ow, |i, at, len| {
                            let (mut s, mut j) = (i / np, i % np);
                            for d in &mut dst[at..][..len] {
                                *d = tmp[((s * blocks + b) * np + j) * ocb + lane] + bv;
                                j += 1;
                                if j == np {
                                    (s, j) = (s + 1, 0);
                                }
                            }
                        });
                    }
                });
        }
    }
    out
}

/// Output channels per group up to which [`conv_direct`] vectorises over positions instead of
/// channels: the channel-vector kernel computes 16 lanes whatever `og` is, so a 1-channel layer
/// (the occlusion mask's 7×7 1792→1) wasted 15/16 of its work.
const NARROW_MAX: usize = 8;

/// Calls `f(i, at, len)` for each run of valid output positions among the task's `nq` padded
/// positions from `q0`: `len` positions from the task's `i`-th, at `at` in the output plane. The
/// junk columns between rows (x ≥ `ow` of a `wp`-wide padded row) are skipped, and no position
/// costs a division (for a 1×1 layer, a division per position is a fair part of its work).
fn for_each_row_run(q0: usize, nq: usize, wp: usize, ow: usize, mut f: impl FnMut(usize, usize, usize)) {
    let mut q = q0;
    while q < q0 + nq {
        let (y, x0) = (q / wp, q % wp);
        if x0 < ow {
            let run_end = (y * wp + ow).min(q0 + nq);
            f(q - q0, y * ow + x0, run_end - q);
        }
        q = (y + 1) * wp;
    }
}

/// [`narrow_body`] compiled for `isa`.
///
/// # Safety
/// `isa` must be available; `base[offsets[k] + j]` in bounds for every k and `j < acc.len()`.
#[cfg(target_arch = "x86_64")]
unsafe fn narrow_dispatch(
    isa: Isa,
    base: &[f32],
    offsets: &[usize],
    packed: &[f32],
    ocb: usize,
    o: usize,
    acc: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        crate::isa::at_level!(
            isa,
            narrow_body(base: &[f32], offsets: &[usize], packed: &[f32], ocb: usize, o: usize, acc: &mut [f32])
        )
    }
}

/// `acc[j] = Σ_k w_o[k] · base[offsets[k] + j]`, vectorised over positions j, four taps per
/// pass over `acc`; `w_o[k]` is lane `o` of [`pack_weights`]'s single block (`og ≤ 16`).
#[inline(always)]
fn narrow_body(base: &[f32], offsets: &[usize], packed: &[f32], ocb: usize, o: usize, acc: &mut [f32]) {
    let n = acc.len();
    acc.fill(0.0);
    let w = |k: usize| packed[k * ocb + o];
    let src = |k: usize| &base[offsets[k]..][..n];
    let mut k = 0;
    while k + 4 <= offsets.len() {
        let (w0, w1, w2, w3) = (w(k), w(k + 1), w(k + 2), w(k + 3));
        let (s0, s1, s2, s3) = (src(k), src(k + 1), src(k + 2), src(k + 3));
        for j in 0..n {
            acc[j] = s3[j].mul_add(w3, s2[j].mul_add(w2, s1[j].mul_add(w1, s0[j].mul_add(w0, acc[j]))));
        }
        k += 4;
    }
    for k in k..offsets.len() {
        let (wk, sk) = (w(k), src(k));
        for (a, s) in acc.iter_mut().zip(sk) {
            *a = s.mul_add(wk, *a);
        }
    }
}

/// The input of one image-group zero-padded to `(C, Dp, Hp, Wp)`, plus `slack` zeros.
fn pad_input(x: &[f32], c: usize, g: &Geometry, slack: usize) -> Vec<f32> {
    let [id, ih, iw] = g.in_sp;
    let [pd, ph, pw] = g.pad;
    let (dp, hp, wp) = (id + 2 * pd, ih + 2 * ph, iw + 2 * pw);
    let mut out = vec![0f32; c * dp * hp * wp + slack];
    out[..c * dp * hp * wp]
        .par_chunks_mut(dp * hp * wp)
        .enumerate()
        .for_each(|(ci, plane)| {
            for z in 0..id {
                for y in 0..ih {
                    let src = &x[((ci * id + z) * ih + y) * iw..][..iw];
                    plane[((z + pd) * hp + y + ph) * wp + pw..][..iw].copy_from_slice(src);
                }
            }
        });
    out
}

/// Weights `(og, K)` packed as `[block][k][ocb]`, output channels innermost, zero-filled
/// past `og`.
pub(crate) fn pack_weights(w: &[f32], og: usize, kk: usize, ocb: usize) -> Vec<f32> {
    let blocks = og.div_ceil(ocb);
    let mut out = vec![0f32; blocks * kk * ocb];
    out.par_chunks_mut(kk * ocb).enumerate().for_each(|(b, block)| {
        for lane in 0..ocb.min(og - b * ocb) {
            let row = &w[(b * ocb + lane) * kk..][..kk];
            for (k, &v) in row.iter().enumerate() {
                block[k * ocb + lane] = v;
            }
        }
    });
    out
}

/// Positions per microkernel call for a block of `ocv` zmm (16-channel groups): AVX-512
/// keeps 28 × 16 or 14 × 32 accumulators in its 32 zmm, AVX2 6 × 16 in its 16 ymm (a 32-wide
/// block takes two calls, one per half).
pub(crate) fn positions_per_call(isa: Isa, ocv: usize) -> usize {
    match (isa, ocv) {
        (Isa::Avx512, 1) => 28,
        (Isa::Avx512, _) => 14,
        _ => AVX2_NP,
    }
}

/// Positions per AVX2 microkernel call.
const AVX2_NP: usize = 6;

/// The microkernel for the level and block width, `NP = positions_per_call(isa, ocv)`; with
/// `fresh` it writes `acc` instead of adding to it (the first chunk of taps), so that callers need
/// not zero their accumulators (the memset was 7 % of a Winograd layer).
///
/// # Safety
/// `isa` must be AVX2 or AVX-512 and available on this CPU; bounds as [`micro`].
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) unsafe fn micro_dispatch(
    isa: Isa,
    ocv: usize,
    fresh: bool,
    src: &[f32],
    offsets: &[usize],
    panel: &[f32],
    acc: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (isa, ocv) {
            (Isa::Avx512, 1) => micro::<28, 1>(fresh, src, offsets, panel, acc),
            (Isa::Avx512, _) => micro::<14, 2>(fresh, src, offsets, panel, acc),
            (_, 1) => micro_avx2::<AVX2_NP, 16>(fresh, src, offsets, panel, acc),
            _ => {
                // Two 16-channel halves of the 32-wide block: 3 × 32 accumulators would not
                // leave registers for the weights.
                micro_avx2::<AVX2_NP, 32>(fresh, src, offsets, panel, acc);
                micro_avx2::<AVX2_NP, 32>(fresh, src, offsets, &panel[16..], &mut acc[16..]);
            }
        }
    }
}

/// `acc[j][·] += Σ_k panel[k][·] · src[offsets[k] + j]` for `j < NP`, OCV zmm per position
/// (`=` instead of `+=` when `fresh`).
///
/// # Safety
/// AVX-512F must be available; `src[offsets[k] + j]` must be in bounds for all `k`, `j < NP`;
/// `panel.len() >= offsets.len() * OCV * 16`; `acc.len() >= NP * OCV * 16`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn micro<const NP: usize, const OCV: usize>(
    fresh: bool,
    src: &[f32],
    offsets: &[usize],
    panel: &[f32],
    acc: &mut [f32],
) {
    // SAFETY (whole body): bounds as documented above; loads and stores are unaligned.
    unsafe {
        let mut r = [[_mm512_setzero_ps(); OCV]; NP];
        if !fresh {
            for (j, rj) in r.iter_mut().enumerate() {
                for (v, rv) in rj.iter_mut().enumerate() {
                    *rv = _mm512_loadu_ps(acc.as_ptr().add((j * OCV + v) * LANES));
                }
            }
        }
        let sp = src.as_ptr();
        let mut wptr = panel.as_ptr();
        for &off in offsets {
            let mut wv = [_mm512_setzero_ps(); OCV];
            for (v, w) in wv.iter_mut().enumerate() {
                *w = _mm512_loadu_ps(wptr.add(v * LANES));
            }
            let s = sp.add(off);
            for (j, rj) in r.iter_mut().enumerate() {
                let xv = _mm512_set1_ps(*s.add(j));
                for (v, rv) in rj.iter_mut().enumerate() {
                    *rv = _mm512_fmadd_ps(xv, wv[v], *rv);
                }
            }
            wptr = wptr.add(OCV * LANES);
        }
        for (j, rj) in r.iter().enumerate() {
            for (v, rv) in rj.iter().enumerate() {
                _mm512_storeu_ps(acc.as_mut_ptr().add((j * OCV + v) * LANES), *rv);
            }
        }
    }
}

/// [`micro`] on AVX2 + FMA for 16 output channels (two ymm) of a block `OCB` wide: the same
/// packed panel and accumulator layout, starting at the given channel of the block.
///
/// # Safety
/// AVX2 and FMA must be available; `src` as [`micro`]; `panel` holds `offsets.len()` rows of
/// `OCB` floats (the last row needs only 16) and `acc` `NP` rows of `OCB` (the last only 16).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn micro_avx2<const NP: usize, const OCB: usize>(
    fresh: bool,
    src: &[f32],
    offsets: &[usize],
    panel: &[f32],
    acc: &mut [f32],
) {
    const YMM: usize = 8;
    const V: usize = 2;
    // SAFETY (whole body): bounds as documented above; loads and stores are unaligned.
    unsafe {
        let mut r = [[_mm256_setzero_ps(); V]; NP];
        if !fresh {
            for (j, rj) in r.iter_mut().enumerate() {
                for (v, rv) in rj.iter_mut().enumerate() {
                    *rv = _mm256_loadu_ps(acc.as_ptr().add(j * OCB + v * YMM));
                }
            }
        }
        let sp = src.as_ptr();
        let mut wptr = panel.as_ptr();
        for &off in offsets {
            let mut wv = [_mm256_setzero_ps(); V];
            for (v, w) in wv.iter_mut().enumerate() {
                *w = _mm256_loadu_ps(wptr.add(v * YMM));
            }
            let s = sp.add(off);
            for (j, rj) in r.iter_mut().enumerate() {
                let xv = _mm256_set1_ps(*s.add(j));
                for (v, rv) in rj.iter_mut().enumerate() {
                    *rv = _mm256_fmadd_ps(xv, wv[v], *rv);
                }
            }
            wptr = wptr.add(OCB);
        }
        for (j, rj) in r.iter().enumerate() {
            for (v, rv) in rj.iter().enumerate() {
                _mm256_storeu_ps(acc.as_mut_ptr().add(j * OCB + v * YMM), *rv);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a panic is the failure report

    use crate::test_util::{max_diff, rand};
    use crate::{ConvCache, ConvParams, ConvPath, conv::conv_cached};

    /// The position-vector kernel (≤ 8 output channels per group) and the channel-vector one
    /// (16) against the GEMM path, on planes that take several tasks each (tasks start inside
    /// rows and inside the junk columns), with groups, a 1-channel output and a 1×1 kernel.
    #[test]
    fn narrow_and_wide_direct_kernels_match_the_gemm_path() {
        if !super::applicable(
            &crate::conv::geometry(
                "conv2d",
                &[1, 4, 8, 8],
                &[4, 4, 3, 3],
                None,
                ConvParams::<2>::padding(1),
            )
            .unwrap(),
            crate::isa::active(),
        ) {
            eprintln!("skipped: no AVX2 or AVX-512 here, so no direct path");
            return;
        }
        for (x, w, p) in [
            ([2, 24, 40, 50], [3, 24, 5, 5], ConvParams::<2>::padding(2)),
            ([1, 30, 33, 61], [1, 30, 7, 7], ConvParams::<2>::padding(3)),
            (
                [1, 16, 37, 45],
                [8, 8, 3, 3],
                ConvParams::<2>::padding(1).with_groups(2),
            ),
            ([1, 32, 29, 70], [5, 32, 1, 1], ConvParams::<2>::default()),
            ([1, 12, 31, 47], [16, 12, 3, 3], ConvParams::<2>::padding(1)),
        ] {
            let (x, w, b) = (rand(&x, 1), rand(&w, 2), rand(&w[..1], 3));
            let run = |path| conv_cached(&x, &w, Some(&b), p, &ConvCache::pinned(path)).unwrap();
            let (ours, gemm) = (run(ConvPath::Direct), run(ConvPath::Gemm));
            let diff = max_diff(&ours, &gemm);
            assert!(diff < 1e-4, "{:?} {:?}: max diff {diff}", x.dims(), w.dims());
        }
    }
}
