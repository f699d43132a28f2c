//! The `infer` command line (`cargo run -p infer -- --help`): flags in the spirit of
//! nanoGPT's `sample.py` and llama.cpp's `main`, plus the KV-cache / GQA ablation switches
//! and the memory planner. The flags and the plan live here, a generation run in `run.rs`.
mod run;

use crate::limits;
use crate::sampling::Sampler;
use crate::source::{self, SourceSpec};
use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Parser, ValueEnum};
use model::AttnKernel;
pub use run::run;
use runtime::{DType, Precision};
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Device;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Stream the text to stdout, then a short report on stderr.
    Text,
    /// One JSON object on stdout: ids and text (one entry per sequence), prompt_ids, ttft_ms, prefill/decode_tokens_per_sec, kv_cache_bytes, peak_rss_bytes, settings.
    Json,
}

#[derive(Parser, Debug, Clone)]
#[command(
    name = "infer",
    allow_negative_numbers = true,
    about = "Generate with a GPT-2 / Llama-style model and measure it: prefill the prompt in one forward, then decode token by token with or without a KV cache; report time to first token, prefill and decode tokens/sec, KV-cache bytes and peak memory.",
    after_help = "Model: --model (Hugging Face GPT-2, Llama or Qwen2 folder), --checkpoint (a training run's ckpt folder) or --preset; with none of them, preset gpt2_124m (GPT-2 small's shape) with random weights, which measures speed only.\n\nDefault prompt: \"Hello, I'm a language model,\" with the GPT-2 tokenizer, a newline with a character vocabulary, else the single id bos_token_id from config.json (1 for Llama-style RoPE models, 0 otherwise).\n\nExamples:\n  infer --kv-cache --gqa 4                      random GPT-2-small shape, 4 KV heads (GQA)\n  infer --model ../shared/models/stories260K --prompt-ids 1 --temperature 0 --kv-cache\n  infer --checkpoint runs/shakespeare_char_cpu/ckpt --prompt 'ROMEO:' --max-new-tokens 200 --kv-cache\n  infer --plan --memory-gb 16 --gqa 4 --dtype bf16   how much context fits in 16 GB\n\nLogs: RUST_LOG=info (or debug) on stderr."
)]
#[command(group(ArgGroup::new("source").args(["model", "checkpoint", "preset"])))]
#[command(group(ArgGroup::new("input").args(["prompt", "prompt_ids"])))]
pub struct Args {
    /// A Hugging Face GPT-2 or Llama folder (config.json + model.safetensors).
    #[arg(long, value_name = "DIR")]
    pub model: Option<PathBuf>,
    /// A training checkpoint folder (config.json, model.safetensors, meta.json), e.g. runs/<name>/ckpt.
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// A preset with random weights [default: gpt2_124m]: gpt2_124m, gpt2_small_cpu, gpt2_speed_cpu, gpt2_tiny, llama3_style, llama_tiny.
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// The prompt text, tokenised with the model's tokenizer (GPT-2 BPE, or a checkpoint's characters).
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// The prompt as token ids, for models without a tokenizer, e.g. --prompt-ids 1,2,3.
    #[arg(long, value_name = "IDS")]
    pub prompt_ids: Option<String>,
    /// Tokens to generate per sequence (prompt + these must fit in the context, block_size).
    #[arg(long, value_name = "N", default_value_t = 64)]
    pub max_new_tokens: usize,
    /// Decode with a pre-allocated KV cache; without it every step recomputes the whole context.
    #[arg(long)]
    pub kv_cache: bool,
    /// Key/value heads G (GQA; 1 = MQA, n_head = MHA; must divide n_head). Presets only: a loaded model's is fixed [default: the preset's, MHA].
    #[arg(long, value_name = "G")]
    pub gqa: Option<usize>,
    /// Attention kernel: naive (explicit masked softmax) or sdpa (scaled_dot_product_attention).
    #[arg(long, value_name = "naive|sdpa", default_value = "sdpa")]
    pub attention: AttnKernel,
    /// Precision of weights, cache and matmuls: auto (bf16 where this machine runs it natively — CUDA sm80+, AMX/AVX512-BF16 CPUs, measured once and cached — else fp32; on a CPU fp32 for models under 16 MB of fp32 weights, which fit in cache), fp32 (exact; matches the references) or bf16 (slow where it is emulated: a warning says how slow).
    #[arg(long, value_name = "auto|fp32|bf16", default_value = "auto")]
    pub dtype: Precision,
    /// Intra-op CPU threads (0 = automatic: one thread for a model under 16 MB of weights at batch ≤ 4, where the thread pool costs more than it saves; else all cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Sequences generated at once (copies of the prompt), for throughput.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub batch: usize,
    /// Sampling temperature; 0 = greedy (argmax).
    #[arg(long, value_name = "T", default_value_t = 0.8)]
    pub temperature: f64,
    /// Sample among the k most likely tokens only (0 = all).
    #[arg(long, value_name = "K", default_value_t = 200)]
    pub top_k: usize,
    /// Nucleus sampling: the smallest set of most likely tokens with probability ≥ p (1 = all).
    #[arg(long, value_name = "P", default_value_t = 1.0)]
    pub top_p: f64,
    /// Seed of the sampling RNG and of a preset's random weights.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    /// Keep going past an end-of-sequence token (always the case for random weights).
    #[arg(long)]
    pub ignore_eos: bool,
    /// cpu, cuda, cuda:N, or auto (the first GPU when libtorch sees one, else the CPU).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Print the memory plan (weights, KV bytes per token, context tokens that fit) and exit.
    #[arg(long)]
    pub plan: bool,
    /// Weight-only quantization of every Linear and the LM head: int8 (per-channel) or int4 (per group); --plan counts the quantized bytes.
    #[arg(long, value_name = "int8|int4")]
    pub quant: Option<String>,
    /// int4 group size: 32, 64, 128 or 256 [default: 32].
    #[arg(long, value_name = "N")]
    pub group_size: Option<i64>,
    /// Save the quantized model to DIR (load it later with --model DIR).
    #[arg(long, value_name = "DIR", requires = "quant")]
    pub save_quant: Option<PathBuf>,
    /// Memory budget for --plan, in GB (10⁹ bytes).
    #[arg(long, value_name = "M", default_value_t = 16.0)]
    pub memory_gb: f64,
}

