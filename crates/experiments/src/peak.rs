//! The machine's peak matmul rate, measured once and recorded, so MFU means something.
//!
//! MFU (model FLOPs utilisation, Chowdhery et al. 2022, PaLM appendix B) = achieved model
//! FLOPs per second / peak FLOPs per second. "Peak" here is what libtorch's own matmul
//! reaches on this machine for a large square product, per dtype, not a datasheet number.
use crate::sys;
use anyhow::{Context, Result};
use runtime::device::sync;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Peak {
    pub machine: String,
    pub device: String,
    pub threads: usize,
    pub fp32_flops: f64,
    pub bf16_flops: f64,
    pub matmul_n: i64,
    pub measured_at: String,
}

impl Peak {
    pub fn flops(&self, kind: Kind) -> f64 {
        if kind == Kind::BFloat16 {
            self.bf16_flops
        } else {
            self.fp32_flops
        }
    }
}

/// Where the peak is recorded: `$LADDER_PEAK_FILE`, else the checkout's
/// `results/machine.json` (found from this crate's source path, never from the current
/// directory, so a run started elsewhere does not scatter `results/` folders).
pub fn default_path() -> std::path::PathBuf {
    std::env::var_os("LADDER_PEAK_FILE")
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .unwrap_or_else(repo_machine_file)
}

/// `<checkout>/results/machine.json`.
pub fn repo_machine_file() -> std::path::PathBuf {
    runtime::resources::workspace_root()
        .join("results")
        .join("machine.json")
}

/// Best-of-several FLOP rate of an n×n×n matmul in `kind`.
pub fn measure_matmul(kind: Kind, n: i64, device: Device) -> f64 {
    let a = Tensor::randn([n, n], (Kind::Float, device)).to_kind(kind);
    let b = Tensor::randn([n, n], (Kind::Float, device)).to_kind(kind);
    let flops = 2.0 * (n * n * n) as f64;
    let _ = a.matmul(&b); // warm-up
    let mut best = 0f64;
    for _ in 0..5 {
        let t = Instant::now();
        let c = a.matmul(&b);
        sync(device);
        let _ = c.numel();
        best = best.max(flops / t.elapsed().as_secs_f64());
    }
    best
}

/// The peak for this machine, device and thread count: read from `path` when it was
/// recorded for the same ones, else measured (a few seconds) and written there.
pub fn peak(path: &Path, device: Device) -> Result<Peak> {
    let machine = sys::cpu_name();
    let dev = runtime::device::device_name(device);
    let threads = tch::get_num_threads() as usize;
    if let Ok(text) = std::fs::read_to_string(path) {
        if let Ok(p) = serde_json::from_str::<Peak>(&text) {
            if p.machine == machine && p.device == dev && p.threads == threads {
                return Ok(p);
            }
        }
    }
    tracing::info!("measuring the peak matmul rate of {dev} ({threads} threads) ...");
    let n = 2048;
    let p = Peak {
        machine,
        device: dev,
        threads,
        fp32_flops: measure_matmul(Kind::Float, n, device),
        bf16_flops: measure_matmul(Kind::BFloat16, n, device),
        matmul_n: n,
        measured_at: runtime::facts::timestamp_utc(),
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    runtime::fsio::write_atomic(path, |t| {
        Ok(std::fs::write(t, serde_json::to_string_pretty(&p)? + "\n")?)
    })
    .with_context(|| format!("writing {}", path.display()))?;
    tracing::info!(
        "peak: fp32 {:.0} GFLOP/s, bf16 {:.0} GFLOP/s",
        p.fp32_flops / 1e9,
        p.bf16_flops / 1e9
    );
    Ok(p)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_machine_file_does_not_depend_on_the_current_directory() {
        let p = super::repo_machine_file();
        assert!(p.is_absolute(), "{}", p.display());
        assert!(p.ends_with("results/machine.json"));
        assert!(p
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .join("Cargo.toml")
            .is_file());
    }
}
