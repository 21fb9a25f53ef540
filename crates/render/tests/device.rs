//! The renderer's parity check of `parity.rs` (reduced networks, the same golden and bars) with
//! its convolutions on a GPU: in CI, Mesa's lavapipe Vulkan device on the CPU, which `.ci/run`
//! installs. Under `CI=true` a missing device fails the test; elsewhere it is skipped with a note.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use common::{FRAME_TOL, Motion, check};
use sadtalker_gpu::{DeviceKind, context};

#[test]
fn reduced_networks_match_the_reference_on_the_gpu() {
    let dev = match context::shared(DeviceKind::Vulkan) {
        Ok(d) => d,
        Err(e) if !std::env::var("CI").is_ok_and(|v| v == "true") => {
            eprintln!("skipped: no Vulkan device ({e})");
            return;
        }
        Err(e) => panic!("CI=true but no Vulkan device: {e}"),
    };
    eprintln!("device: {}", dev.info());
    context::with(Some(&dev), || {
        check("goldens/render/reduced.safetensors", FRAME_TOL, Motion::Recorded)
    });
}
