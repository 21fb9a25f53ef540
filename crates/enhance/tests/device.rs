//! The GFPGANv1Clean and ParseNet parity checks of `generator.rs` (same golden, same bars) on a GPU
//! (both wholly on the device): in CI, Mesa's lavapipe Vulkan device, which `.ci/run`
//! installs. Under `CI=true` a missing device fails the test; elsewhere it is skipped with a note.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use sadtalker_gpu::{DeviceKind, context};

/// GFPGAN with every activation on the device (as `Restorer::forward` runs it under a GPU).
#[test]
fn gfpgan_128_matches_the_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    common::generator::gfpgan_128_matches_reference(Some(&dev));
}

/// ParseNet with every activation on the device (as `ParseNet::parse` runs it under a GPU).
#[test]
fn parsenet_64_matches_the_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    common::generator::parsenet_64_matches_reference(Some(&dev));
}
