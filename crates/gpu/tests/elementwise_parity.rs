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
