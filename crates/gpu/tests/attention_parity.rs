//! softmax, transpose, pad and RestoreFormer's attention against `sadtalker_ops` / candle.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{rand_tensor, rel_err, up};

#[test]
fn softmax_matches_along_every_axis() {
    let Some(dev) = common::device() else { return };
    let shape = [3, 5, 7, 4];
    let x = rand_tensor(&shape, 31).affine(4.0, 1.0).unwrap();
    for dim in 0..shape.len() {
        // The host's softmax along the last axis, with `dim` moved there and back.
        let last = shape.len() - 1;
        let want = sadtalker_ops::softmax_last_dim(&x.transpose(dim, last).unwrap().contiguous().unwrap())
            .unwrap()
            .transpose(dim, last)
            .unwrap()
            .contiguous()
            .unwrap();
        let got = sadtalker_gpu::softmax(&up(dev, &x), dim).unwrap();
        let e = rel_err(&got, &want);
        assert!(e <= 1e-6, "axis {dim}: relative error {e:e}");
    }
    assert!(sadtalker_gpu::softmax(&up(dev, &x), 4).is_err());
}

#[test]
fn transpose_and_pad_are_exact() {
    let Some(dev) = common::device() else { return };
    let x = rand_tensor(&[2, 3, 5, 7], 32);
    let t = sadtalker_gpu::transpose_last2(&up(dev, &x)).unwrap();
    assert_eq!(t.dims(), [2, 3, 7, 5]);
    let want = x.transpose(2, 3).unwrap().contiguous().unwrap();
    assert_eq!(rel_err(&t, &want), 0.0);
    let p = sadtalker_gpu::pad2d(&up(dev, &x), [0, 1, 2, 3]).unwrap();
    assert_eq!(p.dims(), [2, 3, 10, 8]);
    let want = x.pad_with_zeros(3, 0, 1).unwrap().pad_with_zeros(2, 2, 3).unwrap();
    assert_eq!(rel_err(&p, &want), 0.0);
}

#[test]
fn attention_matches() {
    let Some(dev) = common::device() else { return };
    // RestoreFormer's shape at its attention resolution (reduced width), and two samples.
    for (shape, heads) in [([1, 64, 16, 16], 8), ([2, 12, 3, 5], 3)] {
        let [q, k, v] = [41, 42, 43].map(|s| rand_tensor(&shape, s));
        let want = sadtalker_ops::attention(&q, &k, &v, heads).unwrap();
        let got = sadtalker_gpu::attention(&up(dev, &q), &up(dev, &k), &up(dev, &v), heads).unwrap();
        let e = rel_err(&got, &want);
        assert!(e <= 1e-5, "{shape:?} / {heads}: relative error {e:e}");
    }
    let x = up(dev, &rand_tensor(&[1, 6, 2, 2], 1));
    assert!(sadtalker_gpu::attention(&x, &x, &x, 4).is_err());
}
