//! Command-line inputs that could otherwise hurt: `--checkpoint` given a training run's
//! folder (resolved to its newest checkpoint), and `--threads` / `--batch` beyond what the
//! machine can do (an error before anything is allocated); and what `--threads 0` and
//! `--dtype auto` mean for a model's size and for a generation's work.
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

/// What a generation asks of the machine, for [`auto_bf16_for_decode`].
#[derive(Debug, Clone, Copy)]
pub struct GenWork {
    /// Bytes of the model's weights in fp32.
    pub fp32_weight_bytes: i64,
    /// Prompt tokens per sequence (an estimate: a text prompt counts its bytes, at least as
    /// many as its tokens, which leans towards fp32).
    pub prompt_tokens: usize,
    pub new_tokens: usize,
    pub batch: usize,
}

impl GenWork {
    /// Seconds to prefill and then decode, from the machine's measured rates: the prompt's
    /// 2 · params FLOPs per token at the matmul peak of `dtype`, then one read of every
    /// weight per decode step at the measured bandwidth.
    pub fn seconds(&self, m: &runtime::hardware::MachineRecord, dtype: DType) -> (f64, f64) {
        let params = self.fp32_weight_bytes as f64 / 4.0;
        let peak = match dtype {
            DType::Fp32 => m.measured.fp32_flops,
            _ => m.measured.bf16_flops,
        };
        let prefill = 2.0 * params * (self.prompt_tokens * self.batch) as f64 / peak.max(1.0);
        let bytes = params * dtype.bytes() as f64;
        let decode = self.new_tokens as f64 * bytes / m.measured.bandwidth_bytes_per_s.max(1.0);
        (prefill, decode)
    }
}

/// `--dtype auto` with the KV cache on a CPU whose bf16 matmul loses to fp32 (so the machine's
/// choice is fp32) but whose decode gemv has a native bf16 kernel (AVX512-BF16,
/// `runtime::gemv::native_bf16`): a decode step streams every weight once, and bf16 halves
/// those bytes, while only the prefill pays for the slower bf16 matmul. bf16 when the
/// estimate of the whole generation ([`GenWork::seconds`]) says it is faster, with the
/// reason; `None` keeps fp32. (On a Xeon reporting avx512_bf16 without AMX, 2026-12-07,
/// bf16 matmuls ran at 157 GFLOP/s against fp32's 273, and GPT-2 124M decoded in bf16 at
/// about 1.6× the fp32 speed: results/speed/peers.md.)
pub fn auto_bf16_for_decode(
    work: &GenWork,
    device: Device,
    machine_choice: DType,
    m: &runtime::hardware::MachineRecord,
    bf16_gemv: bool,
) -> Option<(DType, String)> {
    if device != Device::Cpu
        || machine_choice != DType::Fp32
        || !bf16_gemv
        || work.fp32_weight_bytes < FP32_BELOW_BYTES
    {
        return None;
    }
    let (p32, d32) = work.seconds(m, DType::Fp32);
    let (p16, d16) = work.seconds(m, DType::Bf16);
    (p16 + d16 < p32 + d32).then(|| {
        (
            DType::Bf16,
            format!(
                "auto: bf16 for decode (this CPU's bf16 matmul is {:.1}× slower than fp32, but the decode gemv runs bf16 natively and a decode step streams half the bytes: estimated {:.2} s vs {:.2} s in fp32 for {} prompt + {} new tokens, prefill {:.2} s vs {:.2} s; --dtype fp32 overrides)",
                m.bf16_slowdown(),
                p16 + d16,
                p32 + d32,
                work.prompt_tokens,
                work.new_tokens,
                p16,
                p32
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

    /// The Xeon of 2026-12-07 (results/speed/peers.md): bf16 matmul 157 GFLOP/s, fp32 273,
    /// 22.6 GB/s of read bandwidth.
    fn xeon() -> runtime::hardware::MachineRecord {
        use runtime::hardware::{Facts, MachineRecord, Measured};
        MachineRecord {
            facts: Facts {
                cpu_model: "Test Xeon".into(),
                arch: "x86_64".into(),
                logical_cores: 2,
                cpu_flags: vec!["avx2".into(), "avx512f".into(), "avx512_bf16".into()],
                device: "cpu".into(),
                gpu: None,
                threads: 2,
            },
            measured: Measured {
                fp32_flops: 273e9,
                fp32_matmul_n: 2048,
                bf16_flops: 157e9,
                bf16_matmul_n: 2048,
                bandwidth_bytes_per_s: 22.6e9,
                bandwidth_buffer_bytes: 1 << 28,
                measure_s: 1.0,
                measured_at: "2026-12-07T00:00:00Z".into(),
            },
        }
    }

    #[test]
    fn auto_bf16_for_decode_where_the_gemv_is_native_and_decode_dominates() {
        let m = xeon();
        // GPT-2 124M: 497 MB of fp32 weights, prompt 64, 128 new tokens.
        let gpt2 = GenWork {
            fp32_weight_bytes: 497_000_000,
            prompt_tokens: 64,
            new_tokens: 128,
            batch: 1,
        };
        let (d, why) = auto_bf16_for_decode(&gpt2, Device::Cpu, DType::Fp32, &m, true).unwrap();
        assert_eq!(d, DType::Bf16);
        assert!(
            why.contains("--dtype fp32 overrides") && why.contains("1.7×"),
            "{why}"
        );
        // Decode alone: bf16 reads half the bytes.
        let (_, d32) = gpt2.seconds(&m, DType::Fp32);
        let (_, d16) = gpt2.seconds(&m, DType::Bf16);
        assert!((d32 / d16 - 2.0).abs() < 1e-9);
        // A long prompt and few new tokens: the slower bf16 prefill loses.
        let prefill_heavy = GenWork {
            prompt_tokens: 4096,
            new_tokens: 8,
            ..gpt2
        };
        assert!(auto_bf16_for_decode(&prefill_heavy, Device::Cpu, DType::Fp32, &m, true).is_none());
        // No native bf16 gemv (AVX2 only), a small model, a GPU, or bf16 already chosen: no change.
        assert!(auto_bf16_for_decode(&gpt2, Device::Cpu, DType::Fp32, &m, false).is_none());
        let tiny = GenWork {
            fp32_weight_bytes: 1 << 20,
            ..gpt2
        };
        assert!(auto_bf16_for_decode(&tiny, Device::Cpu, DType::Fp32, &m, true).is_none());
        assert!(auto_bf16_for_decode(&gpt2, Device::Cuda(0), DType::Fp32, &m, true).is_none());
        assert!(auto_bf16_for_decode(&gpt2, Device::Cpu, DType::Bf16, &m, true).is_none());
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
