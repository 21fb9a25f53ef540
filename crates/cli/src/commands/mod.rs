//! One module per subcommand.

pub mod audio;
pub mod audio2coeff;
pub mod batch;
pub mod checkpoint;
pub mod coeffs;
pub mod doctor;
pub mod enhance;
pub mod extract;
pub mod generate;
pub mod models;
pub mod render;
pub mod serve;
pub mod video;
