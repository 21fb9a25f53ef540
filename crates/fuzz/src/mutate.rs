//! Input mutation: the byte-level moves that find bugs in binary decoders without coverage feedback
//! (size and count fields set to boundary values, truncation, splicing), plus number swaps for the
//! text formats.

/// xorshift64*: fast, seedable, good enough to pick mutations.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is remapped: xorshift would stay at 0).
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (`0` when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }
}

const INTERESTING_8: [u8; 9] = [0, 1, 0x7f, 0x80, 0xff, 0x10, 0x20, 0x40, 0xfe];
const INTERESTING_32: [u32; 14] = [
    0,
    1,
    2,
    8,
    0x7f,
    0xff,
    0x100,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    0x0100_0000,
];
const INTERESTING_64: [u64; 5] = [0, u64::MAX, i64::MAX as u64, 1 << 32, 1 << 40];
const NUMBERS: [&str; 14] = [
    "0",
    "-1",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "99999999999999999999",
    "4294967296",
    "1e-320",
    "",
    "0x10",
    "1.5",
    "65536",
    "-0",
];

/// Applies a few random mutations to `data`, keeping it at most `max_len` bytes. `others` are the
/// other seeds, for splicing.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>], max_len: usize) {
    let rounds = if rng.one_in(4) {
        1 + rng.below(16)
    } else {
        1 + rng.below(3)
    };
    for _ in 0..rounds {
        mutate_once(rng, data, others);
    }
    data.truncate(max_len);
}

fn put(data: &mut [u8], at: usize, bytes: &[u8]) {
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(d) = data.get_mut(at + i) {
            *d = b;
        }
    }
}

fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, others: &[Vec<u8>]) {
    let len = data.len();
    let at = rng.below(len.max(1));
    match rng.below(14) {
        0 if len > 0 => data[at] ^= 1 << rng.below(8),
        1 if len > 0 => data[at] = rng.next_u64() as u8,
        2 if len > 0 => data[at] = INTERESTING_8[rng.below(INTERESTING_8.len())],
        // Size and count fields: boundary values, either byte order, often aligned.
        3 | 4 => {
            let v = match rng.below(4) {
                0 => len as u32,
                1 => (len as u32).wrapping_add(rng.below(64) as u32).wrapping_sub(32),
                _ => INTERESTING_32[rng.below(INTERESTING_32.len())],
            };
            let at = if rng.one_in(2) { at & !3 } else { at };
            let bytes = if rng.one_in(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            if rng.one_in(3) {
                put(data, at, &bytes[2..]);
            } else {
                put(data, at, &bytes);
            }
        }
        5 => {
            let v = INTERESTING_64[rng.below(INTERESTING_64.len())];
            let bytes = if rng.one_in(2) {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            put(data, at & !7, &bytes);
        }
        6 if len > 1 => {
            let n = 1 + rng.below((len - at).min(256));
            data.drain(at..at + n);
        }
        7 => {
            let n = 1 + rng.below(64);
            let fill = rng.next_u64() as u8;
            let random = rng.one_in(2);
            let bytes: Vec<u8> = (0..n)
                .map(|_| if random { rng.next_u64() as u8 } else { fill })
                .collect();
            data.splice(at.min(len)..at.min(len), bytes);
        }
        // Duplicate a chunk (repeated boxes, chunks, rows).
        8 if len > 1 => {
            let n = 1 + rng.below((len - at).min(512));
            let chunk = data[at..at + n].to_vec();
            let to = rng.below(len + 1);
            data.splice(to..to, chunk);
        }
        // A cut-short file.
        9 if len > 1 => data.truncate(rng.below(len)),
        // The start of this input with the end of another.
        10 if !others.is_empty() => {
            let other = &others[rng.below(others.len())];
            let from = rng.below(other.len().max(1));
            data.truncate(at);
            data.extend_from_slice(other.get(from..).unwrap_or_default());
        }
        // Small arithmetic on a byte (lengths off by a few).
        11 if len > 0 => data[at] = data[at].wrapping_add((rng.below(16) as u8).wrapping_sub(8)),
        // Text formats: a number (or where one could be) swapped for an edge case.
        12 | 13 => {
            let start = (at..len).find(|&i| data[i].is_ascii_digit()).unwrap_or(at.min(len));
            let end = (start..len)
                .find(|&i| !(data[i].is_ascii_digit() || data[i] == b'.'))
                .unwrap_or(len);
            let with = NUMBERS[rng.below(NUMBERS.len())].as_bytes().to_vec();
            data.splice(start..end, with);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutation_is_deterministic_and_bounded() {
        let seed = b"RIFF\x24\0\0\0WAVEfmt ".to_vec();
        let run = |s: u64| {
            let mut rng = Rng::new(s);
            let mut d = seed.clone();
            for _ in 0..200 {
                mutate(&mut rng, &mut d, std::slice::from_ref(&seed), 64);
                assert!(d.len() <= 64);
            }
            d
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
