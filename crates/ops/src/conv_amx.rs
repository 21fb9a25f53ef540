//! bf16 convolution on Intel AMX tiles (`TDPBF16PS`), for the opt-in `bf16` precision.
//!
//! Why AMX and not `VDPBF16PS`: measured on a Sapphire Rapids–class Xeon, one `VDPBF16PS` zmm
//! instruction costs ~0.92 ns against 0.18 ns for an fp32 FMA, so the AVX-512 BF16 dot product
//! does fewer multiply-adds per second than fp32; one AMX `TDPBF16PS` (16 × 16 × 32 MACs)
//! reaches ~1000 GMAC/s per core, ~11× the fp32 FMA peak.
//!
//! The kernel is an implicit GEMM laid out like [`crate::conv_direct`]: for output plane `z`,
//! position `q = y·Wp + x` of the padded plane reads input position `z·Hp·Wp + q + tap`, so 16
//! consecutive output positions are 16 consecutive input positions for every tap. The weights are
//! the A tiles (16 output channels × 32 input channels, packed once as
//! `[16-oc block][tap][32-channel block][oc][channel]`), the input the B tiles, in the channel-pair
//! layout `TDPBF16PS` reads: the input is converted once per call to bf16 **pair planes**
//! (`[channel pair][position]`, 32 bits per position holding channels 2p and 2p + 1), so a B tile
//! row — one pair at 16 consecutive positions — is 64 contiguous bytes, and a tile's 16 rows are
//! 16 pair planes apart. The conversion is then a streaming interleave of two channel rows, and a
//! C tile (16 output channels × 16 positions, fp32, started from the bias) is 16 rows of the
//! output planes themselves. Four C tiles hold 32 output channels × 32 positions; products of
//! bf16 pairs are exact in fp32, and accumulation is fp32 throughout.
//!
//! The tests also run the same loops over the same layouts on emulated tiles (scalar code with
//! `TDPBF16PS`'s arithmetic), so the packing and indexing are tested on any machine; where a CPU
//! has no AMX, the `bf16` precision itself runs fp32 (see [`crate::precision`]).

use rayon::prelude::*;

use crate::access::SharedMut;
use crate::conv::Geometry;

/// Output channels per tile (A and C tile rows).
const OCB: usize = 16;
/// Input channels per tile row (A tile columns, B tile rows × 2).
const CB: usize = 32;
/// Positions per tile (B and C tile columns).
const MB: usize = 16;
/// 32-position sub-chunks per rayon task.
const SUBS: usize = 4;
/// Positions per rayon task.
const NQ: usize = SUBS * 2 * MB;
/// (channel block, tap) steps per K chunk: 9 × 2 KiB of A tiles, kept in L1 while the chunk runs
/// over the task's sub-chunks. The steps go channel block by channel block, each through all taps:
/// the taps of one block read the same few lines of its 16 pair planes (a 3×3 window's rows overlap),
/// which measured 1.7–1.8× faster on the 3-D layers than tap by tap.
const KCH: usize = 9;

/// Whether [`conv_amx`] can run this convolution: stride 1, ungrouped, and enough input
/// channels that padding them to 32 does not waste most of the tile (the 3-channel first
/// layers stay fp32).
pub(crate) fn applicable(g: &Geometry) -> bool {
    g.stride == [1, 1, 1] && g.groups == 1 && g.cin >= 16
}

