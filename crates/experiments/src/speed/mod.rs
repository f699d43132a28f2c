//! The speed ladder: original → +bf16 → +SDPA (flash) attention → +KV cache → +GQA.
//!
//! Each rung adds one thing to the one before and is its own binary
//! (`speed_1_original` … `speed_5_gqa`); all share this harness, which measures training
//! (forward + backward + AdamW), prefill and decode throughput on synthetic token ids and
//! appends one CSV row per phase to `results/speed/rungs/<rung>.csv`.
pub mod budget;
pub mod explain;
mod measure;
pub mod report;

use anyhow::{Context, Result};
use clap::Parser;
use model::{Attention, ModelConfig};
use runtime::{DType, Precision};
use std::path::{Path, PathBuf};

pub use measure::{Stats, Workload};

/// One rung of the ladder: what it turns on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rung {
    Original,
    OriginalUnpadded,
    Bf16,
    Flash,
    KvCache,
    Gqa,
}

impl Rung {
    pub const ALL: [Rung; 6] = [
        Rung::Original,
        Rung::OriginalUnpadded,
        Rung::Bf16,
        Rung::Flash,
        Rung::KvCache,
        Rung::Gqa,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rung::Original => "1_original",
            Rung::OriginalUnpadded => "1_original_unpadded",
            Rung::Bf16 => "2_bf16",
            Rung::Flash => "3_flash",
            Rung::KvCache => "4_kv_cache",
            Rung::Gqa => "5_gqa",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Rung::Original => "fp32, naive attention, vocabulary padded to a multiple of 64",
            Rung::OriginalUnpadded => "side row: rung 1 with the unpadded GPT-2 vocabulary (50257)",
            Rung::Bf16 => "+ bf16 mixed precision (fp32 master weights)",
            Rung::Flash => "+ SDPA (flash) attention",
            Rung::KvCache => "+ KV cache at inference",
            Rung::Gqa => {
                "+ GQA: --gqa key/value heads (4 by default; 3 query heads share each of 12)"
            }
        }
    }

    /// The precision this rung asks for: rung 1 is fp32 and rung 2 is bf16 by definition
    /// (on a CPU that emulates bf16 it is measured anyway, on a reduced workload, to show
    /// the truth); the rungs after it run in the machine's fast precision.
    pub fn precision(self) -> Precision {
        match self {
            Rung::Original | Rung::OriginalUnpadded => Precision::Fp32,
            Rung::Bf16 => Precision::Bf16,
            _ => Precision::Auto,
        }
    }

    pub fn attention(self) -> Attention {
        match self {
            Rung::Original | Rung::OriginalUnpadded | Rung::Bf16 => Attention::Naive,
            _ => Attention::Sdpa,
        }
    }

    pub fn kv_cache(self) -> bool {
        matches!(self, Rung::KvCache | Rung::Gqa)
    }

    /// The model config of this rung, from the base preset, in the compute dtype `dtype`
    /// (this rung's [`Rung::precision`] resolved on the machine).
    pub fn config(self, base: &ModelConfig, gqa: usize, dtype: DType) -> ModelConfig {
        let mut cfg = base.clone();
        cfg.dtype = dtype;
        cfg.attention = self.attention();
        cfg.dropout = 0.0;
        if self == Rung::OriginalUnpadded {
            cfg.vocab_size = 50257;
        }
        if self == Rung::Gqa {
            cfg.n_kv_heads = gqa;
        }
        cfg
    }
}

/// Options shared by every speed binary.
#[derive(Debug, Clone, Parser)]
#[command(
    about = "Measure one rung of the speed ladder (training, prefill and decode tokens/sec) and append its rows to CSV."
)]
pub struct SpeedArgs {
    /// Model shape: a preset name (gpt2_speed_cpu is sized for 2 CPU cores, within the budget;
    /// gpt2_124m is the real GPT-2 small, for a GPU or a patient CPU).
    #[arg(long, default_value = "gpt2_speed_cpu")]
    pub preset: String,
    /// Key/value heads of the GQA rung (must divide the preset's n_head).
    #[arg(long, default_value_t = 4)]
    pub gqa: usize,
    /// Training batch size (sequences per step).
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Training sequence length (tokens per sequence).
    #[arg(long, default_value_t = 256)]
    pub seq_len: usize,
    /// Prompt length for prefill and decode.
    #[arg(long, default_value_t = 128)]
    pub prompt_len: usize,
    /// Tokens generated in the decode phase.
    #[arg(long, default_value_t = 256)]
    pub new_tokens: usize,
    /// Sequences generated at once in prefill and decode.
    #[arg(long, default_value_t = 1)]
    pub infer_batch: usize,
    /// Warm-up repetitions, not measured.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Measured repetitions (median, min and max are reported).
    #[arg(long, default_value_t = 5)]
    pub repeats: usize,
    /// Measured repetitions of the (slow) decode phase.
    #[arg(long, default_value_t = 3)]
    pub decode_repeats: usize,
    /// Time budget of each phase, warm-up included, in seconds: after at least 2 measured
    /// repeats a phase stops when one more would overrun it (so the ladder takes bounded
    /// time on any machine; the rows record how many repeats ran).
    #[arg(long, default_value_t = 30.0)]
    pub max_seconds: f64,
    /// Phases to run (comma-separated: train, prefill, decode).
    #[arg(long, default_value = "train,prefill,decode", value_delimiter = ',')]
    pub phases: Vec<String>,
    /// Intra-op threads (0 = libtorch's default, all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Output folder: rows go to <out>/rungs/<rung>.csv, the machine's measured facts to <out>/machine.json.
    #[arg(long, default_value = "results/speed")]
    pub out: PathBuf,
    /// Random seed for weights and token ids.
    #[arg(long, default_value_t = 1337)]
    pub seed: i64,
}

