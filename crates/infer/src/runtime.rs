//! Run-time choices that are not model config: which device (`--device`), its name in
//! reports, and how much memory the process used. Shared with `experiments`.
use anyhow::{bail, Result};
use tch::Device;

/// `--device`: cpu, cuda, cuda:N or auto.
pub fn parse_device(s: &str) -> Result<Device> {
    let gpus = tch::Cuda::device_count() as usize;
    let cuda = |i: usize| {
        if i < gpus {
            Ok(Device::Cuda(i))
        } else if gpus == 0 {
            bail!("--device {s}: libtorch sees no CUDA device (this build may be CPU-only); use --device cpu")
        } else {
            bail!("--device {s}: there are only {gpus} CUDA device(s)")
        }
    };
    match s {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" => cuda(0),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => cuda(i),
            _ => bail!("--device '{s}': expected cpu, cuda, cuda:N or auto"),
        },
    }
}

/// "cpu" or "cuda:N", for reports and CSV columns.
pub fn device_name(d: Device) -> String {
    match d {
        Device::Cuda(i) => format!("cuda:{i}"),
        d => format!("{d:?}").to_lowercase(),
    }
}

/// Peak resident set size of this process: `VmHWM` from `/proc/self/status` (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
