//! Element-wise ops against `sadtalker_ops`, bit for bit.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{rand_tensor, up};

#[test]
fn leaky_relu_matches_exactly() {
    let Some(dev) = common::device() else { return };
    for (shape, slope) in [(vec![3, 5, 7], 0.2f32), (vec![1, 64, 33, 33], 0.01), (vec![5], 0.0)] {
        let x = rand_tensor(&shape, 7);
        let want = sadtalker_ops::leaky_relu(&x, slope)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let got = sadtalker_gpu::leaky_relu(&up(dev, &x), slope).unwrap();
        assert_eq!(got.dims(), shape.as_slice());
        assert_eq!(got.to_vec().unwrap(), want, "slope {slope}");
    }
}

#[test]
fn relu_and_empty_tensors() {
    let Some(dev) = common::device() else { return };
    let x = sadtalker_gpu::GpuTensor::from_slice(dev, &[-1.0, 0.5, f32::NAN], &[3]).unwrap();
    let y = sadtalker_gpu::relu(&x).unwrap().to_vec().unwrap();
    assert_eq!(&y[..2], &[0.0, 0.5]);
    assert!(y[2].is_nan());
    let e = sadtalker_gpu::GpuTensor::from_slice(dev, &[], &[2, 0]).unwrap();
    assert_eq!(sadtalker_gpu::relu(&e).unwrap().to_vec().unwrap(), Vec::<f32>::new());
}

#[test]
fn greater_is_a_zero_one_mask() {
    let Some(dev) = common::device() else { return };
    let v = [-1.0, 0.05, 0.050001, 0.7, 2.0, f32::NAN, f32::INFINITY];
    let x = sadtalker_gpu::GpuTensor::from_slice(dev, &v, &[7]).unwrap();
    let y = sadtalker_gpu::greater(&x, 0.05).unwrap().to_vec().unwrap();
    assert_eq!(y, [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0]);
}

#[test]
fn leaky_relu_past_one_grid_row() {
    // More elements than 65535 workgroups of 256 hold: the kernel's second grid dimension.
    let Some(dev) = common::device() else { return };
    let n = 65535 * 256 + 1000;
    let xs: Vec<f32> = (0..n)
        .map(|i| if i % 3 == 0 { -(i as f32) } else { i as f32 })
        .collect();
    let x = sadtalker_gpu::GpuTensor::from_slice(dev, &xs, &[n]).unwrap();
    let y = sadtalker_gpu::leaky_relu(&x, 0.5).unwrap().to_vec().unwrap();
    let bad = xs
        .iter()
        .zip(&y)
        .position(|(&v, &g)| g != if v > 0.0 { v } else { v * 0.5 });
    assert_eq!(bad, None);
}

#[test]
fn add_and_mul_match_exactly_and_check_shapes() {
    let Some(dev) = common::device() else { return };
    let (a, b) = (rand_tensor(&[2, 3, 9, 11], 1), rand_tensor(&[2, 3, 9, 11], 2));
    let flat = |t: candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let got = sadtalker_gpu::add(&up(dev, &a), &up(dev, &b)).unwrap();
    assert_eq!(got.to_vec().unwrap(), flat((&a + &b).unwrap()));
    let got = sadtalker_gpu::mul(&up(dev, &a), &up(dev, &b)).unwrap();
    assert_eq!(got.to_vec().unwrap(), flat((&a * &b).unwrap()));
    let got = sadtalker_gpu::scale(&up(dev, &a), std::f32::consts::SQRT_2).unwrap();
    assert_eq!(got.to_vec().unwrap(), flat((&a * std::f64::consts::SQRT_2).unwrap()));
    let c = up(dev, &rand_tensor(&[2, 3, 9, 10], 3));
    for e in [
        sadtalker_gpu::add(&up(dev, &a), &c).unwrap_err(),
        sadtalker_gpu::mul(&up(dev, &a), &c).unwrap_err(),
    ] {
        assert!(e.to_string().contains("differ"), "{e}");
    }
}

/// StyleGAN2's broadcasts: a scale per sample and channel, a bias per channel and a one-channel
/// noise map added to every channel, each exactly the host's broadcast.
#[test]
fn per_channel_scales_biases_and_noise_match_exactly() {
    let Some(dev) = common::device() else { return };
    let x = rand_tensor(&[3, 5, 8, 9], 1);
    let flat = |t: candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let s = rand_tensor(&[3, 5], 2);
    let got = sadtalker_gpu::scale_channels(&up(dev, &x), &up(dev, &s)).unwrap();
    assert_eq!(
        got.to_vec().unwrap(),
        flat(x.broadcast_mul(&s.reshape((3, 5, 1, 1)).unwrap()).unwrap())
    );
    let b = rand_tensor(&[5], 3);
    let got = sadtalker_gpu::shift_channels(&up(dev, &x), &up(dev, &b)).unwrap();
    assert_eq!(
        got.to_vec().unwrap(),
        flat(x.broadcast_add(&b.reshape((1, 5, 1, 1)).unwrap()).unwrap())
    );
    let m = rand_tensor(&[3, 1, 8, 9], 4);
    let got = sadtalker_gpu::add_one_channel(&up(dev, &x), &up(dev, &m)).unwrap();
    assert_eq!(got.to_vec().unwrap(), flat(x.broadcast_add(&m).unwrap()));
    let xg = up(dev, &x);
    assert!(sadtalker_gpu::scale_channels(&xg, &up(dev, &rand_tensor(&[1, 5], 5))).is_err());
    assert!(sadtalker_gpu::shift_channels(&xg, &up(dev, &rand_tensor(&[4], 5))).is_err());
    assert!(sadtalker_gpu::add_one_channel(&xg, &up(dev, &rand_tensor(&[3, 2, 8, 9], 5))).is_err());
}

