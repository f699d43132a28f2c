//! The machine a number was measured on, recorded beside it (the run's other facts, git
//! revision and time, are `runtime::facts`).

/// The CPU's model name, logical cores and kernel-deciding flags (`runtime::hardware`).
pub fn cpu_name() -> String {
    let f = runtime::hardware::detect(tch::Device::Cpu);
    let flags = if f.cpu_flags.is_empty() {
        "no listed kernel flags".to_string()
    } else {
        f.cpu_flags.join(", ")
    };
    format!(
        "{} ({} logical cores; {flags})",
        f.cpu_model, f.logical_cores
    )
}
