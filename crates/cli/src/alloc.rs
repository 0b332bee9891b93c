//! Keeps the server's memory returnable after a burst of large requests (D39).
//!
//! glibc serves blocks of at least its mmap threshold with `mmap` and unmaps them when freed,
//! but it raises that threshold to the size of every such block freed (up to 32 MiB). After the
//! first few large request buffers (a 1 MiB body, the parser's copy of it, a multi-MB 422), later
//! ones come from the heap arenas instead and stay in the process after the burst: measured, 64
//! hostile requests left the server at 70 MB instead of 15 MB. Fixing the threshold keeps large
//! blocks on `mmap`, so they go back to the system when freed.

/// Large blocks (and only those) are mapped separately and unmapped when freed.
const MMAP_THRESHOLD_BYTES: i32 = 256 * 1024;

/// Pins glibc's mmap threshold, unless the operator tuned malloc through the environment.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn return_large_blocks_to_the_system() {
    use std::os::raw::c_int;
    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    const M_MMAP_THRESHOLD: c_int = -3;
    let tuned = std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold"));
    if tuned {
        return;
    }
    // SAFETY: mallopt only sets an allocator parameter; called before any thread is started.
    let ok = unsafe { mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) };
    if ok != 1 {
        eprintln!("warning: could not set the malloc mmap threshold");
    }
}

/// Other allocators need no help.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn return_large_blocks_to_the_system() {}
