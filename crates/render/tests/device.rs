//! The renderer's parity check of `parity.rs` (reduced networks, the same golden and bars) with
//! its convolutions on a GPU: in CI, Mesa's lavapipe Vulkan device on the CPU, which `.ci/run`
//! installs. Under `CI=true` a missing device fails the test; elsewhere it is skipped with a note.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{FRAME_TOL, Motion, check};
use sadtalker_gpu::{DeviceKind, context};

#[test]
fn reduced_networks_match_the_reference_on_the_gpu() {
    let Some(dev) = context::device_for_test(DeviceKind::Vulkan) else {
        return;
    };
    context::with(Some(&dev), || {
        check("goldens/render/reduced.safetensors", FRAME_TOL, Motion::Recorded)
    });
}
