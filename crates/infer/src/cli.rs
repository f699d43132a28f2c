//! The `infer` command line (`cargo run -p infer -- --help`): flags in the spirit of
//! nanoGPT's `sample.py` and llama.cpp's `main`, plus the KV-cache / GQA ablation switches
//! and the memory planner.
use crate::generation::{check_prompt, generate, GenOptions};
use crate::report::{Report, Settings};
use crate::sampling::Sampler;
use crate::source::{self, SourceSpec};
use crate::stream::Utf8Stream;
use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Parser, ValueEnum};
use model::Attention;
use runtime::device::{device_name, parse_device};
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
    after_help = "Model: --model (Hugging Face GPT-2 or Llama folder), --checkpoint (a training run's ckpt folder) or --preset; with none of them, preset gpt2_124m (GPT-2 small's shape) with random weights, which measures speed only.\n\nDefault prompt: \"Hello, I'm a language model,\" with the GPT-2 tokenizer, a newline with a character vocabulary, else the single id bos_token_id from config.json (1 for Llama-style RoPE models, 0 otherwise).\n\nExamples:\n  infer --kv-cache --gqa 4                      random GPT-2-small shape, 4 KV heads (GQA)\n  infer --model ../shared/models/stories260K --prompt-ids 1 --temperature 0 --kv-cache\n  infer --checkpoint runs/shakespeare_char_cpu/ckpt --prompt 'ROMEO:' --max-new-tokens 200 --kv-cache\n  infer --plan --memory-gb 16 --gqa 4 --dtype bf16   how much context fits in 16 GB\n\nLogs: RUST_LOG=info (or debug) on stderr."
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
    pub attention: Attention,
    /// Precision of weights, cache and matmuls: auto (bf16 where this machine runs it natively — CUDA sm80+, AMX/AVX512-BF16 CPUs, measured once and cached — else fp32), fp32 (exact; matches the references) or bf16 (slow where it is emulated: a warning says how slow).
    #[arg(long, value_name = "auto|fp32|bf16", default_value = "auto")]
    pub dtype: Precision,
    /// Intra-op CPU threads (0 = libtorch's default, all cores).
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
            checkpoint: self.checkpoint.clone(),
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

fn plan(args: &Args, spec: &SourceSpec) -> Result<()> {
    if !(args.memory_gb.is_finite() && args.memory_gb > 0.0) {
        bail!(
            "--memory-gb must be a positive number of GB, got {}",
            args.memory_gb
        );
    }
    let (cfg, _) = source::resolve(spec)?;
    let plan = crate::planner::plan(&cfg, spec.dtype.bytes(), args.memory_gb);
    let text = match args.format {
        Format::Text => plan.text(),
        Format::Json => serde_json::to_string(&plan)? + "\n",
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// Run the command: plan, or load, generate (streaming in text mode) and report.
pub fn run(args: &Args) -> Result<()> {
    let device = parse_device(&args.device)?;
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    let spec = args.spec(device, args.resolve_dtype(device)?);
    if args.plan {
        return plan(args, &spec);
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let sampler = args.sampler();
    sampler.validate()?;
    let prompt_ids = args.prompt_ids.as_deref().map(parse_ids).transpose()?;
    let src = source::load(&spec)?;
    let prompt = match (prompt_ids, &args.prompt) {
        (Some(ids), _) => {
            let vocab = src.model.cfg.vocab_size as i64;
            if let Some(bad) = ids.iter().find(|&&i| i >= vocab) {
                bail!(
                    "--prompt-ids: id {bad} is outside the vocabulary of {} (0..{vocab})",
                    src.label
                );
            }
            ids
        }
        (None, Some(text)) => src.encode(text)?,
        (None, None) => src.default_prompt(),
    };
    check_prompt(
        &src.model,
        std::slice::from_ref(&prompt),
        args.max_new_tokens,
    )?;
    if src.random_weights {
        eprintln!(
            "note: {}: the output is noise; this run measures speed only",
            src.label
        );
        if args.model.is_none() && args.checkpoint.is_none() {
            if let Some(ck) = find_checkpoint(Path::new("runs")) {
                eprintln!(
                    "hint: a trained checkpoint exists; try --checkpoint {}",
                    ck.display()
                );
            }
        }
    }
    let opts = GenOptions {
        max_new_tokens: args.max_new_tokens,
        kv_cache: args.kv_cache,
        sampler,
        eos: if args.ignore_eos {
            Vec::new()
        } else {
            src.eos.clone()
        },
        seed: args.seed,
    };
    let text_mode = args.format == Format::Text;
    let mut out = std::io::stdout().lock();
    let shown = src.decode(&prompt).unwrap_or_else(|| join_ids(&prompt));
    if text_mode {
        // A closed stdout (e.g. `| head`) must not stop the measurement: write errors are
        // ignored in text mode.
        let _ = write!(out, "{shown}").and_then(|_| out.flush());
    }
    let mut utf8 = Utf8Stream::default();
    let prompts = vec![prompt.clone(); args.batch];
    let gen = generate(&src.model, &prompts, &opts, |step| {
        let Some(id) = step[0].filter(|_| text_mode) else {
            return;
        };
        let piece = match &src.tokenizer {
            Some(_) if opts.eos.contains(&id) => String::new(),
            Some(tok) => utf8.push(&tok.decode_bytes(&[id as u32])),
            None => format!(" {id}"),
        };
        let _ = write!(out, "{piece}").and_then(|_| out.flush());
    })?;
    let cfg = &src.model.cfg;
    let settings = Settings {
        source: src.label.clone(),
        n_layer: cfg.n_layer,
        n_head: cfg.n_head,
        n_kv_heads: cfg.n_kv_heads,
        head_dim: cfg.head_dim(),
        block_size: cfg.block_size,
        dtype: format!("{:?}", cfg.dtype).to_lowercase(),
        dtype_bytes: cfg.dtype.bytes(),
        attention: format!("{:?}", cfg.attention).to_lowercase(),
        kv_cache: args.kv_cache,
        batch: args.batch,
        threads: tch::get_num_threads(),
        device: device_name(device),
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        max_new_tokens: args.max_new_tokens,
        eos: opts.eos.clone(),
    };
    let texts: Option<Vec<String>> = gen.ids.iter().map(|ids| src.decode(ids)).collect();
    let report = Report::new(&gen, texts.clone(), prompt, settings);
    if text_mode {
        let _ = writeln!(out, "{}", utf8.finish());
        for (i, ids) in gen.ids.iter().enumerate().skip(1) {
            let body = match &texts {
                Some(t) => t[i].clone(),
                None => format!(" {}", join_ids(ids)),
            };
            let _ = writeln!(out, "--- sequence {i} ---\n{shown}{body}");
        }
        eprint!("{}", report.text());
    } else {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    }
    Ok(())
}

fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" ")
}
