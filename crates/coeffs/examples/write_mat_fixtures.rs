//! Writes the `.mat` files that `tools/reference/gen_coeffs_goldens.py` has scipy read back
//! (`fixtures/coeffs/written_by_rust*.mat`). The tests check that these committed files are
//! still what our writer produces, byte for byte.
//!
//! Run: `cargo run -p sadtalker-coeffs --example write_mat_fixtures`

use std::path::PathBuf;

use sadtalker_coeffs::file::{AdaptOptions, adapt, read_crop_params};
use sadtalker_coeffs::mat::{MatArray, MatData, MatFile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/coeffs");
    written_by_rust().write(dir.join("written_by_rust.mat"))?;

    let motion = dir.join("motion_scipy.mat");
    let crop = read_crop_params(dir.join("first_frame_scipy.mat"))?;
    let opts = AdaptOptions {
        to: 73,
        crop: Some(crop),
        from_full: false,
    };
    let (adapted, _) = adapt(&MatFile::read(&motion)?, "motion_scipy.mat", &opts)?;
    adapted.write(dir.join("written_by_rust_adapted73.mat"))?;

    // Struct and cell variables are carried through a rewrite untouched.
    MatFile::read(dir.join("mixed_compressed_scipy.mat"))?.write(dir.join("written_by_rust_passthrough.mat"))?;
    println!("wrote fixtures/coeffs/written_by_rust*.mat");
    Ok(())
}

/// The content of `written_by_rust.mat` (the Python side checks the same values).
pub fn written_by_rust() -> MatFile {
    let mut f = MatFile::new();
    let coeff: Vec<f32> = (0..6 * 70).map(|i| i as f32 / 7.0).collect();
    f.set("coeff_3dmm", MatArray::from_rows_f32(6, 70, &coeff));
    let full: Vec<f64> = (0..257).map(|i| i as f64 * (2.0 / 256.0) - 1.0).collect();
    f.set("full_3dmm", MatArray::from_rows_f64(1, 257, &full));
    f.set("note", MatArray::from_text("written by sadtalker"));
    f.set(
        "counts",
        MatArray {
            dims: vec![1, 3],
            data: MatData::Int32(vec![1, 2, 3]),
            logical: false,
        },
    );
    f
}
