//! One module per subcommand.

pub mod checkpoint;
pub mod models;
pub mod video;
