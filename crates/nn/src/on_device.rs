//! [`OnDevice`]: a layer's parameters in one GPU's memory, uploaded once.

use std::sync::{Arc, Mutex, PoisonError};

use sadtalker_gpu::Device;

use crate::Result;

/// A layer's parameters on the GPU it last ran on, uploaded the first time it runs there and
/// kept for the next calls (shared by the layer's clones). Running on another device replaces
/// them.
#[derive(Debug)]
pub(crate) struct OnDevice<T>(Arc<Mutex<Option<(Device, T)>>>);

// By hand: a derive would ask `T: Clone` / `T: Default`, which the shared slot does not need.
impl<T> Clone for OnDevice<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for OnDevice<T> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<T: Clone> OnDevice<T> {
    /// The parameters on `dev`, made by `upload` unless they are there already.
    pub(crate) fn get(&self, dev: &Device, upload: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((d, v)) = slot.as_ref()
            && d == dev
        {
            return Ok(v.clone());
        }
        let v = upload()?;
        *slot = Some((dev.clone(), v.clone()));
        Ok(v)
    }
}
