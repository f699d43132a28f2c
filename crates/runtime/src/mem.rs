//! How much memory the process used: peak resident set size, `VmHWM` in
//! `/proc/self/status` (see proc(5)); and how freed memory is kept ([`keep_freed_memory`]).

/// Peak resident set size of this process in bytes (Linux); `None` where /proc is absent.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The environment variable that turns [`keep_freed_memory`] off: `LADDER_MALLOC=system`.
pub const MALLOC_VAR: &str = "LADDER_MALLOC";

/// Keep memory the process frees for its next allocations instead of returning it to the
/// operating system; call first thing in `main`, before any large allocation. Returns
/// whether it took effect.
///
/// glibc serves every allocation of 32 MiB or more (libtorch's logits, activations and
/// their gradients) with a fresh `mmap` and returns it with `munmap` when freed, so each
/// training step faults in and zeroes hundreds of MB of new pages: in a `perf` profile of
/// the speed preset's training step that kernel work was the largest cost after the matrix
/// multiplies (`just profile-train`, results/speed/profile). With `mmap` off and trimming
/// off (`mallopt(M_MMAP_MAX, 0)`, `mallopt(M_TRIM_THRESHOLD, -1)`) the memory the main
/// thread frees in one step serves the next, as PyTorch's caching allocator does on GPUs
/// (other threads keep their own arenas, which still map their largest blocks: forcing one
/// arena for all, `M_ARENA_MAX = 1`, made bf16 SDPA training much slower in a trial, on
/// lock contention). The threshold must be -1 (glibc reads it as `SIZE_MAX`: never trim),
/// not `INT_MAX`: the speed preset frees more than 2 GiB at the end of each backward pass,
/// and a 2 GiB threshold gave all of it back, to be faulted in again at the next step
/// (`crates/runtime/tests/malloc.rs` frees 2.25 GiB); the price is a higher peak resident
/// set (the heap keeps its high-water mark and its holes). `LADDER_MALLOC=system` keeps
/// glibc's defaults. A no-op off glibc.
pub fn keep_freed_memory() -> bool {
    if std::env::var(MALLOC_VAR).is_ok_and(|v| v.trim() == "system") {
        return false;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes glibc's allocation thresholds; both values are valid
        // (mallopt(3): "Setting M_TRIM_THRESHOLD to -1 disables trimming completely").
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, -1) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Resident set size of this process now, in bytes (Linux); `None` where /proc is absent.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Minor page faults of this process so far (`getrusage`; each one is a fresh page the kernel
/// mapped and, for anonymous memory, zeroed); `None` off Linux. Allocates nothing.
pub fn minor_faults() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrusage writes one rusage into the zeroed struct it is given.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        (unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } == 0).then_some(u.ru_minflt as u64)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}
