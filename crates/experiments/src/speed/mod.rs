//! The speed ladder: original → +bf16 → +SDPA (flash) attention → +KV cache → +GQA.
//!
//! Each rung adds one thing to the one before and is its own binary
//! (`speed_1_original` … `speed_5_gqa`); all share this harness, which measures training
//! (forward + backward + AdamW), prefill and decode throughput on synthetic token ids and
//! appends one CSV row per phase to `results/speed/rungs/<rung>.csv`.
pub mod budget;
pub mod explain;
pub mod kernels;
mod measure;
pub mod overhead;
pub mod peers;
pub mod report;
pub mod sweep;

use crate::rung::{Knobs, Rung, SpeedRung};
use anyhow::{Context, Result};
use clap::Parser;
use model::{ModelConfig, RunSettings};
use std::path::PathBuf;

pub use measure::{Stats, Workload};

/// A phase of a rung's measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Forward + backward + AdamW on a batch.
    Train,
    /// The prompt in one forward.
    Prefill,
    /// New tokens one at a time after the prompt.
    Decode,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Train, Phase::Prefill, Phase::Decode];

    pub fn name(self) -> &'static str {
        match self {
            Phase::Train => "train",
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Phase::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown phase '{s}' (expected train, prefill or decode)"))
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
    pub phases: Vec<Phase>,
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
    /// Attention kernel (naive or sdpa) instead of the rung's own, e.g. to time the fp32 rung
    /// beside a peer that has SDPA only (`just speed-peers`); the rows record the kernel.
    #[arg(long, value_name = "KERNEL")]
    pub attention: Option<model::AttnKernel>,
    /// Internal (hidden from --help): measure only this rung's `--child-phase` and write its
    /// rows to `--child-out`. The binary runs itself this way once per phase (see
    /// `measure_in_children`); the other flags are the parent's, passed through unchanged.
    #[arg(long, hide = true, value_name = "RUNG", requires_all = ["child_phase", "child_out"])]
    pub child_rung: Option<SpeedRung>,
    /// Internal: the phase the child measures (train, prefill or decode).
    #[arg(long, hide = true, value_name = "PHASE", requires = "child_rung")]
    pub child_phase: Option<Phase>,
    /// Internal: the CSV file the child writes its rows to.
    #[arg(long, hide = true, value_name = "PATH", requires = "child_rung")]
    pub child_out: Option<PathBuf>,
}

/// What a child process was asked to measure (`--child-rung/--child-phase/--child-out`).
struct Child {
    rung: SpeedRung,
    phase: Phase,
    out: PathBuf,
}

impl SpeedArgs {
    fn child(&self) -> Option<Child> {
        Some(Child {
            rung: self.child_rung?,
            phase: self.child_phase?,
            out: self.child_out.clone()?,
        })
    }
}

/// Entry point of a speed binary: run `rungs` with the command-line options.
pub fn main(rungs: &[SpeedRung]) -> Result<()> {
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
    base.clone()
        .set_kv_heads(args.gqa)
        .map_err(|e| anyhow::anyhow!("--gqa {}: {}", args.gqa, e.0))?;
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
    let child = args.child();
    let knobs = Knobs {
        gqa: Some(args.gqa),
    };
    for &rung in rungs {
        let (mut cfg, mut run) = (base.clone(), RunSettings::default());
        rung.apply(&mut cfg, &mut run, &knobs);
        if let Some(kernel) = args.attention {
            run.kernel = kernel;
        }
        // The rung's precision resolved on this machine (the parent logs the choice, and any
        // emulated-bf16 warning, once per rung).
        run.dtype = if child.is_some() {
            rung.precision().resolve(&machine).dtype
        } else {
            rung.precision().resolve_logged(&machine)
        };
        cfg.validate()?;
        if let Some(child) = &child {
            if child.rung != rung {
                continue;
            }
            let one = SpeedArgs {
                phases: vec![child.phase],
                ..args.clone()
            };
            let rows = measure::run_rung(rung, &cfg, &run, &one, device, threads, &machine)?;
            report::write_rows(&child.out, &rows)?;
            continue;
        }
        tracing::info!("rung {}: {}", rung.name(), rung.describe());
        let rows = measure_in_children(rung, &args)?;
        let path = args.out.join("rungs").join(format!("{}.csv", rung.name()));
        report::write_rows(&path, &rows)?;
        for r in &rows {
            eprintln!(
                "  {:<20} {:<8} {:>10.0} tok/s  (min {:.0}, max {:.0})  {:>8.1} ms/step  MFU {:>5.1}%  peak RSS {:.2} GB  page faults/run {:.0}",
                r.rung, r.phase, r.tokens_per_sec, r.tokens_per_sec_min, r.tokens_per_sec_max, r.ms_per_step, 100.0 * r.mfu,
                r.peak_rss_bytes as f64 / 1e9, r.page_faults_per_run
            );
        }
        eprintln!("  rows written to {}", path.display());
    }
    Ok(())
}

/// Measure each phase in a fresh process (this binary again): phases do not inherit each
/// other's heap, allocator or kernel-cache state, and each row's peak RSS is its own.
fn measure_in_children(rung: SpeedRung, args: &SpeedArgs) -> Result<Vec<report::Row>> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let dir = args.out.join("rungs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut rows = Vec::new();
    for phase in &args.phases {
        let part = dir.join(format!(".{}.{phase}.csv", rung.name()));
        let status = std::process::Command::new(&exe)
            .args(std::env::args_os().skip(1))
            .args(["--child-rung", rung.name(), "--child-phase", phase.name()])
            .arg("--child-out")
            .arg(&part)
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
