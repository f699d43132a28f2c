//! Devices as the command lines name them (`--device cpu|cuda|cuda:N|auto`), their names in
//! reports, waiting for one to finish its queued work, and the intra-op thread count.
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

/// Wait until `device` has finished its queued work (a no-op on the CPU), so a timer read
/// afterwards measures the work and not its launch. Synchronises that device, not device 0.
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Apply `--threads` (0 = libtorch's default, all cores) and return the count in use.
pub fn set_threads(n: usize) -> usize {
    if n > 0 {
        tch::set_num_threads(n as i32);
    }
    tch::get_num_threads() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_names() {
        assert_eq!(parse_device("cpu").unwrap(), Device::Cpu);
        assert_eq!(device_name(Device::Cpu), "cpu");
        assert_eq!(device_name(Device::Cuda(3)), "cuda:3");
        let e = parse_device("gpu").unwrap_err().to_string();
        assert!(e.contains("expected cpu, cuda, cuda:N or auto"), "{e}");
        sync(Device::Cpu);
    }
}
