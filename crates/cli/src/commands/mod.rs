//! One module per subcommand.

pub mod audio;
pub mod audio2coeff;
pub mod checkpoint;
pub mod coeffs;
pub mod extract;
pub mod models;
pub mod render;
pub mod video;
