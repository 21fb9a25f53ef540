//! Spatial ops against `sadtalker_ops`: `grid_sample`, average pooling, concatenation, the
//! dense motion's keypoint geometry, bilinear interpolation, slices, max pooling.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{rand_tensor, rel_err, up};

/// Trilinear sampling of a 5-D volume, with corners inside, across and outside its faces, for
/// both corner conventions; a batch-1 input shared by every grid equals the repeated one.
#[test]
fn trilinear_grid_sample_matches_the_host() {
    let Some(dev) = common::device() else { return };
    let x = rand_tensor(&[1, 4, 5, 6, 7], 1);
    // Coordinates in [-1.3, 1.3): some fall outside the volume.
    let grid = rand_tensor(&[3, 4, 5, 6, 3], 2).affine(1.3, 0.0).unwrap();
    let repeated = x.repeat((3, 1, 1, 1, 1)).unwrap();
    for align in [false, true] {
        let want = sadtalker_ops::grid_sample(&repeated, &grid, align).unwrap();
        let shared = sadtalker_gpu::grid_sample(&up(dev, &x), &up(dev, &grid), align).unwrap();
        let per_batch = sadtalker_gpu::grid_sample(&up(dev, &repeated), &up(dev, &grid), align).unwrap();
        assert_eq!(shared.dims(), [3, 4, 4, 5, 6]);
        // Only the multiply-adds' rounding may differ (the device may fuse them).
        for got in [&shared, &per_batch] {
            let e = rel_err(got, &want);
            assert!(e <= 1e-6, "align_corners={align}: relative error {e:e}");
        }
    }
    // Far outside: every corner weighs zero.
    let far = rand_tensor(&[1, 2, 2, 2, 3], 3).affine(1.0, 1e9).unwrap();
    let y = sadtalker_gpu::grid_sample(&up(dev, &x), &up(dev, &far), false).unwrap();
    assert!(y.to_vec().unwrap().iter().all(|&v| v == 0.0));
}

#[test]
fn grid_sample_checks_shapes() {
    let Some(dev) = common::device() else { return };
    let x = up(dev, &rand_tensor(&[2, 4, 5, 6, 7], 1));
    for g in [vec![3, 4, 5, 6, 3], vec![2, 4, 5, 6, 2], vec![2, 4, 5, 3]] {
        let e = sadtalker_gpu::grid_sample(&x, &up(dev, &rand_tensor(&g, 2)), false).unwrap_err();
        assert!(e.to_string().contains("expected input"), "{g:?}: {e}");
    }
}

