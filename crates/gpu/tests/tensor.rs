//! Upload and download.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use candle_core::{DType, Tensor};
use sadtalker_gpu::{GpuError, GpuTensor};

#[test]
fn round_trip_keeps_values_and_shape() {
    let Some(dev) = common::device() else { return };
    let host = common::rand_tensor(&[2, 3, 5], 21);
    let t = GpuTensor::from_tensor(dev, &host).unwrap();
    assert_eq!(t.dims(), &[2, 3, 5]);
    assert_eq!(t.elem_count(), 30);
    let back = t.to_tensor().unwrap();
    assert_eq!(back.dims(), host.dims());
    let (a, b) = (back.flatten_all().unwrap(), host.flatten_all().unwrap());
    assert_eq!(a.to_vec1::<f32>().unwrap(), b.to_vec1::<f32>().unwrap());
}

#[test]
fn a_strided_tensor_uploads_in_logical_order() {
    let Some(dev) = common::device() else { return };
    let host = common::rand_tensor(&[4, 6], 22).t().unwrap();
    let want = host
        .contiguous()
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let t = GpuTensor::from_tensor(dev, &host).unwrap();
    assert_eq!(t.dims(), &[6, 4]);
    assert_eq!(t.to_vec().unwrap(), want);
}

#[test]
fn upload_rejects_a_wrong_dtype_or_length() {
    let Some(dev) = common::device() else { return };
    let f64s = Tensor::zeros((2, 2), DType::F64, &candle_core::Device::Cpu).unwrap();
    let e = GpuTensor::from_tensor(dev, &f64s).unwrap_err();
    assert!(matches!(e, GpuError::Host(_)) && e.to_string().contains("F64"), "{e}");
    let e = GpuTensor::from_slice(dev, &[1.0, 2.0, 3.0], &[2, 2]).unwrap_err();
    assert!(e.to_string().contains("does not hold 3 elements"), "{e}");
}
