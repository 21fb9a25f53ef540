//! The name-based weight loader shared by every network.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use candle_core::{Device, Tensor};

use crate::error::{CheckpointError, Result};
use crate::file::{Checkpoint, missing_hint};
use crate::recipe::Recipe;

/// Where weights come from: a checkpoint file, or a deterministic [`Recipe`].
pub trait WeightSource: Send + Sync {
    /// A short description for error messages (the file path, or the recipe).
    fn describe(&self) -> String;
    /// Whether the source has a tensor of that full name.
    fn contains(&self, name: &str) -> bool;
    /// All tensor names the source can enumerate (empty for a recipe, which has any name).
    fn names(&self) -> Vec<String>;
    /// The `f32` values of tensor `name`, which must have exactly `shape`.
    fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>>;
}

impl WeightSource for Checkpoint {
    fn describe(&self) -> String {
        self.path().display().to_string()
    }

    fn contains(&self, name: &str) -> bool {
        self.info(name).is_some()
    }

    fn names(&self) -> Vec<String> {
        self.tensors().into_iter().map(|t| t.name).collect()
    }

    fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let info = self.info(name).ok_or_else(|| self.missing(name))?;
        if info.shape != shape {
            return Err(CheckpointError::ShapeMismatch {
                path: self.describe(),
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: info.shape,
            });
        }
        Ok(self.read_f32(name)?.0)
    }
}

impl WeightSource for Recipe {
    fn describe(&self) -> String {
        format!("deterministic weight recipe (seed {}, gain {})", self.seed, self.gain)
    }

    fn contains(&self, _name: &str) -> bool {
        true
    }

    fn names(&self) -> Vec<String> {
        Vec::new()
    }

    fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        Ok(self.values(name, shape))
    }
}

/// Tensors held in memory under their full names (e.g. a few exact values a test puts over
/// recipe weights with [`Layered`]).
pub struct InMemory {
    label: String,
    tensors: HashMap<String, (Vec<f32>, Vec<usize>)>,
}

impl InMemory {
    /// An in-memory source; `label` names it in error messages.
    pub fn new(label: impl Into<String>, tensors: HashMap<String, (Vec<f32>, Vec<usize>)>) -> Self {
        Self {
            label: label.into(),
            tensors,
        }
    }
}

impl WeightSource for InMemory {
    fn describe(&self) -> String {
        self.label.clone()
    }

    fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    fn names(&self) -> Vec<String> {
        self.tensors.keys().cloned().collect()
    }

    fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        match self.tensors.get(name) {
            Some((v, s)) if s == shape => Ok(v.clone()),
            Some((_, s)) => Err(CheckpointError::ShapeMismatch {
                path: self.describe(),
                name: name.to_owned(),
                expected: shape.to_vec(),
                found: s.clone(),
            }),
            None => Err(CheckpointError::MissingTensor {
                path: self.describe(),
                name: name.to_owned(),
                hint: missing_hint(name, &self.names()),
            }),
        }
    }
}

/// Several sources stacked: each tensor comes from the first source that has it. Tests use
/// it to put a few exact tensors (e.g. spectral-norm vectors the reference computed) over
/// recipe weights.
pub struct Layered {
    sources: Vec<Arc<dyn WeightSource>>,
}

impl Layered {
    /// Sources in priority order (a [`Recipe`] has every name, so it belongs last).
    pub fn new(sources: Vec<Arc<dyn WeightSource>>) -> Self {
        Self { sources }
    }

    fn find(&self, name: &str) -> Option<&Arc<dyn WeightSource>> {
        self.sources.iter().find(|s| s.contains(name))
    }
}

impl WeightSource for Layered {
    fn describe(&self) -> String {
        let parts: Vec<String> = self.sources.iter().map(|s| s.describe()).collect();
        parts.join(" over ")
    }

    fn contains(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    fn names(&self) -> Vec<String> {
        let mut all: Vec<String> = self.sources.iter().flat_map(|s| s.names()).collect();
        all.sort();
        all.dedup();
        all
    }

    fn load(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        match self.find(name) {
            Some(s) => s.load(name, shape),
            None => Err(CheckpointError::MissingTensor {
                path: self.describe(),
                name: name.to_owned(),
                hint: missing_hint(name, &self.names()),
            }),
        }
    }
}

/// A weight source seen through a dotted prefix, like PyTorch's `module.sub.` naming
/// (and candle's `VarBuilder`). Cloning is cheap; clones share the record of which
/// tensors were loaded, so a whole network's unused weights can be listed at the end.
#[derive(Clone)]
pub struct Weights {
    source: Arc<dyn WeightSource>,
    prefix: String,
    device: Device,
    loaded: Arc<Mutex<BTreeSet<String>>>,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("source", &self.source.describe())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Weights {
    /// Weights from any source, placed on `device`.
    pub fn new(source: Arc<dyn WeightSource>, device: &Device) -> Self {
        Self {
            source,
            prefix: String::new(),
            device: device.clone(),
            loaded: Arc::default(),
        }
    }

    /// Opens a checkpoint file (any supported format) as a weight source.
    pub fn from_file(path: impl AsRef<std::path::Path>, device: &Device) -> Result<Self> {
        Ok(Self::new(Arc::new(Checkpoint::open(path)?), device))
    }

    /// Deterministic recipe weights (see [`Recipe`]).
    pub fn from_recipe(recipe: Recipe, device: &Device) -> Self {
        Self::new(Arc::new(recipe), device)
    }

    /// The same source under `prefix.name` (`pp` as in candle's `VarBuilder`).
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        Self {
            prefix: self.full_name(&name.to_string()),
            ..self.clone()
        }
    }

    /// The current prefix (empty at the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The device tensors are placed on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// Whether the tensor `prefix.name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.source.contains(&self.full_name(name))
    }

    /// Loads `prefix.name` as an `f32` tensor, which must have exactly `shape`.
    pub fn get(&self, shape: &[usize], name: &str) -> Result<Tensor> {
        Ok(Tensor::from_vec(self.values(shape, name)?, shape, &self.device)?)
    }

    /// Loads `prefix.name`, which must have exactly `shape`, as row-major `f32` values (for a
    /// layer that keeps its weights in its own layout).
    pub fn values(&self, shape: &[usize], name: &str) -> Result<Vec<f32>> {
        let full = self.full_name(name);
        let values = self.source.load(&full, shape)?;
        if let Ok(mut l) = self.loaded.lock() {
            l.insert(full);
        }
        Ok(values)
    }

    /// Loads `prefix.name` if present (e.g. an optional bias).
    pub fn get_opt(&self, shape: &[usize], name: &str) -> Result<Option<Tensor>> {
        if self.contains(name) {
            self.get(shape, name).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Tensors under the current prefix that no `get` has loaded yet (through any clone),
    /// ignoring BatchNorm's `num_batches_tracked`. Checking that this is empty after
    /// building a network is PyTorch's `load_state_dict(strict=True)`.
    pub fn unused(&self) -> Vec<String> {
        let loaded = self.loaded.lock().map(|l| l.clone()).unwrap_or_default();
        let scope = if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}.", self.prefix)
        };
        self.source
            .names()
            .into_iter()
            .filter(|n| n.starts_with(&scope) && !loaded.contains(n) && !n.ends_with("num_batches_tracked"))
            .collect()
    }

    /// An error for a tensor the network needs but the source lacks, with hints.
    pub fn missing(&self, name: &str) -> CheckpointError {
        CheckpointError::MissingTensor {
            path: self.source.describe(),
            name: self.full_name(name),
            hint: missing_hint(&self.full_name(name), &self.source.names()),
        }
    }
}