#[test]
fn average_pools_match_exactly() {
    let Some(dev) = common::device() else { return };
    let x3 = rand_tensor(&[2, 3, 4, 10, 9], 4);
    let want = sadtalker_ops::avg_pool3d(&x3, [1, 2, 2], [1, 2, 2], [0; 3], true).unwrap();
    let got = sadtalker_gpu::avg_pool(&up(dev, &x3), [1, 2, 2], [1, 2, 2]).unwrap();
    assert_eq!(got.dims(), [2, 3, 4, 5, 4]);
    assert_eq!(
        got.to_vec().unwrap(),
        want.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let x2 = rand_tensor(&[1, 5, 11, 8], 5);
    for (k, s) in [([2, 2], [2, 2]), ([3, 2], [2, 1])] {
        let want = sadtalker_ops::avg_pool2d(&x2, k, s, [0, 0], true).unwrap();
        let got = sadtalker_gpu::avg_pool(&up(dev, &x2), k, s).unwrap();
        assert_eq!(got.dims(), want.dims());
        assert_eq!(
            got.to_vec().unwrap(),
            want.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{k:?}/{s:?}"
        );
    }
    assert!(sadtalker_gpu::avg_pool(&up(dev, &x2), [12, 2], [1, 1]).is_err());
    assert!(sadtalker_gpu::avg_pool(&up(dev, &x3), [2, 2], [2, 2]).is_err());
}

/// Max pooling with padding (ResNet's stem: 3×3, stride 2, padding 1), without, with a NaN and
/// with negative values at the padded border, is the host's exactly.
#[test]
fn max_pools_match_exactly() {
    let Some(dev) = common::device() else { return };
    let x = rand_tensor(&[2, 3, 13, 10], 6).affine(1.0, -2.0).unwrap();
    let mut values = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    values[17] = f32::NAN;
    let x = candle_core::Tensor::from_vec(values, x.dims(), x.device()).unwrap();
    for (k, s, p) in [
        ([3, 3], [2, 2], [1, 1]),
        ([2, 2], [2, 2], [0, 0]),
        ([3, 2], [1, 2], [1, 0]),
    ] {
        let want = sadtalker_ops::max_pool2d(&x, k, s, p).unwrap();
        let got = sadtalker_gpu::max_pool2d(&up(dev, &x), k, s, p).unwrap();
        assert_eq!(got.dims(), want.dims());
        let (got, want) = (got.to_vec().unwrap(), host_values(&want));
        let same = got.iter().zip(&want).all(|(a, b)| a == b || (a.is_nan() && b.is_nan()));
        let bad: Vec<_> = got
            .iter()
            .zip(&want)
            .enumerate()
            .filter(|(_, (a, b))| !(a == b || (a.is_nan() && b.is_nan())))
            .take(5)
            .collect();
        assert!(same, "{k:?}/{s:?}/{p:?}: {bad:?}");
        assert!(got.iter().any(|v| v.is_nan()), "the NaN wins its windows");
    }
    assert!(sadtalker_gpu::max_pool2d(&up(dev, &x), [3, 3], [2, 2], [2, 2]).is_err());
}

#[test]
fn channel_concatenation_matches_candle() {
    let Some(dev) = common::device() else { return };
    let a = rand_tensor(&[3, 2, 4, 5], 1);
    let b = rand_tensor(&[3, 5, 4, 5], 2);
    let c = rand_tensor(&[3, 1, 4, 5], 3);
    let want = candle_core::Tensor::cat(&[&a, &b, &c], 1).unwrap();
    let got = sadtalker_gpu::cat_channels(&[&up(dev, &a), &up(dev, &b), &up(dev, &c)]).unwrap();
    assert_eq!(got.dims(), [3, 8, 4, 5]);
    assert_eq!(
        got.to_vec().unwrap(),
        want.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let e = sadtalker_gpu::cat_channels(&[&up(dev, &a), &up(dev, &rand_tensor(&[3, 2, 4, 4], 4))]).unwrap_err();
    assert!(e.to_string().contains("differ outside dimension 1"), "{e}");
}

/// Keypoint pairs for `n` points from a seeded tensor, in the volume's range.
fn pairs(n: usize, seed: u64) -> Vec<sadtalker_ops::KeypointPair> {
    let v = rand_tensor(&[n, 6], seed).affine(0.9, 0.0).unwrap();
    v.to_vec2::<f32>()
        .unwrap()
        .iter()
        .map(|r| sadtalker_ops::KeypointPair {
            driving: [r[0], r[1], r[2]],
            source: [r[3], r[4], r[5]],
        })
        .collect()
}

/// The dense motion's sparse motions (exact: the grid comes from the host) and heatmaps (the
/// device's `exp`), for two frames of five keypoints on an uneven volume.
#[test]
fn keypoint_motions_match_the_host() {
    let Some(dev) = common::device() else { return };
    let p = pairs(10, 6);
    let (want_s, want_h) = sadtalker_ops::keypoint_motions(&p, 2, (3, 5, 7)).unwrap();
    let (sparse, heatmap) = sadtalker_gpu::keypoint_motions(dev, &p, 2, (3, 5, 7)).unwrap();
    assert_eq!(sparse.dims(), [12, 3, 5, 7, 3]);
    assert_eq!(heatmap.dims(), [12, 1, 3, 5, 7]);
    assert_eq!(
        sparse.to_vec().unwrap(),
        want_s.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    let e = rel_err(&heatmap, &want_h);
    eprintln!("heatmaps: relative error {e:e}");
    assert!(e <= 1e-5, "heatmaps: relative error {e:e}");
    assert!(sadtalker_gpu::keypoint_motions(dev, &p[..9], 2, (3, 5, 7)).is_err());
}

/// The mask's softmax over the keypoints and the weighted motion, with logits wide enough
/// that some weights fall under the 1e-3 cut.
#[test]
fn motion_mask_matches_the_host() {
    let Some(dev) = common::device() else { return };
    let logits = rand_tensor(&[2, 6, 3, 5, 7], 7).affine(6.0, 0.0).unwrap();
    let sparse = rand_tensor(&[12, 3, 5, 7, 3], 8);
    let (want_m, want_d) = sadtalker_ops::motion_mask(&logits, &sparse).unwrap();
    let cut = want_m
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .filter(|&&m| m < 1e-3)
        .count();
    assert!(cut > 0, "no weight under the cut: the test would not exercise it");
    let (mask, deformation) = sadtalker_gpu::motion_mask(&up(dev, &logits), &up(dev, &sparse)).unwrap();
    let (em, ed) = (rel_err(&mask, &want_m), rel_err(&deformation, &want_d));
    eprintln!("mask {em:e}, deformation {ed:e} relative");
    assert!(em <= 1e-5 && ed <= 1e-5, "mask {em:e}, deformation {ed:e} relative");
    let bad = up(dev, &rand_tensor(&[10, 3, 5, 7, 3], 9));
    let e = sadtalker_gpu::motion_mask(&up(dev, &logits), &bad).unwrap_err();
    assert!(e.to_string().contains("expected logits"), "{e}");
}

/// GFPGAN's bilinear resizes (x2 and x0.5, `align_corners=False`) and a resize to a size with
/// `align_corners=True`: the host's taps, within the rounding of a fused multiply-add.
#[test]
fn bilinear_interpolation_matches_the_host() {
    let Some(dev) = common::device() else { return };
    let x = rand_tensor(&[2, 3, 10, 7], 10);
    for (resize, align) in [
        (sadtalker_ops::Resize::Scale(vec![2.0, 2.0]), false),
        (sadtalker_ops::Resize::Scale(vec![0.5, 0.5]), false),
        (sadtalker_ops::Resize::Size(vec![13, 4]), true),
    ] {
        let want = sadtalker_ops::interpolate_bilinear(&x, &resize, align).unwrap();
        let got = sadtalker_gpu::interpolate_bilinear(&up(dev, &x), &resize, align).unwrap();
        let e = rel_err(&got, &want);
        assert!(e <= 1e-6, "{resize:?}, align_corners={align}: relative error {e:e}");
    }
    assert!(
        sadtalker_gpu::interpolate_bilinear(
            &up(dev, &rand_tensor(&[2, 3, 4], 1)),
            &sadtalker_ops::Resize::Scale(vec![2.0]),
            false
        )
        .is_err()
    );
}

#[test]
fn channel_slices_match_candle() {
    let Some(dev) = common::device() else { return };
    let x = rand_tensor(&[3, 6, 4, 5], 11);
    let got = sadtalker_gpu::narrow(&up(dev, &x), 1, 2, 3).unwrap();
    assert_eq!(got.dims(), [3, 3, 4, 5]);
    assert_eq!(got.to_vec().unwrap(), host_values(&x.narrow(1, 2, 3).unwrap()));
    assert!(sadtalker_gpu::narrow(&up(dev, &x), 1, 4, 3).is_err());
}

/// Slices of every axis, short ones by the gather kernel and long ones (≥ 4096 elements) by
/// buffer copies, are candle's exactly.
#[test]
fn slices_of_any_axis_match_candle() {
    let Some(dev) = common::device() else { return };
    for (dims, dim, start, len) in [
        (vec![2, 7, 27], 2, 3, 21),
        (vec![2, 7, 27], 0, 1, 1),
        (vec![3, 6, 4, 5], 2, 1, 2),
        (vec![2, 3, 64, 70], 2, 4, 60),
    ] {
        let x = rand_tensor(&dims, 12);
        let got = sadtalker_gpu::narrow(&up(dev, &x), dim, start, len).unwrap();
        let want = x.narrow(dim, start, len).unwrap();
        assert_eq!(got.dims(), want.dims(), "{dims:?} axis {dim}");
        assert_eq!(got.to_vec().unwrap(), host_values(&want), "{dims:?} axis {dim}");
    }
    let x = up(dev, &rand_tensor(&[2, 7, 27], 1));
    assert!(sadtalker_gpu::narrow(&x, 3, 0, 1).is_err());
    assert!(sadtalker_gpu::narrow(&x, 2, 20, 8).is_err());
}

fn host_values(t: &candle_core::Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}