#[test]
fn sigmoid_matches() {
    let Some(dev) = common::device() else { return };
    let x = rand_tensor(&[1, 3, 40, 41], 5).affine(6.0, 0.0).unwrap();
    let want = sadtalker_ops::sigmoid(&x).unwrap();
    let got = sadtalker_gpu::sigmoid(&up(dev, &x)).unwrap();
    // The device's exp may round differently in the last bits.
    let e = common::rel_err(&got, &want);
    assert!(e <= 1e-6, "relative error {e:e}");
}

#[test]
fn nearest_interpolation_picks_the_same_pixels() {
    use sadtalker_gpu::Resize;
    let Some(dev) = common::device() else { return };
    for (shape, resize) in [
        (vec![2, 3, 7, 9], Resize::Scale(vec![2.0, 2.0])),
        // The SPADE segmap resize: to a given size, up and down, not a multiple.
        (vec![1, 4, 16, 16], Resize::Size(vec![37, 29])),
        (vec![1, 4, 16, 16], Resize::Size(vec![5, 7])),
        (vec![1, 2, 3, 5, 6], Resize::Scale(vec![1.0, 2.0, 2.0])),
        (vec![1, 2, 10], Resize::Scale(vec![1.5])),
    ] {
        let x = rand_tensor(&shape, 9);
        let want = sadtalker_ops::interpolate_nearest(&x, &resize).unwrap();
        let got = sadtalker_gpu::interpolate_nearest(&up(dev, &x), &resize).unwrap();
        assert_eq!(got.dims(), want.dims(), "{shape:?} {resize:?}");
        let want = want.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(got.to_vec().unwrap(), want, "{shape:?} {resize:?}");
    }
    let x = up(dev, &rand_tensor(&[1, 2, 4, 4], 1));
    let e = sadtalker_gpu::interpolate_nearest(&x, &Resize::Size(vec![3])).unwrap_err();
    assert!(matches!(e, sadtalker_gpu::GpuError::Shape { .. }), "{e}");
}

#[test]
fn batch_norm_coefficients_give_sadtalker_ops_values() {
    use sadtalker_ops::BatchNormStats;
    let Some(dev) = common::device() else { return };
    let c = 6;
    // A large mean makes a separate multiply and add differ from the fused one.
    let stats = BatchNormStats {
        running_mean: rand_tensor(&[c], 1).affine(50.0, 100.0).unwrap(),
        running_var: rand_tensor(&[c], 2).affine(0.5, 1.0).unwrap(),
        weight: Some(rand_tensor(&[c], 3)),
        bias: Some(rand_tensor(&[c], 4)),
    };
    for shape in [vec![2, c, 9, 7], vec![1, c, 3, 4, 5], vec![3, c]] {
        let x = rand_tensor(&shape, 5).affine(60.0, 100.0).unwrap();
        let want = sadtalker_ops::batch_norm(&x, &stats, 1e-5).unwrap();
        let (a, b) = stats.coefficients(c, 1e-5).unwrap();
        let (a, b) = (
            sadtalker_gpu::GpuTensor::from_slice(dev, &a, &[c]).unwrap(),
            sadtalker_gpu::GpuTensor::from_slice(dev, &b, &[c]).unwrap(),
        );
        let got = sadtalker_gpu::channel_affine(&up(dev, &x), &a, &b).unwrap();
        // WGSL's fma need not be fused (Vulkan lets it round like a multiply then an add;
        // lavapipe does): an ulp of the product at most, not bit for bit.
        let e = common::rel_err(&got, &want);
        assert!(e <= 1e-6, "{shape:?}: relative error {e:e}");
    }
    let bad = sadtalker_gpu::channel_affine(
        &up(dev, &rand_tensor(&[1, 5, 2, 2], 6)),
        &up(dev, &rand_tensor(&[6], 7)),
        &up(dev, &rand_tensor(&[6], 8)),
    );
    assert!(bad.unwrap_err().to_string().contains("5 channels"));
}

#[test]
fn one_channel_mask_multiplies_every_channel_exactly() {
    let Some(dev) = common::device() else { return };
    let x = rand_tensor(&[3, 5, 8, 9], 1);
    let m = rand_tensor(&[3, 1, 8, 9], 2);
    let want = x
        .broadcast_mul(&m)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let got = sadtalker_gpu::mul_one_channel(&up(dev, &x), &up(dev, &m)).unwrap();
    assert_eq!(got.to_vec().unwrap(), want);
    for bad in [vec![3, 2, 8, 9], vec![1, 1, 8, 9], vec![3, 1, 8, 8]] {
        let e = sadtalker_gpu::mul_one_channel(&up(dev, &x), &up(dev, &rand_tensor(&bad, 3))).unwrap_err();
        assert!(e.to_string().contains("one-channel"), "{e}");
    }
}

#[test]
fn reshape_keeps_the_data_and_checks_the_count() {
    let Some(dev) = common::device() else { return };
    let x = rand_tensor(&[2, 3, 4], 1);
    let g = up(dev, &x).reshape(&[6, 4]).unwrap();
    assert_eq!(g.dims(), [6, 4]);
    assert_eq!(g.to_vec().unwrap(), x.flatten_all().unwrap().to_vec1::<f32>().unwrap());
    assert!(up(dev, &x).reshape(&[5, 5]).is_err());
}
