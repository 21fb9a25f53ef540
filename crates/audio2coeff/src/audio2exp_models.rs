//! Port of the reference's `audio2exp_models`: the expression network.

pub mod audio2exp;
pub mod networks;

pub use audio2exp::Audio2Exp;
pub use networks::SimpleWrapperV2;
