//! The GFPGANv1Clean and ParseNet parity checks of `generator.rs` and the Real-ESRGAN ones of
//! `realesrgan.rs` (same goldens, same bars) on a GPU, each network wholly on the device: in CI,
//! Mesa's lavapipe Vulkan device, which `.ci/run` installs. Under `CI=true` a missing device fails the test; elsewhere it is skipped with a note.
//! The tests share one device and count its transfers, so each holds `common::counting` throughout.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use sadtalker_gpu::{DeviceKind, context};

/// GFPGAN with every activation on the device (as `Restorer::forward` runs it under a GPU).
#[test]
fn gfpgan_128_matches_the_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    let _alone = common::counting();
    common::generator::gfpgan_128_matches_reference(Some(&dev));
}

/// ParseNet with every activation on the device (as `ParseNet::parse` runs it under a GPU).
#[test]
fn parsenet_64_matches_the_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    let _alone = common::counting();
    common::generator::parsenet_64_matches_reference(Some(&dev));
}

/// The reduced RRDBNet with every activation on the device (as `RRDBNet::forward` runs it under a GPU).
#[test]
fn rrdbnet_matches_the_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    let _alone = common::counting();
    common::realesrgan::reduced_rrdbnet_matches_reference(Some(&dev));
}

/// RealESRGANer's tiled and one-piece upsampling with the network on the device, tile by tile.
#[test]
fn realesrgan_tiles_match_the_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    let _alone = common::counting();
    common::realesrgan::tiled_and_untiled_upsampling_match_reference(Some(&dev));
}
