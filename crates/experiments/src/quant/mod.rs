//! The quantization ladder: dense baseline → int8 → int4 (group 128) → int4 (group 32),
//! weight-only (`model::quant`; LLM.int8 per-channel scales, llama.cpp Q4_1 / gpt-fast int4
//! groups) on libtorch's weight-only kernels. Each rung is its own binary (`quant_1_baseline`
//! … `quant_4_int4_g32`) and writes `results/quant/rungs/<rung>.json`; `quant_report` turns
//! them into `results/quant/{summary.csv,README.md,chart.svg}`.
//!
//! Per rung: weight bytes, decode tokens/sec at batch 1 and 8 with the KV cache and prefill
//! tokens/sec, on GPT-2-124M's shape (random weights) and on stories260K; and on stories260K
//! the quality against the unquantized fp32 model: mean KL of the next-token distribution
//! over a fixed 512-token sequence, top-1 agreement there, and matching greedy ids from BOS.
pub mod charval;
mod measure;
pub mod report;

use anyhow::{Context, Result};
use clap::Parser;
use model::quant::Scheme;
use runtime::{DType, Precision};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// One rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rung {
    Baseline,
    Int8,
    Int4G128,
    Int4G32,
}

impl Rung {
    pub const ALL: [Rung; 4] = [Rung::Baseline, Rung::Int8, Rung::Int4G128, Rung::Int4G32];

    /// "1_bf16" (or "1_fp32"), "2_int8", "3_int4_g128", "4_int4_g32".
    pub fn name(self, baseline: DType) -> String {
        match self {
            Rung::Baseline => format!("1_{}", baseline.name()),
            Rung::Int8 => "2_int8".into(),
            Rung::Int4G128 => "3_int4_g128".into(),
            Rung::Int4G32 => "4_int4_g32".into(),
        }
    }

    pub fn scheme(self) -> Option<Scheme> {
        match self {
            Rung::Baseline => None,
            Rung::Int8 => Some(Scheme::Int8),
            Rung::Int4G128 => Some(Scheme::Int4 { group_size: 128 }),
            Rung::Int4G32 => Some(Scheme::Int4 { group_size: 32 }),
        }
    }
}

#[derive(Parser, Debug, Clone)]
#[command(about = "One rung of the quantization ladder (see docs/quantization.md).")]
pub struct Args {
    /// Timed repeats per measurement (the median is kept).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Prompt tokens per sequence for prefill.
    #[arg(long, default_value_t = 64)]
    pub prompt_len: usize,
    /// Decode steps per timed run.
    #[arg(long, default_value_t = 32)]
    pub decode_tokens: usize,
    /// Activation / baseline precision: auto (bf16 where this machine runs it natively,
    /// measured once and cached by `runtime::hardware`, else fp32), fp32 or bf16.
    #[arg(long, value_name = "auto|fp32|bf16", default_value = "auto")]
    pub dtype: Precision,
    /// Intra-op threads (0 = libtorch's default).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Skip the GPT-2-124M speed run (stories260K only).
    #[arg(long)]
    pub no_gpt2: bool,
    /// The run folder of a Tiny Shakespeare char model trained by
    /// `just train experiments/shakespeare_char_cpu.toml`: its val loss before and after
    /// (skipped, with a note, when the folder has no checkpoint).
    #[arg(long, default_value = "runs/shakespeare_char_cpu")]
    pub char_run: PathBuf,
    /// Output folder.
    #[arg(long, default_value = "results/quant")]
    pub out: PathBuf,
}

/// Speed of one model under one rung.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Speed {
    pub model: String,
    pub weight_bytes: i64,
    /// Bytes the matmuls of one decode step read (quantized layers + head, or dense ones).
    pub matmul_bytes: i64,
    pub decode_tps_b1: f64,
    pub decode_tps_b8: f64,
    pub prefill_tps: f64,
}

/// Quality on stories260K against the unquantized fp32 model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quality {
    /// Positions of the fixed sequence (BOS + 511 ids sampled from the fp32 model, seed 1337).
    pub positions: usize,
    pub kl_mean: f64,
    pub kl_max: f64,
    pub top1_agreement: f64,
    /// Of the first 200 greedy ids from BOS: how many equal the fp32 model's, position by
    /// position, and how long the common prefix is.
    pub greedy_match: usize,
    pub greedy_prefix: usize,
}

/// What a rung binary writes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RungResult {
    pub rung: String,
    pub scheme: String,
    pub dtype: String,
    pub speed: Vec<Speed>,
    pub quality: Option<Quality>,
    /// The trained char model's val loss before and after (absent when none was found).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub char_val: Option<charval::CharVal>,
    pub git_rev: String,
    pub time_utc: String,
    pub cpu: String,
    pub flags: String,
    pub threads: i32,
    pub wall_s: f64,
    pub args: String,
}

/// Run one rung and write its JSON.
pub fn main(rung: Rung) -> Result<()> {
    runtime::logging::init();
    let args = Args::parse();
    let start = std::time::Instant::now();
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    // The machine's measured facts decide `auto` and are recorded with the results.
    let machine = runtime::hardware::machine(tch::Device::Cpu)?;
    let dtype = args.dtype.resolve_logged(&machine);
    let name = rung.name(dtype);
    eprintln!("quant ladder rung {name} ({dtype} activations)");
    let mut speed = Vec::new();
    if !args.no_gpt2 {
        speed.push(measure::speed_preset("gpt2_124m", rung, dtype, &args)?);
    }
    let stories = runtime::resources::shared_resource("models/stories260K")?
        .context("stories260K not found under the shared folder (models/stories260K)")?;
    speed.push(measure::speed_folder(&stories, rung, dtype, &args)?);
    let quality = Some(measure::quality(&stories, rung)?);
    let char_val = charval::find(&args.char_run)
        .map(|ckpt| charval::measure(&ckpt, rung))
        .transpose()?;
    let res = RungResult {
        rung: name.clone(),
        scheme: rung.scheme().map_or("dense".into(), |s| s.label()),
        dtype: dtype.name().into(),
        speed,
        quality,
        char_val,
        git_rev: runtime::facts::git_rev(),
        time_utc: runtime::facts::timestamp_utc(),
        cpu: crate::sys::cpu_name(),
        flags: machine.facts.cpu_flags.join(" "),
        threads: tch::get_num_threads(),
        wall_s: start.elapsed().as_secs_f64(),
        args: std::env::args().skip(1).collect::<Vec<_>>().join(" "),
    };
    let dir = args.out.join("rungs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    let text = serde_json::to_string_pretty(&res)? + "\n";
    runtime::fsio::write_atomic(&path, |tmp| Ok(std::fs::write(tmp, text)?))?;
    eprintln!("wrote {} ({:.0} s)", path.display(), res.wall_s);
    Ok(())
}
