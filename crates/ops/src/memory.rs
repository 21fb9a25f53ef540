//! The process's heap policy for large tensors.
//!
//! glibc serves every allocation above its mmap threshold (at most 32 MB) with a fresh `mmap` and
//! returns it with `munmap` on free. A 256 frame allocates and frees hundreds of activation buffers
//! of 10–70 MB, so each one is page-faulted and zeroed by the kernel again: measured here, 13 % of a
//! frame's time and three quarters of the process's system time. [`retain_freed_memory`] keeps freed
//! memory in the heap for reuse instead (the renderer's per-frame "other" time 865 → 271 ms, system
//! time 17.8 → 4.4 s over a bench run, peak RSS +4 %), and [`release_free_memory`] hands it back
//! when a job ends, so a long-lived `serve` or `batch` process does not sit on a job's peak.
//! Elsewhere (musl, macOS, Windows) both are no-ops: their allocators cache on their own terms.

/// Keeps large freed blocks in the heap for the next allocation instead of unmapping them.
/// Call once at the start of a process that runs the networks (before its threads start).
pub fn retain_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads allocate.
    unsafe {
        // No mmap'd chunks: large blocks come from the heap and return to it on free. (Blocks
        // above a thread arena's 64 MB heap size still use mmap; the networks allocate on the
        // calling thread, whose arena is the main heap.)
        libc::mallopt(libc::M_MMAP_MAX, 0);
        // Never shrink the heap top on free: the next frame needs the same memory again.
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

/// Frees the kernels' per-thread work buffers and returns the heap's free pages to the system
/// (after a job), keeping the policy of [`retain_freed_memory`] for the next one.
pub fn release_free_memory() {
    // The kernels' per-thread work buffers first, so that their pages are free to return.
    crate::scratch::release();
    rayon::broadcast(|_| crate::scratch::release());
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim is thread-safe and only releases memory no allocation holds.
    unsafe {
        libc::malloc_trim(0);
    }
}
