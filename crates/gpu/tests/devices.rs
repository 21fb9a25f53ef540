//! Device discovery, opening errors and the self-test.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use sadtalker_gpu::{Device, DeviceKind, GpuError, list_devices};

#[test]
fn lists_the_device_it_opens() {
    let Some(dev) = common::device() else { return };
    let all = list_devices();
    for d in &all {
        eprintln!("device: {d}");
    }
    assert!(all.contains(dev.info()), "{:?} not in {all:?}", dev.info());
    assert!(!dev.info().name.is_empty());
    assert!(dev.info().max_binding_bytes >= 128 << 20, "{}", dev.info());
    if dev.info().backend == "vulkan" {
        let mem = dev.info().memory_bytes.unwrap();
        assert!(mem >= 256 << 20, "{}", dev.info());
    }
}

#[test]
fn self_test_passes() {
    let Some(dev) = common::device() else { return };
    dev.self_test().unwrap();
}

#[test]
fn device_kind_parses_the_cli_names() {
    for k in [
        DeviceKind::Auto,
        DeviceKind::Cuda,
        DeviceKind::Vulkan,
        DeviceKind::Metal,
    ] {
        assert_eq!(k.to_string().parse::<DeviceKind>(), Ok(k));
    }
    let e = "gpu".parse::<DeviceKind>().unwrap_err();
    assert!(e.contains("auto, cuda, vulkan or metal"), "{e}");
}

#[test]
fn cuda_says_what_to_use_instead() {
    let e = Device::open(DeviceKind::Cuda).unwrap_err();
    assert!(matches!(e, GpuError::NotInThisBuild { .. }), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("--device vulkan") && msg.contains("--device cpu"), "{msg}");
}

#[cfg(not(target_vendor = "apple"))]
#[test]
fn metal_off_apple_names_the_platform() {
    let e = Device::open(DeviceKind::Metal).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, GpuError::NotOnPlatform { .. }), "{msg}");
    assert!(
        msg.contains(std::env::consts::OS) && msg.contains("--device vulkan"),
        "{msg}"
    );
}

#[test]
fn vulkan_opens_where_auto_found_a_vulkan_device() {
    let Some(dev) = common::device() else { return };
    if dev.info().backend != "vulkan" {
        return;
    }
    let v = Device::open(DeviceKind::Vulkan).unwrap();
    v.self_test().unwrap();
}
