//! instance_norm and group_norm against `sadtalker_ops`.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{rand_tensor, rel_err, up};

#[test]
fn instance_norm_matches() {
    let Some(dev) = common::device() else { return };
    for (shape, affine) in [
        (vec![2, 3, 17, 19], true),
        (vec![1, 4, 300], false),
        (vec![1, 2, 8, 64, 64], true),
        // Two-element planes. (A one-element plane has variance 0: the output is then x·a + beta with
        // a = 1/sqrt(eps) ≈ 316, a cancellation that magnifies the last-bit difference between the f32
        // and f64 invstd beyond 1e-5 of the result; not a case the renderer has.)
        (vec![1, 5, 2, 1], true),
        // More planes than one grid row of 65535 workgroups (16 values each: with 3, some of the
        // 66000 planes have a variance small enough to hit the cancellation described above).
        (vec![2, 33000, 16], true),
    ] {
        let c = shape[1];
        let x = rand_tensor(&shape, 11);
        // Offset so the mean is far from zero: what a two-pass variance must survive.
        let x = x.affine(3.0, 5.0).unwrap();
        let w = affine.then(|| rand_tensor(&[c], 12));
        let b = affine.then(|| rand_tensor(&[c], 13));
        let want = sadtalker_ops::instance_norm(&x, w.as_ref(), b.as_ref(), 1e-5).unwrap();
        let (wd, bd) = (w.as_ref().map(|t| up(dev, t)), b.as_ref().map(|t| up(dev, t)));
        let got = sadtalker_gpu::instance_norm(&up(dev, &x), wd.as_ref(), bd.as_ref(), 1e-5).unwrap();
        let e = rel_err(&got, &want);
        assert!(e <= 1e-5, "{shape:?}: relative error {e:e}");
    }
}

#[test]
fn group_norm_matches() {
    let Some(dev) = common::device() else { return };
    // RestoreFormer's GroupNorm(32, c, eps=1e-6): several channels per group, with and without the
    // affine parameters; and groups of one channel (instance norm).
    for (shape, groups, affine) in [
        (vec![1, 64, 9, 7], 32, true),
        (vec![2, 96, 5, 5], 32, false),
        (vec![1, 8, 3, 11], 8, true),
        (vec![1, 6, 40], 1, true),
    ] {
        let c = shape[1];
        let x = rand_tensor(&shape, 21).affine(2.0, -3.0).unwrap();
        let w = affine.then(|| rand_tensor(&[c], 22));
        let b = affine.then(|| rand_tensor(&[c], 23));
        let want = sadtalker_ops::group_norm(&x, groups, w.as_ref(), b.as_ref(), 1e-6).unwrap();
        let (wd, bd) = (w.as_ref().map(|t| up(dev, t)), b.as_ref().map(|t| up(dev, t)));
        let got = sadtalker_gpu::group_norm(&up(dev, &x), groups, wd.as_ref(), bd.as_ref(), 1e-6).unwrap();
        let e = rel_err(&got, &want);
        assert!(e <= 1e-5, "{shape:?} / {groups}: relative error {e:e}");
    }
    let x = up(dev, &rand_tensor(&[1, 6, 4, 4], 1));
    let e = sadtalker_gpu::group_norm(&x, 4, None, None, 1e-6).unwrap_err();
    assert!(e.to_string().contains("cannot be split into 4 groups"), "{e}");
}

#[test]
fn instance_norm_checks_the_affine_shape() {
    let Some(dev) = common::device() else { return };
    let x = up(dev, &rand_tensor(&[1, 3, 4, 4], 1));
    let w = up(dev, &rand_tensor(&[4], 2));
    let e = sadtalker_gpu::instance_norm(&x, Some(&w), None, 1e-5).unwrap_err();
    assert!(e.to_string().contains("does not match 3 channels"), "{e}");
}

#[test]
fn instance_norm_modulate_matches() {
    let Some(dev) = common::device() else { return };
    for shape in [vec![2, 3, 17, 19], vec![1, 8, 64, 64]] {
        let mut gb_shape = shape.clone();
        gb_shape[1] *= 2;
        let x = rand_tensor(&shape, 21).affine(2.0, -3.0).unwrap();
        let gb = rand_tensor(&gb_shape, 22);
        let want = sadtalker_ops::instance_norm_modulate(&x, &gb, 1e-5).unwrap();
        let got = sadtalker_gpu::instance_norm_modulate(&up(dev, &x), None, None, &up(dev, &gb), 1e-5).unwrap();
        let e = rel_err(&got, &want);
        assert!(e <= 1e-5, "{shape:?}: relative error {e:e}");
        // With affine parameters: the norm, then the modulation.
        let c = shape[1];
        let (w, b) = (rand_tensor(&[c], 23), rand_tensor(&[c], 24));
        let norm = sadtalker_ops::instance_norm(&x, Some(&w), Some(&b), 1e-5).unwrap();
        let (gamma, beta) = (gb.narrow(1, 0, c).unwrap(), gb.narrow(1, c, c).unwrap());
        let want = ((norm * (gamma + 1.0).unwrap()).unwrap() + beta).unwrap();
        let (wd, bd) = (up(dev, &w), up(dev, &b));
        let got =
            sadtalker_gpu::instance_norm_modulate(&up(dev, &x), Some(&wd), Some(&bd), &up(dev, &gb), 1e-5).unwrap();
        let e = rel_err(&got, &want);
        assert!(e <= 1e-5, "{shape:?} affine: relative error {e:e}");
    }
    let x = up(dev, &rand_tensor(&[1, 3, 4, 4], 1));
    let e = sadtalker_gpu::instance_norm_modulate(&x, None, None, &x, 1e-5).unwrap_err();
    assert!(e.to_string().contains("must be [1, 6, 4, 4]"), "{e}");
}
