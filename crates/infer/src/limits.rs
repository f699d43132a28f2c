//! Command-line inputs that could otherwise hurt: `--checkpoint` given a training run's
//! folder (resolved to its newest checkpoint), and `--threads` / `--batch` beyond what the
//! machine can do (an error before anything is allocated); and what `--threads 0` and
//! `--dtype auto` mean for a model's size.
use anyhow::{bail, Result};
use model::ModelConfig;
use runtime::DType;
use std::path::{Path, PathBuf};
use tch::Device;

/// The most intra-op threads accepted: far above any core count, below absurd.
pub const MAX_THREADS: usize = 1024;
/// The most sequences generated at once.
pub const MAX_BATCH: usize = 65536;

/// `--checkpoint DIR`: a checkpoint folder as is; a training run's folder (with the
/// `checkpoints.json` pointer a run writes, or a `ckpt` inside) becomes its newest
/// checkpoint, with a note. Anything else is returned unchanged (the loader explains).
pub fn resolve_checkpoint(dir: &Path) -> PathBuf {
    if dir.join("config.json").is_file() {
        return dir.into();
    }
    // `<run>/ckpt` missing (e.g. an older layout) but the run's pointer names one.
    let run = if dir.is_dir() {
        Some(dir)
    } else {
        dir.parent()
            .filter(|p| p.join("checkpoints.json").is_file())
    };
    let Some(run) = run else {
        return dir.into();
    };
    let latest = std::fs::read_to_string(run.join("checkpoints.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["name"].as_str().map(|n| run.join(n)));
    let found = latest
        .into_iter()
        .chain([run.join("ckpt")])
        .find(|p| p.join("config.json").is_file());
    match found {
        Some(p) => {
            eprintln!(
                "note: --checkpoint {}: a training run's folder; using its newest checkpoint {} (pass that folder to be explicit)",
                dir.display(),
                p.display()
            );
            p
        }
        None => dir.into(),
    }
}

/// `--threads`: 0 (libtorch's default) up to [`MAX_THREADS`].
pub fn check_threads(n: usize) -> Result<()> {
    if n > MAX_THREADS {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        bail!("--threads {n}: expected 0 (automatic) up to {MAX_THREADS}; this machine has {cores} logical cores");
    }
    Ok(())
}

/// Below this many bytes of weights read per decode step (and at batch ≤ 4), `--threads 0`
/// runs one thread: each op of a tiny model is a few microseconds of work, and waking
/// libtorch's thread pool for it costs more than it saves (stories260K at one and two
/// threads: `just speed-overhead`, results/speed/overhead).
pub const ONE_THREAD_BELOW_BYTES: i64 = 16 << 20;

/// The thread count `--threads 0` means on the CPU for a model of `weight_bytes` decoding
/// `batch` sequences, and why: `(threads, reason)`; `None` keeps libtorch's default (all cores).
pub fn auto_threads(weight_bytes: i64, batch: usize) -> Option<(i32, String)> {
    (weight_bytes < ONE_THREAD_BELOW_BYTES && batch <= 4).then(|| {
        (
            1,
            format!(
                "auto: 1 thread ({:.1} MB of weights < {} MB: ops this small run faster without the thread pool; --threads N overrides)",
                weight_bytes as f64 / 1e6,
                ONE_THREAD_BELOW_BYTES >> 20
            ),
        )
    })
}

/// Below this many bytes of fp32 weights, `--dtype auto` keeps fp32 on a CPU even where bf16
/// is native: the whole model sits in cache, so bf16 saves no memory traffic, and every step
/// pays for casts around the f32 norms and softmax instead (stories260K at fp32 and bf16:
/// `just speed-overhead`, results/speed/overhead).
pub const FP32_BELOW_BYTES: i64 = 16 << 20;

/// What `--dtype auto` means for a model of `fp32_weight_bytes` on `device` when the machine's
/// own choice is `machine`: fp32 for a small model on a CPU (with the reason), else `None`
/// (keep the machine's choice).
pub fn auto_dtype(
    fp32_weight_bytes: i64,
    device: Device,
    machine: DType,
) -> Option<(DType, String)> {
    (device == Device::Cpu && machine != DType::Fp32 && fp32_weight_bytes < FP32_BELOW_BYTES).then(|| {
        (
            DType::Fp32,
            format!(
                "auto: fp32 ({:.1} MB of fp32 weights < {} MB: the model fits in cache, so bf16 saves no memory traffic and only adds casts; --dtype bf16 overrides)",
                fp32_weight_bytes as f64 / 1e6,
                FP32_BELOW_BYTES >> 20
            ),
        )
    })
}

/// `--batch`: 1 up to [`MAX_BATCH`].
pub fn check_batch_range(batch: usize) -> Result<()> {
    if batch == 0 || batch > MAX_BATCH {
        bail!("--batch {batch}: expected 1 up to {MAX_BATCH}");
    }
    Ok(())
}

/// `--batch`: 1 up to [`MAX_BATCH`], and the KV cache plus one step's logits for `batch`
/// sequences of `positions` must fit in the memory there is.
pub fn check_batch(
    cfg: &ModelConfig,
    batch: usize,
    positions: usize,
    dtype_bytes: usize,
) -> Result<()> {
    check_batch_range(batch)?;
    let kv = 2.0
        * cfg.n_layer as f64
        * (batch * cfg.n_kv_heads * cfg.head_dim() * dtype_bytes) as f64
        * positions as f64;
    let logits = (batch * cfg.vocab_size * 4) as f64 * 2.0;
    let need = kv + logits;
    if let Some(avail) = model::validate::available_memory().filter(|&a| need > a as f64) {
        bail!(
            "--batch {batch}: {positions} positions of KV cache and logits need about {:.2} GB, but only {:.2} GB of memory is available: use a smaller --batch or --max-new-tokens",
            need / 1e9,
            avail as f64 / 1e9
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_dtype_keeps_fp32_only_for_small_models_on_a_cpu() {
        let (d, why) = auto_dtype(1 << 20, Device::Cpu, DType::Bf16).unwrap();
        assert_eq!(d, DType::Fp32);
        assert!(why.contains("--dtype bf16 overrides"), "{why}");
        assert!(auto_dtype(FP32_BELOW_BYTES, Device::Cpu, DType::Bf16).is_none());
        assert!(auto_dtype(500 << 20, Device::Cpu, DType::Bf16).is_none());
        assert!(auto_dtype(1 << 20, Device::Cuda(0), DType::Bf16).is_none());
        assert!(auto_dtype(1 << 20, Device::Cpu, DType::Fp32).is_none());
    }

    #[test]
    fn auto_threads_picks_one_thread_only_for_small_models_and_batches() {
        let (n, why) = auto_threads(1 << 20, 1).unwrap();
        assert_eq!(n, 1);
        assert!(why.contains("--threads N overrides"), "{why}");
        assert!(auto_threads(ONE_THREAD_BELOW_BYTES, 1).is_none());
        assert!(auto_threads(500 << 20, 1).is_none());
        assert!(auto_threads(1 << 20, 8).is_none());
    }
}