/// `--prompt-ids 1,2,3` (commas and/or spaces) → ids.
pub fn parse_ids(s: &str) -> Result<Vec<i64>> {
    s.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<i64>().ok().filter(|&i| i >= 0).with_context(|| {
                format!("--prompt-ids: '{t}' is not a token id (expected e.g. 1,2,3)")
            })
        })
        .collect()
}

/// The most recently written `runs/**/ckpt` (3 levels deep at most), if any.
pub fn find_checkpoint(runs: &Path) -> Option<PathBuf> {
    fn walk(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for p in rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()) {
            if p.file_name().is_some_and(|n| n == "ckpt") && p.join("config.json").is_file() {
                found.push(p);
            } else if depth > 0 {
                walk(&p, depth - 1, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(runs, 2, &mut found);
    let mtime = |p: &PathBuf| {
        std::fs::metadata(p.join("config.json"))
            .and_then(|m| m.modified())
            .ok()
    };
    found.into_iter().max_by_key(mtime)
}

impl Args {
    /// The compute dtype: `--dtype` resolved on this machine's measured facts (logged).
    pub fn resolve_dtype(&self, device: Device) -> Result<DType> {
        Ok(match self.dtype {
            Precision::Fp32 => DType::Fp32,
            p => p.resolve_logged(&runtime::hardware::machine(device)?),
        })
    }

    pub fn spec(&self, device: Device, dtype: DType) -> SourceSpec {
        SourceSpec {
            model: self.model.clone(),
            checkpoint: self.checkpoint.as_deref().map(limits::resolve_checkpoint),
            preset: self.preset.clone(),
            gqa: self.gqa,
            attention: self.attention,
            dtype,
            device,
            seed: self.seed,
        }
    }

    fn sampler(&self) -> Sampler {
        Sampler {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
        }
    }
}

pub(crate) fn plan(args: &Args, spec: &SourceSpec) -> Result<()> {
    if !(args.memory_gb.is_finite() && args.memory_gb > 0.0) {
        bail!(
            "--memory-gb must be a positive number of GB, got {}",
            args.memory_gb
        );
    }
    let (cfg, folder) = source::resolve(spec)?;
    let q = crate::quant::scheme(args.quant.as_deref(), args.group_size)?;
    let q = q.or(crate::quant::folder_scheme(folder.map(|f| f.dir))?);
    let plan = crate::planner::plan_quant(&cfg, spec.dtype.bytes(), args.memory_gb, q);
    let text = match args.format {
        Format::Text => plan.text(),
        Format::Json => serde_json::to_string(&plan)? + "\n",
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}
