//! RGB ⇄ YUV 4:2:0 conversion, BT.601 limited range (what the H.264 stream's VUI declares, and what
//! decoders such as ffmpeg and browsers assume for untagged SD video).
//!
//! Hand-written rather than OpenH264's helpers because those truncate instead of rounding (a
//! systematic −0.5 bias, worth about 0.3 dB PSNR) and cannot pad odd-sized frames.

/// One 4:2:0 picture with even width and height, planes tightly packed.
pub(crate) struct Yuv420 {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl Yuv420 {
    /// A picture of the given even size.
    pub fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            y: vec![0; width * height],
            u: vec![0; width / 2 * (height / 2)],
            v: vec![0; width / 2 * (height / 2)],
        }
    }

    /// Fills the picture from tightly packed RGB24 of `src_w`×`src_h`, which must be at most one pixel
    /// smaller than the picture in each direction: the missing last column/row repeats the edge.
    pub fn fill_from_rgb(&mut self, rgb: &[u8], src_w: usize, src_h: usize) {
        debug_assert!(src_w <= self.width && src_w + 1 >= self.width);
        debug_assert!(src_h <= self.height && src_h + 1 >= self.height);
        debug_assert_eq!(rgb.len(), src_w * src_h * 3);
        let pixel = |x: usize, y: usize| -> [i32; 3] {
            let i = (y.min(src_h - 1) * src_w + x.min(src_w - 1)) * 3;
            [i32::from(rgb[i]), i32::from(rgb[i + 1]), i32::from(rgb[i + 2])]
        };
        let half_w = self.width / 2;
        for cy in 0..self.height / 2 {
            for cx in 0..half_w {
                let mut sum = [0i32; 3];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let (x, y) = (cx * 2 + dx, cy * 2 + dy);
                    let [r, g, b] = pixel(x, y);
                    self.y[y * self.width + x] = luma(r, g, b);
                    sum[0] += r;
                    sum[1] += g;
                    sum[2] += b;
                }
                let (u, v) = chroma4(sum[0], sum[1], sum[2]);
                self.u[cy * half_w + cx] = u;
                self.v[cy * half_w + cx] = v;
            }
        }
    }
}

// BT.601 limited-range coefficients, scaled by 2^16 for integer arithmetic.
const SHIFT: i32 = 16;
const HALF: i32 = 1 << (SHIFT - 1);

/// Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255, rounded.
fn luma(r: i32, g: i32, b: i32) -> u8 {
    const KR: i32 = 16829; // 65.481 / 255 * 65536
    const KG: i32 = 33039; // 128.553 / 255 * 65536
    const KB: i32 = 6416; // 24.966 / 255 * 65536
    ((KR * r + KG * g + KB * b + HALF) >> SHIFT).clamp(0, 219) as u8 + 16
}

/// Cb, Cr of the average of four pixels whose channel sums are given, rounded.
fn chroma4(r4: i32, g4: i32, b4: i32) -> (u8, u8) {
    // Cb = 128 + (-37.797 R - 74.203 G + 112 B) / 255 ; Cr = 128 + (112 R - 93.786 G - 18.214 B) / 255.
    // The /4 of the average is folded into the shift.
    const UR: i32 = -9714;
    const UG: i32 = -19070;
    const UB: i32 = 28784;
    const VR: i32 = 28784;
    const VG: i32 = -24103;
    const VB: i32 = -4681;
    let round = 1 << (SHIFT + 1);
    let u = (UR * r4 + UG * g4 + UB * b4 + round) >> (SHIFT + 2);
    let v = (VR * r4 + VG * g4 + VB * b4 + round) >> (SHIFT + 2);
    ((u + 128).clamp(16, 240) as u8, (v + 128).clamp(16, 240) as u8)
}

/// Converts a decoded 4:2:0 picture (planes with strides) to tightly packed RGB24 of `width`×`height`.
pub(crate) fn yuv420_to_rgb(
    planes: (&[u8], &[u8], &[u8]),
    strides: (usize, usize, usize),
    width: usize,
    height: usize,
    out: &mut [u8],
) {
    // Inverse of the above: R = 1.164 (Y-16) + 1.596 (Cr-128), etc., in 2^16 fixed point.
    const KY: i32 = 76309;
    const RV: i32 = 104597;
    const GU: i32 = -25675;
    const GV: i32 = -53279;
    const BU: i32 = 132201;
    let (yp, up, vp) = planes;
    for row in 0..height {
        let yrow = &yp[row * strides.0..];
        let urow = &up[(row / 2) * strides.1..];
        let vrow = &vp[(row / 2) * strides.2..];
        let orow = &mut out[row * width * 3..(row + 1) * width * 3];
        for x in 0..width {
            let y = KY * (i32::from(yrow[x]) - 16) + HALF;
            let u = i32::from(urow[x / 2]) - 128;
            let v = i32::from(vrow[x / 2]) - 128;
            let px = &mut orow[x * 3..x * 3 + 3];
            px[0] = ((y + RV * v) >> SHIFT).clamp(0, 255) as u8;
            px[1] = ((y + GU * u + GV * v) >> SHIFT).clamp(0, 255) as u8;
            px[2] = ((y + BU * u) >> SHIFT).clamp(0, 255) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Converting there and back loses only what 4:2:0 subsampling and 8-bit rounding must lose:
    /// on flat 2×2 blocks (no subsampling loss) every channel comes back within 2 levels.
    #[test]
    fn round_trip_on_flat_blocks_is_near_exact() {
        let (w, h) = (16usize, 16usize);
        let mut rgb = vec![0u8; w * h * 3];
        for by in 0..h / 2 {
            for bx in 0..w / 2 {
                let c = [
                    (bx * 37 % 256) as u8,
                    (by * 53 % 256) as u8,
                    ((bx + by) * 29 % 256) as u8,
                ];
                for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                    let i = ((by * 2 + dy) * w + bx * 2 + dx) * 3;
                    rgb[i..i + 3].copy_from_slice(&c);
                }
            }
        }
        let mut yuv = Yuv420::new(w, h);
        yuv.fill_from_rgb(&rgb, w, h);
        let mut back = vec![0u8; w * h * 3];
        yuv420_to_rgb((&yuv.y, &yuv.u, &yuv.v), (w, w / 2, w / 2), w, h, &mut back);
        let worst = rgb.iter().zip(&back).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
        assert!(worst <= 2, "max channel error {worst}");
    }

    #[test]
    fn reference_colours_match_bt601() {
        assert_eq!(luma(0, 0, 0), 16);
        assert_eq!(luma(255, 255, 255), 235);
        assert_eq!(chroma4(0, 0, 0), (128, 128));
        assert_eq!(chroma4(4 * 255, 4 * 255, 4 * 255), (128, 128));
        // Pure red: Y 81, Cb 90, Cr 240 (BT.601 limited range).
        assert_eq!(luma(255, 0, 0), 81);
        assert_eq!(chroma4(4 * 255, 0, 0), (90, 240));
    }

    #[test]
    fn odd_sizes_repeat_the_edge() {
        // 3x1 image padded to 4x2: the padding column and row repeat the last pixel.
        let rgb = [10, 10, 10, 20, 20, 20, 200, 200, 200];
        let mut yuv = Yuv420::new(4, 2);
        yuv.fill_from_rgb(&rgb, 3, 1);
        assert_eq!(yuv.y[3], yuv.y[2]);
        assert_eq!(&yuv.y[4..8], &yuv.y[0..4]);
    }
}
