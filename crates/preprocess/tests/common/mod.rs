//! Shared helpers of the parity tests: images from goldens and fixtures, checksums, JSON numbers.

#![allow(dead_code, reason = "each test file uses a subset")]

use candle_core::Tensor;
use image::RgbImage;
use sadtalker_parity::fixtures_dir;
use serde_json::Value;

/// A fixture PNG (`fixtures/<rel>`) as RGB.
pub fn png(rel: &str) -> RgbImage {
    image::open(fixtures_dir().join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e} (regenerate with tools/reference/gen_preprocess_goldens.py)"))
        .to_rgb8()
}

/// An `(H, W, 3)` golden tensor of 0..255 values as an image.
pub fn tensor_image(t: &Tensor) -> RgbImage {
    let (h, w, c) = t.dims3().expect("an (H, W, 3) tensor");
    assert_eq!(c, 3);
    let v: Vec<u8> = t
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("f32 values")
        .into_iter()
        .map(|x| {
            assert!((0.0..=255.0).contains(&x) && x.fract() == 0.0, "{x} is not a byte");
            x as u8
        })
        .collect();
    RgbImage::from_raw(w as u32, h as u32, v).expect("consistent size")
}

/// The goldens' image checksum: the sum of the values, and their sum weighted by
/// `index mod 65521 + 1` (see `checksum` in gen_preprocess_goldens.py).
pub fn checksum(img: &RgbImage) -> [i64; 2] {
    let mut s = [0i64; 2];
    for (i, &v) in img.as_raw().iter().enumerate() {
        s[0] += i64::from(v);
        s[1] += i64::from(v) * ((i as i64) % 65521 + 1);
    }
    s
}

/// Asserts two images are identical, reporting the largest difference and where.
pub fn assert_same_image(label: &str, ours: &RgbImage, reference: &RgbImage) {
    assert_eq!(ours.dimensions(), reference.dimensions(), "{label}: size");
    let mut worst = (0i32, 0usize);
    let mut count = 0;
    for (i, (a, b)) in ours.as_raw().iter().zip(reference.as_raw()).enumerate() {
        let d = (i32::from(*a) - i32::from(*b)).abs();
        if d > 0 {
            count += 1;
        }
        if d > worst.0 {
            worst = (d, i);
        }
    }
    let (w, _) = ours.dimensions();
    let px = worst.1 / 3;
    println!("{label}: {count} values differ, max {} ", worst.0);
    assert_eq!(
        count,
        0,
        "{label}: {count} values differ, max {} at (x {}, y {}, c {})",
        worst.0,
        px % w as usize,
        px / w as usize,
        worst.1 % 3
    );
}

/// `params[key]` as a list of f64.
pub fn f64s(v: &Value, key: &str) -> Vec<f64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not a list"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("`{key}`: not a number")))
        .collect()
}

/// `params[key]` as a list of i64.
pub fn i64s(v: &Value, key: &str) -> Vec<i64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not a list"))
        .iter()
        .map(|x| x.as_i64().unwrap_or_else(|| panic!("`{key}`: not an integer")))
        .collect()
}

/// `params[key]` as a list of `[x, y]` points (float32, as the reference's landmarks).
pub fn points(v: &Value, key: &str) -> Vec<[f32; 2]> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("`{key}` is not a list"))
        .iter()
        .map(|p| {
            let p = p.as_array().expect("a point");
            [p[0].as_f64().expect("x") as f32, p[1].as_f64().expect("y") as f32]
        })
        .collect()
}

/// A tensor's values as f32.
pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32 values")
}
