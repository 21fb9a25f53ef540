//! The heap policy of `sadtalker_ops::memory`, in a process of its own (it is process-wide).
#![cfg(all(target_os = "linux", target_env = "gnu"))]

fn mmapped_bytes() -> usize {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    unsafe { libc::mallinfo2().hblkhd }
}

#[test]
fn large_blocks_come_from_the_heap_and_stay_zeroed() {
    const BLOCK: usize = 40 << 20; // above glibc's largest mmap threshold (32 MB)
    let before = mmapped_bytes();
    let plain = std::hint::black_box(vec![0u8; BLOCK]);
    assert!(
        mmapped_bytes() >= before + BLOCK,
        "glibc's default should mmap a 40 MB block"
    );
    drop(plain);

    sadtalker_ops::memory::retain_freed_memory();
    for round in 0..3 {
        let before = mmapped_bytes();
        let mut v = std::hint::black_box(vec![0u8; BLOCK]);
        assert!(mmapped_bytes() < before + BLOCK, "round {round}: the block was mmapped");
        assert!(v.iter().step_by(4096).all(|&x| x == 0), "round {round}: not zeroed");
        v.iter_mut().step_by(4096).for_each(|x| *x = 1);
        drop(v);
        sadtalker_ops::memory::release_free_memory();
    }
}
