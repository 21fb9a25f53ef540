//! The device the layers of the calling thread run on: `sadtalker_nn`'s convolutions check
//! [`current`] and, inside [`with`], run on that GPU instead of the CPU kernels.
//!
//! A thread-local rather than a parameter threaded through every network's `forward`, for the
//! same reason as `sadtalker_ops::precision`: the networks mirror the PyTorch modules line by
//! line, and the device is a property of the job, not of a layer. Worker threads spawned by a
//! layer never choose; the thread that calls the layer does.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use crate::device::{Device, DeviceKind};
use crate::error::Result;

thread_local! {
    static CURRENT: RefCell<Option<Device>> = const { RefCell::new(None) };
}

/// Runs `f` with this thread's layers on `device` (`None`: on the CPU), restoring the previous
/// setting afterwards, also when `f` panics.
pub fn with<R>(device: Option<&Device>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Device>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let prev = CURRENT.with(|c| c.replace(device.cloned()));
    let _restore = Restore(prev);
    f()
}

/// The device this thread's layers run on, `None` for the CPU.
pub fn current() -> Option<Device> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The process's device of `kind`, opened and self-tested on first use and shared afterwards, so
/// that weights uploaded by one job stay valid for the next (batch, serve). A failure is not
/// cached: the next call tries again (a driver installed meanwhile, a device freed).
pub fn shared(kind: DeviceKind) -> Result<Device> {
    static OPEN: OnceLock<Mutex<HashMap<DeviceKind, Device>>> = OnceLock::new();
    let open = OPEN.get_or_init(Default::default);
    let mut open = open.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(d) = open.get(&kind) {
        return Ok(d.clone());
    }
    let d = Device::open(kind)?;
    d.self_test()?;
    open.insert(kind, d.clone());
    Ok(d)
}

/// The device a device test runs on: `Some` when `kind` opens; `None` (the test returns, after a
/// note) where it does not, except under `CI=true`, whose `.ci/run` installs lavapipe: there a
/// missing device is a failure, so a device test can never pass by skipping in CI.
#[doc(hidden)]
pub fn device_for_test(kind: DeviceKind) -> Option<Device> {
    match shared(kind) {
        Ok(d) => {
            eprintln!("device: {}", d.info());
            Some(d)
        }
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but no {kind} device: {e}")
        }
        Err(e) => {
            eprintln!("skipped: no {kind} device ({e})");
            None
        }
    }
}
