//! Reading model checkpoints and loading network weights by name.
//!
//! [`Checkpoint`] opens the file formats SadTalker's models ship in: safetensors
//! (`SadTalker_V0.0.2_256.safetensors`) and PyTorch's `torch.save` containers (`.pth`,
//! `.pth.tar`; ZIP, legacy and TAR), including nested dictionaries such as
//! `{'mapping': state_dict, 'optimizer_mapping': ..., 'epoch': ...}`, whose tensors are
//! named by their dotted path (`mapping.fc.weight`), and strided or shared storages.
//!
//! [`Weights`] is the one loader every network uses: a view of a weight source scoped by a
//! dotted prefix, handing out `f32` candle tensors after checking their shape, with errors
//! that name the file, the tensor and what to do. A [`Recipe`] is a weight source too:
//! deterministic pseudo-random weights for any name and shape, the same in Rust and in
//! `tools/reference/recipe.py`, so full-size networks can be checked against the reference
//! without shipping weights.

mod error;
mod file;
mod recipe;
mod weights;

pub use error::{CheckpointError, Result};
pub use file::{Checkpoint, ElementType, Format, TensorInfo};
pub use recipe::Recipe;
pub use weights::{InMemory, Layered, WeightSource, Weights};
