//! GFPGANv1Clean and ParseNet against the reference on recipe weights, at reduced widths
//! (`tools/reference/gen_enhance_goldens.py`, generator.safetensors).

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

#[test]
fn gfpgan_128_matches_reference() {
    common::generator::gfpgan_128_matches_reference(None);
}

#[test]
fn parsenet_64_matches_reference() {
    common::generator::parsenet_64_matches_reference(None);
}
