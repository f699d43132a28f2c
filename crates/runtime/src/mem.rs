//! How much memory the process used: peak resident set size, `VmHWM` in
//! `/proc/self/status` (see proc(5)).

/// Peak resident set size of this process in bytes (Linux); `None` where /proc is absent.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