/// Entry point of a speed binary: run `rungs` with the command-line options.
pub fn main(rungs: &[Rung]) -> Result<()> {
    runtime::logging::init();
    let args = SpeedArgs::parse();
    anyhow::ensure!(
        args.max_seconds.is_finite() && args.max_seconds > 0.0,
        "--max-seconds {}: expected a positive number of seconds",
        args.max_seconds
    );
    let device = runtime::device::parse_device(&args.device)?;
    let threads = runtime::device::set_threads(args.threads);
    let base = ModelConfig::preset(&args.preset).context("--preset")?;
    for p in &args.phases {
        if !["train", "prefill", "decode"].contains(&p.as_str()) {
            anyhow::bail!("--phases: unknown phase '{p}' (expected train, prefill or decode)");
        }
    }
    if !base.n_head.is_multiple_of(args.gqa) || args.gqa == 0 {
        anyhow::bail!(
            "--gqa {}: must divide the preset's n_head ({})",
            args.gqa,
            base.n_head
        );
    }
    if args.prompt_len + args.new_tokens > base.block_size {
        anyhow::bail!(
            "--prompt-len {} + --new-tokens {} exceeds the preset's block_size {}",
            args.prompt_len,
            args.new_tokens,
            base.block_size
        );
    }
    if args.seq_len > base.block_size {
        anyhow::bail!(
            "--seq-len {} exceeds the preset's block_size {}",
            args.seq_len,
            base.block_size
        );
    }
    let machine = runtime::hardware::machine(device)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    runtime::hardware::write_record(&args.out.join("machine.json"), &machine)?;
    let shape = serde_json::json!({"preset": args.preset, "model": base, "batch": args.batch, "seq_len": args.seq_len});
    std::fs::write(
        args.out.join("config.json"),
        serde_json::to_string_pretty(&shape)? + "\n",
    )?;
    // A child process measures one phase of one rung (see `measure_in_children`).
    let child = std::env::var("LADDER_SPEED_CHILD").ok();
    for &rung in rungs {
        // The parent logs the choice (and any emulated-bf16 warning) once per rung.
        let dtype = if child.is_some() {
            rung.precision().resolve(&machine).dtype
        } else {
            rung.precision().resolve_logged(&machine)
        };
        let cfg = rung.config(&base, args.gqa, dtype);
        cfg.validate()?;
        if let Some(spec) = &child {
            let (name, phase, rows_out) = parse_child(spec)?;
            if name != rung.name() {
                continue;
            }
            let one = SpeedArgs {
                phases: vec![phase],
                ..args.clone()
            };
            let rows = measure::run_rung(rung, &cfg, &one, device, threads, &machine)?;
            report::write_rows(Path::new(&rows_out), &rows)?;
            continue;
        }
        tracing::info!("rung {}: {}", rung.name(), rung.describe());
        let rows = measure_in_children(rung, &args)?;
        let path = args.out.join("rungs").join(format!("{}.csv", rung.name()));
        report::write_rows(&path, &rows)?;
        for r in &rows {
            eprintln!(
                "  {:<20} {:<8} {:>10.0} tok/s  (min {:.0}, max {:.0})  {:>8.1} ms/step  MFU {:>5.1}%  peak RSS {:.2} GB",
                r.rung, r.phase, r.tokens_per_sec, r.tokens_per_sec_min, r.tokens_per_sec_max, r.ms_per_step, 100.0 * r.mfu,
                r.peak_rss_bytes as f64 / 1e9
            );
        }
        eprintln!("  rows written to {}", path.display());
    }
    Ok(())
}

fn parse_child(spec: &str) -> Result<(String, String, String)> {
    let mut it = spec.splitn(3, '|');
    match (it.next(), it.next(), it.next()) {
        (Some(a), Some(b), Some(c)) => Ok((a.into(), b.into(), c.into())),
        _ => anyhow::bail!("LADDER_SPEED_CHILD: expected rung|phase|path"),
    }
}

/// Measure each phase in a fresh process (this binary again): phases do not inherit each
/// other's heap, allocator or kernel-cache state, and each row's peak RSS is its own.
fn measure_in_children(rung: Rung, args: &SpeedArgs) -> Result<Vec<report::Row>> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let dir = args.out.join("rungs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rows = Vec::new();
    for phase in &args.phases {
        let part = dir.join(format!(".{}.{phase}.csv", rung.name()));
        let status = std::process::Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .env(
                "LADDER_SPEED_CHILD",
                format!("{}|{phase}|{}", rung.name(), part.display()),
            )
            .status()
            .with_context(|| format!("running {}", exe.display()))?;
        anyhow::ensure!(
            status.success(),
            "measuring {} {phase} failed ({status})",
            rung.name()
        );
        rows.extend(report::read_rows(&part)?);
        let _ = std::fs::remove_file(&part);
    }
    Ok(rows)
}
