//! Per-thread work buffers of the convolution kernels, kept from one task (and one call) to
//! the next.
//!
//! Why: a Winograd task needs its transformed inputs and products (8–16 MB each); allocated per
//! rayon split they were zero-filled again every time (`memset` was 2–4 % of a frame, 8 % of a
//! 128→512 layer) and, above glibc's 64 MB thread-arena heaps, mapped and faulted in anew.
//! Here each thread grows its buffers once; [`release`] (run on every pool thread by
//! [`crate::memory::release_free_memory`] after a job) hands them back.

use std::cell::RefCell;

thread_local! {
    static BUFFERS: RefCell<[Vec<f32>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
}

/// Runs `f` with this thread's two buffers, `lens[0]` and `lens[1]` floats long. They hold
/// whatever the thread's last caller left (zeros where they grew): `f` must write what it
/// reads. A nested call (none today) gets fresh buffers rather than a borrow error.
pub(crate) fn with<R>(lens: [usize; 2], f: impl FnOnce(&mut [f32], &mut [f32]) -> R) -> R {
    BUFFERS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut bufs) => {
            let [a, b] = &mut *bufs;
            grow(a, lens[0]);
            grow(b, lens[1]);
            f(&mut a[..lens[0]], &mut b[..lens[1]])
        }
        Err(_) => f(&mut vec![0.0; lens[0]], &mut vec![0.0; lens[1]]),
    })
}

/// Lengthens `v` to at least `len` floats, keeping what it holds.
fn grow(v: &mut Vec<f32>, len: usize) {
    if v.len() < len {
        v.resize(len, 0.0);
    }
}

/// Frees this thread's buffers.
pub(crate) fn release() {
    BUFFERS.with(|cell| {
        if let Ok(mut bufs) = cell.try_borrow_mut() {
            *bufs = [Vec::new(), Vec::new()];
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_persist_grow_and_are_released() {
        with([4, 2], |a, b| {
            assert_eq!((a.len(), b.len()), (4, 2));
            a.fill(7.0);
            b.fill(3.0);
        });
        // Kept, then grown with zeros behind the old contents.
        with([6, 1], |a, b| {
            assert_eq!(a, [7.0, 7.0, 7.0, 7.0, 0.0, 0.0]);
            assert_eq!(b, [3.0]);
            // A nested call gets its own buffers.
            with([2, 2], |c, d| {
                assert_eq!((c.len(), d.len(), c[0], d[0]), (2, 2, 0.0, 0.0))
            });
        });
        release();
        BUFFERS.with(|cell| assert!(cell.borrow().iter().all(|v| v.capacity() == 0)));
    }
}
