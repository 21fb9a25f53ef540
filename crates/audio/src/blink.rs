//! Eye blinks: `generate_blink_seq_randomly` of the reference's `generate_batch.py`, with the
//! random source injected.
//!
//! The reference draws from Python's global `random` (a Mersenne Twister). [`PyRandom`]
//! reproduces that generator and `random.choice`, so with the same seed (`random.seed(n)` in
//! Python, [`PyRandom::seed`] here) the blink sequence is identical; any other [`BlinkRng`]
//! gives the same distribution.

/// A source of uniform integers, as `random.choice(range(lo, hi))` consumes them.
pub trait BlinkRng {
    /// A uniform integer in `0..n` (`n > 0`): Python's `Random._randbelow`.
    fn below(&mut self, n: usize) -> usize;
}

/// Python's `random.Random`: MT19937 seeded like `random.seed(int)`.
#[derive(Clone)]
pub struct PyRandom {
    mt: [u32; 624],
    index: usize,
}

const N: usize = 624;
const M: usize = 397;

impl PyRandom {
    /// `random.seed(seed)` for an integer seed (Python uses `abs(seed)` as the key).
    pub fn seed(seed: u64) -> PyRandom {
        let mut key = vec![seed as u32];
        if seed >> 32 != 0 {
            key.push((seed >> 32) as u32);
        }
        let mut r = PyRandom::init_genrand(19_650_218);
        r.init_by_array(&key);
        r
    }

    /// A generator seeded from the clock and process id (for runs that need no reproducibility;
    /// Python seeds from the OS entropy pool instead).
    pub fn from_time() -> PyRandom {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        PyRandom::seed(nanos ^ (u64::from(std::process::id()) << 32))
    }

    fn init_genrand(s: u32) -> PyRandom {
        let mut mt = [0u32; N];
        mt[0] = s;
        for i in 1..N {
            mt[i] = 1_812_433_253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        PyRandom { mt, index: N }
    }

    fn init_by_array(&mut self, key: &[u32]) {
        let mt = &mut self.mt;
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..N.max(key.len()) {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..N - 1 {
            mt[i] = (mt[i] ^ (mt[i - 1] ^ (mt[i - 1] >> 30)).wrapping_mul(1_566_083_941)).wrapping_sub(i as u32);
            i += 1;
            if i >= N {
                mt[0] = mt[N - 1];
                i = 1;
            }
        }
        mt[0] = 0x8000_0000;
        self.index = N;
    }

    /// The next 32-bit output (`genrand_uint32`).
    pub fn next_u32(&mut self) -> u32 {
        if self.index >= N {
            for k in 0..N {
                let y = (self.mt[k] & 0x8000_0000) | (self.mt[(k + 1) % N] & 0x7fff_ffff);
                let mut v = self.mt[(k + M) % N] ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                self.mt[k] = v;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `random.getrandbits(k)` for `k ≤ 64` (32-bit words, least significant first).
    pub fn getrandbits(&mut self, k: u32) -> u64 {
        match k {
            0 => 0,
            1..=32 => u64::from(self.next_u32() >> (32 - k)),
            _ => {
                let low = u64::from(self.next_u32());
                let high = u64::from(self.next_u32() >> (64 - k.min(64)));
                low | (high << 32)
            }
        }
    }

    /// `random.random()`: a 53-bit float in `[0, 1)`.
    pub fn random(&mut self) -> f64 {
        let a = self.next_u32() >> 5;
        let b = self.next_u32() >> 6;
        (f64::from(a) * 67_108_864.0 + f64::from(b)) * (1.0 / 9_007_199_254_740_992.0)
    }
}

impl BlinkRng for PyRandom {
    fn below(&mut self, n: usize) -> usize {
        // _randbelow_with_getrandbits: k = n.bit_length(), redraw until below n.
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }
}

/// The blink shape the random generator places.
pub const BLINK: [f32; 5] = [0.5, 0.9, 1.0, 0.9, 0.5];

/// `generate_blink_seq_randomly(num_frames)`: per-frame eye-closing ratio in `[0, 1]`.
///
/// No blinks for 20 frames or fewer. Each blink starts `choice(range(min(10, T), min(T // 2, 70)))`
/// frames after the previous one ends, while it fits before the last frame. For `T = 21` that
/// range is empty and the reference raises `IndexError`; here that case has no blinks.
pub fn generate_blink_seq_randomly(num_frames: usize, rng: &mut impl BlinkRng) -> Vec<f32> {
    let mut ratio = vec![0f32; num_frames];
    if num_frames <= 20 {
        return ratio;
    }
    let lo = num_frames.min(10);
    let hi = (num_frames / 2).min(70);
    if hi <= lo {
        return ratio;
    }
    let mut frame_id = 0usize;
    while frame_id < num_frames {
        let start = lo + rng.below(hi - lo);
        if frame_id + start + 5 < num_frames {
            ratio[frame_id + start..frame_id + start + 5].copy_from_slice(&BLINK);
            frame_id += start + 5;
        } else {
            break;
        }
    }
    ratio
}

/// `generate_blink_seq(num_frames)`: the deterministic variant (a 9-frame blink every 89
/// frames), defined by the reference but not used by its pipeline.
pub fn generate_blink_seq(num_frames: usize) -> Vec<f32> {
    const SHAPE: [f32; 9] = [0.5, 0.6, 0.7, 0.9, 1.0, 0.9, 0.7, 0.6, 0.5];
    let mut ratio = vec![0f32; num_frames];
    let mut frame_id = 0usize;
    while frame_id < num_frames {
        let start = 80;
        if frame_id + start + 9 < num_frames {
            ratio[frame_id + start..frame_id + start + 9].copy_from_slice(&SHAPE);
            frame_id += start + 9;
        } else {
            break;
        }
    }
    ratio
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython_mersenne_twister() {
        // python3 -c "import random; random.seed(42); print([random.getrandbits(32) for _ in range(3)], random.random())"
        let mut r = PyRandom::seed(42);
        assert_eq!(
            [r.next_u32(), r.next_u32(), r.next_u32()],
            [2_746_317_213, 478_163_327, 107_420_369]
        );
        let mut r = PyRandom::seed(0);
        // python3 -c "import random; random.seed(0); print(random.random())"
        assert_eq!(r.random(), 0.844_421_851_525_048_1);
    }

    #[test]
    fn blinks_fit_and_short_clips_have_none() {
        let mut rng = PyRandom::seed(7);
        assert!(generate_blink_seq_randomly(20, &mut rng).iter().all(|&v| v == 0.0));
        assert!(generate_blink_seq_randomly(21, &mut rng).iter().all(|&v| v == 0.0));
        let r = generate_blink_seq_randomly(300, &mut rng);
        assert!(r.contains(&1.0));
        assert_eq!(r[r.len() - 1], 0.0);
        assert_eq!(generate_blink_seq(100)[84], 1.0);
    }
}
