//! The machine a number was measured on, recorded beside it (the run's other facts, git
//! revision and time, are `runtime::facts`).

/// The CPU's model name (from /proc/cpuinfo) and logical core count.
pub fn cpu_name() -> String {
    let name = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{name} ({cores} logical cores)")
}
