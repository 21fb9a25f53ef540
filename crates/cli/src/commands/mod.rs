//! One module per subcommand.

pub mod checkpoint;