/// Whether this CPU and OS let the process use AMX bf16 tiles; asks the kernel for the tile
/// state permission on the first call (Linux only).
pub(crate) fn available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(detect)
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn detect() -> bool {
    use std::arch::x86_64::{__cpuid_count, _xgetbv};
    let max_leaf = __cpuid_count(0, 0).eax;
    if max_leaf < 7 {
        return false;
    }
    let l7 = __cpuid_count(7, 0);
    let (amx_bf16, amx_tile) = (l7.edx >> 22 & 1 == 1, l7.edx >> 24 & 1 == 1);
    let osxsave = __cpuid_count(1, 0).ecx >> 27 & 1 == 1;
    if !(amx_bf16 && amx_tile && osxsave) {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is enabled. Bits 17 and 18: XTILECFG and XTILEDATA
    // state enabled by the OS.
    let xcr0 = unsafe { _xgetbv(0) };
    if xcr0 >> 17 & 3 != 3 {
        return false;
    }
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain syscall with integer arguments; it grants the permission process-wide.
    unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0 }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn detect() -> bool {
    false
}

/// fp32 → bf16 bits as `VCVTNEPS2BF16` converts: round to nearest even, denormals to signed zero
/// (the tile arithmetic treats them as zero anyway), NaN stays NaN.
#[inline]
fn bf16(v: f32) -> u16 {
    let b = v.to_bits();
    if v.is_nan() {
        // Keep sign and payload's top bits; set the quiet bit so it cannot round to infinity.
        return ((b >> 16) | 0x40) as u16;
    }
    if b & 0x7f80_0000 == 0 {
        return (b >> 16) as u16 & 0x8000;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

#[cfg(test)]
#[inline]
fn f32_of(b: u16) -> f32 {
    f32::from_bits((b as u32) << 16)
}

/// Taps, padded channel count and 16-channel output blocks of `g`.
fn dims(g: &Geometry) -> (usize, usize, usize) {
    (g.k.iter().product(), g.cin.div_ceil(CB) * CB, g.cout.div_ceil(OCB))
}

/// Where weight `(oc, c, tap)` sits in [`pack_weights`]'s layout.
#[inline]
fn weight_index(oc: usize, c: usize, tap: usize, taps: usize, cbs: usize) -> usize {
    (((oc / OCB * taps + tap) * cbs + c / CB) * OCB + oc % OCB) * CB + c % CB
}

/// The `(out, in, k…)` weights packed into A tiles: `[oc block][tap][c block][oc][c]`, zero past
/// `cout` and `cin`.
pub(crate) fn pack_weights(w: &[f32], g: &Geometry) -> Vec<u16> {
    let (taps, cpad, ob) = dims(g);
    let cbs = cpad / CB;
    let per_block = taps * cbs * OCB * CB;
    let mut out = vec![0u16; ob * per_block];
    out.par_chunks_mut(per_block).enumerate().for_each(|(b, block)| {
        for oc in b * OCB..g.cout.min((b + 1) * OCB) {
            for c in 0..g.cin {
                for t in 0..taps {
                    block[weight_index(oc, c, t, taps, cbs) - b * per_block] = bf16(w[(oc * g.cin + c) * taps + t]);
                }
            }
        }
    });
    out
}

/// The `(out, in, k…)` weights back from [`pack_weights`] (bf16-rounded values).
#[cfg(test)]
fn unpack_weights(packed: &[u16], g: &Geometry) -> Vec<f32> {
    let (taps, cpad, _) = dims(g);
    let cbs = cpad / CB;
    let mut w = vec![0f32; g.cout * g.cin * taps];
    for oc in 0..g.cout {
        for c in 0..g.cin {
            for t in 0..taps {
                w[(oc * g.cin + c) * taps + t] = f32_of(packed[weight_index(oc, c, t, taps, cbs)]);
            }
        }
    }
    w
}

/// One image's input zero-padded and converted to bf16 pair planes: `[cpad / 2][positions]` u32,
/// each plane the padded volume plus `slack` zero positions, into `out` (resized; its old contents
/// do not matter).
fn pack_input(x: &[f32], g: &Geometry, cpad: usize, slack: usize, out: &mut Vec<u32>) {
    #[cfg(target_arch = "x86_64")]
    pack_input_with(x, g, cpad, slack, out, avx512_bf16());
    #[cfg(not(target_arch = "x86_64"))]
    pack_input_with(x, g, cpad, slack, out, false);
}

/// [`pack_input`], on AVX-512 BF16 when `simd` (which the caller checked), else in scalar code.
fn pack_input_with(x: &[f32], g: &Geometry, cpad: usize, slack: usize, out: &mut Vec<u32>, simd: bool) {
    let [id, ih, iw] = g.in_sp;
    let [pd, ph, pw] = g.pad;
    let (hp, wp) = (ih + 2 * ph, iw + 2 * pw);
    let plane = (id + 2 * pd) * hp * wp + slack;
    let chan = id * ih * iw;
    out.clear();
    out.resize(cpad / 2 * plane, 0);
    // One pair plane per item: two input channels interleaved, row by row.
    out.par_chunks_mut(plane).enumerate().for_each(|(p, dst)| {
        let (c0, c1) = (2 * p, 2 * p + 1);
        if c0 >= g.cin {
            return;
        }
        for zi in 0..id {
            for yi in 0..ih {
                let src = (zi * ih + yi) * iw;
                let row = &mut dst[((zi + pd) * hp + yi + ph) * wp + pw..][..iw];
                let lo = &x[c0 * chan + src..][..iw];
                let hi = (c1 < g.cin).then(|| &x[c1 * chan + src..][..iw]);
                #[cfg(target_arch = "x86_64")]
                if simd {
                    // SAFETY: AVX-512F + BF16 checked by the caller; all three rows hold iw values.
                    unsafe { interleave_avx512(lo, hi, row) };
                    continue;
                }
                let _ = simd;
                for (i, d) in row.iter_mut().enumerate() {
                    *d = bf16(lo[i]) as u32 | (hi.map_or(0, |h| bf16(h[i])) as u32) << 16;
                }
            }
        }
    });
}

/// Whether the conversion can use AVX-512 BF16 (every AMX CPU has it; tests may run without).
#[cfg(target_arch = "x86_64")]
fn avx512_bf16() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
}

/// `row[i] = bf16(lo[i]) | bf16(hi[i]) << 16` (`hi` absent: zeros), converted by
/// `VCVTNEPS2BF16` (round to nearest even, like [`bf16`]).
///
/// # Safety
/// AVX-512F and AVX512-BF16 must be available; `lo`, `hi` and `row` have one length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn interleave_avx512(lo: &[f32], hi: Option<&[f32]>, row: &mut [u32]) {
    use std::arch::x86_64::*;
    let n = row.len();
    let convert = |v: __m512| -> __m512i {
        // SAFETY: `__m256bh` and `__m256i` are both 256 plain bits.
        _mm512_cvtepu16_epi32(unsafe { std::mem::transmute::<__m256bh, __m256i>(_mm512_cvtneps_pbh(v)) })
    };
    for i0 in (0..n).step_by(16) {
        let k = (n - i0).min(16);
        let mask: __mmask16 = if k == 16 { u16::MAX } else { (1u16 << k) - 1 };
        // SAFETY: masked lanes are neither read nor written; the others lie in the slices.
        unsafe {
            let l = convert(_mm512_maskz_loadu_ps(mask, lo.as_ptr().add(i0)));
            let h = match hi {
                Some(h) => _mm512_slli_epi32::<16>(convert(_mm512_maskz_loadu_ps(mask, h.as_ptr().add(i0)))),
                None => _mm512_setzero_si512(),
            };
            _mm512_mask_storeu_epi32(row.as_mut_ptr().add(i0).cast(), mask, _mm512_or_si512(l, h));
        }
    }
}

thread_local! {
    /// The packed input of the last call on this thread, kept so that the next call writes
    /// into pages already mapped (a fresh 30 MB buffer per call cost more in page faults than
    /// the conversion itself).
    static INPUT: std::cell::Cell<Vec<u32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The tile operations the kernel needs; [`Amx`] issues them, `Emulated` (tests) computes them.
/// Tiles 0–3 are C (16 oc × 16 positions, fp32), 4–5 A (16 oc × 32 channels, bf16), 6–7 B
/// (16 channel pairs × 16 positions × 2 bf16).
trait Tiles {
    /// Sets up the tile registers on this thread.
    fn begin(&mut self);
    /// C tile `c` := `init` (16 × 16 floats, row-major).
    fn init(&mut self, c: usize, init: &[f32; OCB * MB]);
    /// Loads tile `t` (A or B) from 16 rows of 64 bytes, `stride` bytes apart.
    ///
    /// # Safety
    /// The 16 rows must be readable.
    unsafe fn load(&mut self, t: usize, src: *const u8, stride: usize);
    /// C tile `c` += A tile `a` · B tile `b`.
    fn dot(&mut self, c: usize, a: usize, b: usize);
    /// Stores C tile `c` to 16 × 16 contiguous floats.
    fn store(&mut self, c: usize, dst: &mut [f32; OCB * MB]);
    /// Releases the tile registers.
    fn end(&mut self);
}

/// The real tiles.
#[cfg(target_arch = "x86_64")]
struct Amx;

/// `LDTILECFG`'s 64-byte operand: palette 1, all eight tiles 16 rows × 64 bytes.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

// Each instruction is its own `asm!`: the compiler never uses tile registers, so their
// contents survive between the blocks (`tmm` registers can only be named as clobbers).
#[cfg(target_arch = "x86_64")]
impl Tiles for Amx {
    fn begin(&mut self) {
        let mut cfg = TileConfig {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb: [0; 16],
            rows: [0; 16],
        };
        cfg.colsb[..8].fill(64);
        cfg.rows[..8].fill(16);
        // SAFETY: `available()` was checked by the caller; the operand is a valid config.
        unsafe { std::arch::asm!("ldtilecfg [{0}]", in(reg) &cfg as *const TileConfig, options(nostack, readonly)) };
    }

    fn init(&mut self, c: usize, init: &[f32; OCB * MB]) {
        let (p, s) = (init.as_ptr(), 64usize);
        // SAFETY: `init` holds 16 rows of 64 bytes; tiles are configured (`begin`).
        unsafe {
            match c {
                0 => std::arch::asm!("tileloadd tmm0, [{0} + {1}*1]", in(reg) p, in(reg) s, options(nostack, readonly)),
                1 => std::arch::asm!("tileloadd tmm1, [{0} + {1}*1]", in(reg) p, in(reg) s, options(nostack, readonly)),
                2 => std::arch::asm!("tileloadd tmm2, [{0} + {1}*1]", in(reg) p, in(reg) s, options(nostack, readonly)),
                _ => std::arch::asm!("tileloadd tmm3, [{0} + {1}*1]", in(reg) p, in(reg) s, options(nostack, readonly)),
            }
        }
    }

    unsafe fn load(&mut self, t: usize, src: *const u8, stride: usize) {
        // SAFETY: the caller guarantees 16 readable rows; tiles are configured.
        unsafe {
            match t {
                4 => {
                    std::arch::asm!("tileloadd tmm4, [{0} + {1}*1]", in(reg) src, in(reg) stride, options(nostack, readonly))
                }
                5 => {
                    std::arch::asm!("tileloadd tmm5, [{0} + {1}*1]", in(reg) src, in(reg) stride, options(nostack, readonly))
                }
                6 => {
                    std::arch::asm!("tileloadd tmm6, [{0} + {1}*1]", in(reg) src, in(reg) stride, options(nostack, readonly))
                }
                _ => {
                    std::arch::asm!("tileloadd tmm7, [{0} + {1}*1]", in(reg) src, in(reg) stride, options(nostack, readonly))
                }
            }
        }
    }

    fn dot(&mut self, c: usize, a: usize, b: usize) {
        // SAFETY: tiles are configured; operands are tile registers only.
        unsafe {
            match (c, a, b) {
                (0, 4, 6) => std::arch::asm!("tdpbf16ps tmm0, tmm4, tmm6", options(nostack, nomem)),
                (1, 4, 7) => std::arch::asm!("tdpbf16ps tmm1, tmm4, tmm7", options(nostack, nomem)),
                (2, 5, 6) => std::arch::asm!("tdpbf16ps tmm2, tmm5, tmm6", options(nostack, nomem)),
                (3, 5, 7) => std::arch::asm!("tdpbf16ps tmm3, tmm5, tmm7", options(nostack, nomem)),
                _ => unreachable!("the kernel uses C(m, n) = tile m·2 + n, A = 4 + m, B = 6 + n"),
            }
        }
    }

    fn store(&mut self, c: usize, dst: &mut [f32; OCB * MB]) {
        let p = dst.as_mut_ptr();
        // SAFETY: `dst` holds 16 rows of 64 bytes; tiles are configured.
        unsafe {
            match c {
                0 => std::arch::asm!("tilestored [{0} + {1}*1], tmm0", in(reg) p, in(reg) 64usize, options(nostack)),
                1 => std::arch::asm!("tilestored [{0} + {1}*1], tmm1", in(reg) p, in(reg) 64usize, options(nostack)),
                2 => std::arch::asm!("tilestored [{0} + {1}*1], tmm2", in(reg) p, in(reg) 64usize, options(nostack)),
                _ => std::arch::asm!("tilestored [{0} + {1}*1], tmm3", in(reg) p, in(reg) 64usize, options(nostack)),
            }
        }
    }

    fn end(&mut self) {
        // SAFETY: releases this thread's tile state; always valid after `begin`.
        unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// The tiles computed in scalar code with `TDPBF16PS`'s arithmetic (exact bf16 products,
/// fp32 sums), for CPUs without AMX: the tests run the kernel's loops and layouts through it.
#[cfg(test)]
struct Emulated {
    c: Box<[[f32; OCB * MB]; 4]>,
    ab: Box<[[u16; 16 * CB]; 4]>,
}

#[cfg(test)]
impl Emulated {
    fn new() -> Self {
        Self {
            c: Box::new([[0.0; OCB * MB]; 4]),
            ab: Box::new([[0; 16 * CB]; 4]),
        }
    }
}

#[cfg(test)]
impl Tiles for Emulated {
    fn begin(&mut self) {}

    fn init(&mut self, c: usize, init: &[f32; OCB * MB]) {
        self.c[c].copy_from_slice(init);
    }

    unsafe fn load(&mut self, t: usize, src: *const u8, stride: usize) {
        for r in 0..16 {
            // SAFETY: the caller guarantees 16 readable rows of 64 bytes, `stride` bytes apart.
            let row = unsafe { std::slice::from_raw_parts(src.add(r * stride), 64) };
            for (i, v) in self.ab[t - 4][r * CB..][..CB].iter_mut().enumerate() {
                *v = u16::from_le_bytes([row[2 * i], row[2 * i + 1]]);
            }
        }
    }

    fn dot(&mut self, c: usize, a: usize, b: usize) {
        let (a, b) = (&self.ab[a - 4], &self.ab[b - 4]);
        for m in 0..OCB {
            for n in 0..MB {
                let mut acc = self.c[c][m * MB + n];
                for k in 0..CB / 2 {
                    acc += f32_of(a[m * CB + 2 * k]) * f32_of(b[k * CB + 2 * n])
                        + f32_of(a[m * CB + 2 * k + 1]) * f32_of(b[k * CB + 2 * n + 1]);
                }
                self.c[c][m * MB + n] = acc;
            }
        }
    }

    fn store(&mut self, c: usize, dst: &mut [f32; OCB * MB]) {
        dst.copy_from_slice(&self.c[c]);
    }

    fn end(&mut self) {}
}

/// The convolution (stride 1, ungrouped) into a fresh `(N, Cout, D', H', W')` buffer on AMX
/// tiles; `packed` comes from [`pack_weights`]. The caller checked [`available`].
#[cfg(target_arch = "x86_64")]
pub(crate) fn conv_amx(x: &[f32], bias: Option<&[f32]>, g: &Geometry, packed: &[u16]) -> Vec<f32> {
    // Without the permission (asked for by `available`) the first tile instruction faults.
    assert!(available(), "conv_amx called where AMX is not available");
    run(x, bias, g, packed, || Amx)
}

/// [`conv_amx`] on [`Emulated`] tiles.
#[cfg(test)]
pub(crate) fn conv_emulated(x: &[f32], bias: Option<&[f32]>, g: &Geometry, packed: &[u16]) -> Vec<f32> {
    run(x, bias, g, packed, Emulated::new)
}

fn run<T: Tiles>(
    x: &[f32],
    bias: Option<&[f32]>,
    g: &Geometry,
    packed: &[u16],
    tiles: impl Fn() -> T + Sync,
) -> Vec<f32> {
    let [id, ih, iw] = g.in_sp;
    let [_, ph, pw] = g.pad;
    let [od, oh, ow] = g.out_sp;
    let [_, kh, kw] = g.k;
    let [dd, dh, dw] = g.dil;
    let (hp, wp) = (ih + 2 * ph, iw + 2 * pw);
    let (taps, cpad, ob) = dims(g);
    let cbs = cpad / CB;
    let p_out = od * oh * ow;
    let q_len = (oh - 1) * wp + ow;
    let q_tasks = q_len.div_ceil(NQ);
    // The last 32-position sub-chunk reads up to 31 positions past q_len.
    let slack = 2 * MB;
    let plane = (id + 2 * g.pad[0]) * hp * wp + slack;
    let offsets: Vec<usize> = (0..taps)
        .map(|t| {
            let (z, y, xx) = (t / (kh * kw), (t / kw) % kh, t % kw);
            z * dd * hp * wp + y * dh * wp + xx * dw
        })
        .collect();
    let a_tile = OCB * CB;
    // Each 16-oc block's C tiles start from its bias: row j is bias[oc j] 16 times.
    let bias_tiles: Vec<[f32; OCB * MB]> = (0..ob)
        .map(|b| {
            std::array::from_fn(|i| {
                let oc = b * OCB + i / MB;
                bias.filter(|_| oc < g.cout).map_or(0.0, |bb| bb[oc])
            })
        })
        .collect();

    let mut out = vec![0f32; g.n * g.cout * p_out];
    let out_ptr = SharedMut::new(&mut out);
    // Taken, not borrowed: a rayon thread waiting below may run another convolution.
    let mut input = INPUT.take();
    for ni in 0..g.n {
        pack_input(
            &x[ni * g.cin * id * ih * iw..][..g.cin * id * ih * iw],
            g,
            cpad,
            slack,
            &mut input,
        );
        let input = &input;
        (0..od * q_tasks).into_par_iter().for_each_init(
            || (tiles(), vec![[0f32; OCB * MB]; 4 * SUBS]),
            |(t, acc), task| {
                let (z, qt) = (task / q_tasks, task % q_tasks);
                let q_first = qt * NQ;
                let q_end = (q_first + NQ).min(q_len);
                let subs = (q_end - q_first).div_ceil(2 * MB);
                t.begin();
                for b0 in (0..ob).step_by(2) {
                    let two = b0 + 1 < ob;
                    let used = if two { 4 } else { 2 };
                    // C(m, n) = tile 2m + n: oc block b0 + m, positions q0 + 16n. The K loop is cut
                    // into chunks of KCH (channel block, tap) steps, and each chunk runs over all the
                    // task's sub-chunks before the next: the chunk's A tiles (KCH × 2 KiB) stay in L1
                    // for all of them, and the accumulators go to `acc` in between.
                    for k0 in (0..taps * cbs).step_by(KCH) {
                        for sub in 0..subs {
                            let base = z * hp * wp + q_first + sub * 2 * MB;
                            let acc = &mut acc[sub * 4..][..4];
                            for (c, tile) in acc.iter().enumerate().take(used) {
                                t.init(c, if k0 == 0 { &bias_tiles[b0 + c / 2] } else { tile });
                            }
                            for k in k0..(k0 + KCH).min(taps * cbs) {
                                let (cb, tap) = (k / taps, k % taps);
                                let b_src = input[cb * (CB / 2) * plane + base + offsets[tap]..]
                                    .as_ptr()
                                    .cast::<u8>();
                                let w =
                                    |b: usize| packed[((b * taps + tap) * cbs + cb) * a_tile..].as_ptr().cast::<u8>();
                                // SAFETY: B rows are 16 pair planes, each read at positions
                                // base + off .. +32 < plane (slack covers the sub-chunk past
                                // q_len); A tiles are 1 KiB blocks inside `packed`.
                                unsafe {
                                    t.load(6, b_src, plane * size_of::<u32>());
                                    t.load(7, b_src.add(MB * size_of::<u32>()), plane * size_of::<u32>());
                                    t.load(4, w(b0), CB * size_of::<u16>());
                                    if two {
                                        t.load(5, w(b0 + 1), CB * size_of::<u16>());
                                    }
                                }
                                t.dot(0, 4, 6);
                                t.dot(1, 4, 7);
                                if two {
                                    t.dot(2, 5, 6);
                                    t.dot(3, 5, 7);
                                }
                            }
                            for (c, tile) in acc.iter_mut().enumerate().take(used) {
                                t.store(c, tile);
                            }
                        }
                    }
                    for sub in 0..subs {
                        let q0 = q_first + sub * 2 * MB;
                        // Where each of the 32 positions lands in its output plane (MAX: a junk
                        // column between rows, or past the task's end).
                        let dst: [usize; 2 * MB] = std::array::from_fn(|i| {
                            let q = q0 + i;
                            let (y, xx) = (q / wp, q % wp);
                            if q < q_end && xx < ow { y * ow + xx } else { usize::MAX }
                        });
                        // Each C row is one output channel at 16 positions: copy the valid ones.
                        for (c, tile) in acc[sub * 4..][..used].iter().enumerate() {
                            let (m, n) = (c / 2, c % 2);
                            let oc0 = (b0 + m) * OCB;
                            let dst = &dst[n * MB..][..MB];
                            // One output row, no junk column: a straight copy.
                            let straight = dst[0] != usize::MAX && dst[MB - 1] == dst[0] + MB - 1;
                            for j in 0..OCB.min(g.cout - oc0) {
                                // SAFETY: this task owns plane z, positions q_first..q_end, of
                                // every output channel of image ni.
                                let out_plane = unsafe {
                                    std::slice::from_raw_parts_mut(
                                        out_ptr.ptr().add(((ni * g.cout + oc0 + j) * od + z) * oh * ow),
                                        oh * ow,
                                    )
                                };
                                let row = &tile[j * MB..][..MB];
                                if straight {
                                    out_plane[dst[0]..][..MB].copy_from_slice(row);
                                } else {
                                    for (&d, &v) in dst.iter().zip(row) {
                                        if d != usize::MAX {
                                            out_plane[d] = v;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                t.end();
            },
        );
    }
    INPUT.set(input);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{ConvParams, geometry};
    use crate::test_util::rand_vec;

    /// (input dims, weight dims, padding, dilation) cases: 2-D and 3-D, odd channel and
    /// output counts (padding of both), 1×1, 7×7×7 with 112 → 16 (the mask conv's shape, small).
    fn cases() -> Vec<(Vec<usize>, Vec<usize>, usize, usize)> {
        vec![
            (vec![1, 40, 1, 9, 11], vec![24, 40, 1, 3, 3], 1, 1),
            (vec![2, 64, 4, 8, 8], vec![48, 64, 3, 3, 3], 1, 1),
            (vec![1, 112, 7, 6, 6], vec![16, 112, 7, 7, 7], 3, 1),
            (vec![1, 33, 1, 12, 12], vec![17, 33, 1, 3, 3], 2, 2),
            (vec![1, 32, 1, 5, 70], vec![40, 32, 1, 1, 1], 0, 1),
            (vec![1, 18, 6, 6, 6], vec![20, 18, 3, 3, 3], 1, 1),
        ]
    }

    fn geom(xd: &[usize], wd: &[usize], pad: usize, dil: usize) -> Geometry {
        let mut p = ConvParams::<3>::padding(pad).with_dilation(dil);
        if wd[2] == 1 {
            p.padding[0] = 0;
        }
        geometry("conv3d", xd, wd, Some(&[wd[0]]), p).unwrap()
    }

    /// The fp32 reference on the same bf16-rounded inputs and weights: what the tiles compute up
    /// to summation order.
    fn reference(x: &[f32], w: &[f32], b: &[f32], g: &Geometry) -> Vec<f32> {
        let round = |v: &[f32]| v.iter().map(|&f| f32_of(bf16(f))).collect::<Vec<_>>();
        crate::conv::conv_f32(
            &round(x),
            &round(w),
            Some(b),
            g,
            &crate::ConvCache::pinned(crate::ConvPath::Gemm),
        )
    }

    fn max_rel(a: &[f32], b: &[f32]) -> f32 {
        let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
    }

    #[test]
    fn packed_weights_unpack_to_their_bf16_values() {
        for (xd, wd, pad, dil) in cases() {
            let g = geom(&xd, &wd, pad, dil);
            let w = rand_vec(wd.iter().product(), 3);
            let back = unpack_weights(&pack_weights(&w, &g), &g);
            for (a, b) in w.iter().zip(&back) {
                assert_eq!(f32_of(bf16(*a)), *b);
            }
        }
    }

    #[test]
    fn emulated_tiles_match_fp32_on_bf16_rounded_operands() {
        for (xd, wd, pad, dil) in cases() {
            let g = geom(&xd, &wd, pad, dil);
            let (x, w, b) = (
                rand_vec(xd.iter().product(), 1),
                rand_vec(wd.iter().product(), 2),
                rand_vec(wd[0], 5),
            );
            let got = conv_emulated(&x, Some(&b), &g, &pack_weights(&w, &g));
            let want = reference(&x, &w, &b, &g);
            assert!(max_rel(&got, &want) < 1e-5, "{xd:?} {wd:?}: {}", max_rel(&got, &want));
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_simd_input_packing_equals_the_scalar_one() {
        if !avx512_bf16() {
            eprintln!("skipped: this CPU has no AVX512-BF16 (the scalar packing is what runs)");
            return;
        }
        for (xd, wd, pad, dil) in cases() {
            let g = geom(&xd, &wd, pad, dil);
            let mut x = rand_vec(xd.iter().product(), 1);
            // Ties, tiny and huge values, infinities: the rounding must agree everywhere.
            x[0] = f32::from_bits(0x3f80_8000);
            x[1] = f32::from_bits(0x3f81_8000);
            x[2] = 1e-40;
            x[3] = f32::MAX;
            x[4] = f32::NEG_INFINITY;
            let cpad = g.cin.div_ceil(CB) * CB;
            let (mut a, mut b) = (Vec::<u32>::new(), Vec::<u32>::new());
            pack_input_with(&x, &g, cpad, 32, &mut a, true);
            pack_input_with(&x, &g, cpad, 32, &mut b, false);
            assert!(a == b, "{xd:?}");
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn amx_tiles_match_the_emulation() {
        if !available() {
            // Not a silent pass: the emulation test above covers the layouts; this one needs AMX.
            eprintln!("skipped: this CPU/OS offers no AMX bf16 tiles");
            return;
        }
        for (xd, wd, pad, dil) in cases() {
            let g = geom(&xd, &wd, pad, dil);
            let (x, w, b) = (
                rand_vec(xd.iter().product(), 1),
                rand_vec(wd.iter().product(), 2),
                rand_vec(wd[0], 5),
            );
            let packed = pack_weights(&w, &g);
            let got = conv_amx(&x, Some(&b), &g, &packed);
            let want = conv_emulated(&x, Some(&b), &g, &packed);
            assert!(max_rel(&got, &want) < 1e-5, "{xd:?} {wd:?}: {}", max_rel(&got, &want));
        }
    }
}
