//! The GFPGANv1Clean and ParseNet parity checks of `generator.rs` (same golden, same bars) with the
//! convolutions on a GPU: in CI, Mesa's lavapipe Vulkan device, which `.ci/run` installs. Under
//! `CI=true` a missing device fails the test; elsewhere it is skipped with a note.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use sadtalker_gpu::{DeviceKind, context};

fn on_gpu(check: fn()) {
    let dev = match context::shared(DeviceKind::Vulkan) {
        Ok(d) => d,
        Err(e) if !std::env::var("CI").is_ok_and(|v| v == "true") => {
            eprintln!("skipped: no Vulkan device ({e})");
            return;
        }
        Err(e) => panic!("CI=true but no Vulkan device: {e}"),
    };
    eprintln!("device: {}", dev.info());
    context::with(Some(&dev), check);
}

#[test]
fn gfpgan_128_matches_the_reference_on_the_gpu() {
    on_gpu(common::generator::gfpgan_128_matches_reference);
}

#[test]
fn parsenet_64_matches_the_reference_on_the_gpu() {
    on_gpu(common::generator::parsenet_64_matches_reference);
}
