//! `cargo run -p infer -- --kv-cache --gqa 4`: generate text and measure prefill and decode.
use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Parser, ValueEnum};
use infer::source::{self, SourceSpec};
use infer::stream::Utf8Stream;
use infer::{GenOptions, Sampler};
use model::{Attention, DType};
use std::io::Write;
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Parser, Debug)]
#[command(
    name = "infer",
    about = "Generate with a GPT-2 / Llama-style model: prefill the prompt, then decode token by token, with or without a KV cache; report time to first token, prefill and decode tokens/sec, KV-cache bytes and peak memory.",
    after_help = "Examples:\n  infer --kv-cache --gqa 4                      random GPT-2-small-shaped model, GQA with 4 KV heads\n  infer --model ../shared/models/stories260K --prompt-ids 1 --temperature 0 --kv-cache\n  infer --checkpoint runs/shakespeare_char_cpu/ckpt --prompt 'ROMEO:' --max-new-tokens 200\n  infer --plan --memory-gb 16 --gqa 4           how many context tokens fit in 16 GB"
)]
#[command(group(ArgGroup::new("source").args(["model", "checkpoint", "preset"])))]
#[command(group(ArgGroup::new("input").args(["prompt", "prompt_ids"])))]
struct Args {
    /// A Hugging Face GPT-2 or Llama folder (config.json + model.safetensors).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// A checkpoint folder written by `just train` (<run.out_dir>/ckpt).
    #[arg(long, value_name = "DIR")]
    checkpoint: Option<PathBuf>,
    /// A preset with random weights (default: gpt2_124m, GPT-2 small's shape): gpt2_124m,
    /// gpt2_small_cpu, gpt2_speed_cpu, gpt2_tiny, llama3_style, llama_tiny.
    #[arg(long, value_name = "NAME")]
    preset: Option<String>,
    /// The prompt, tokenised with the model's tokenizer (GPT-2 BPE, or a checkpoint's characters).
    #[arg(long, value_name = "TEXT")]
    prompt: Option<String>,
    /// The prompt as token ids, for models without a tokenizer: --prompt-ids 1,2,3.
    #[arg(long, value_name = "IDS")]
    prompt_ids: Option<String>,
    /// Tokens to generate after the prompt.
    #[arg(long, default_value_t = 64)]
    max_new_tokens: usize,
    /// Use the pre-allocated KV cache (without it every step recomputes the whole context).
    #[arg(long)]
    kv_cache: bool,
    /// Key/value heads (GQA-G; 1 = MQA; must divide n_head). Presets only: a loaded model's is fixed.
    #[arg(long, value_name = "G")]
    gqa: Option<usize>,
    /// Attention kernel: naive (explicit mask) or sdpa (scaled_dot_product_attention).
    #[arg(long, default_value = "sdpa")]
    attention: Attention,
    /// Weights and compute precision: fp32 (exact) or bf16 (faster on AMX CPUs and GPUs).
    #[arg(long, default_value = "fp32")]
    dtype: DType,
    /// Intra-op threads (0 = libtorch's default: all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Sequences generated at once (copies of the prompt), for throughput.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f64,
    /// Sample among the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 200)]
    top_k: usize,
    /// Nucleus sampling: the smallest set of tokens with probability ≥ p (1 = all).
    #[arg(long, default_value_t = 1.0)]
    top_p: f64,
    /// Seed for random weights and sampling.
    #[arg(long, default_value_t = 1337)]
    seed: i64,
    /// cpu, cuda or auto (a GPU when libtorch sees one).
    #[arg(long, default_value = "auto")]
    device: String,
    /// text: stream the output and print a report on stderr; json: one JSON object on stdout.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Print the memory plan (weights, KV bytes per token, tokens that fit) instead of generating.
    #[arg(long)]
    plan: bool,
    /// Memory budget for --plan, in GB.
    #[arg(long, default_value_t = 16.0)]
    memory_gb: f64,
}

fn parse_ids(s: &str) -> Result<Vec<i64>> {
    s.split(',')
        .filter(|t| !t.trim().is_empty())
        .map(|t| {
            t.trim().parse::<i64>().with_context(|| {
                format!("--prompt-ids: '{t}' is not a token id (expected e.g. 1,2,3)")
            })
        })
        .collect()
}

fn device(s: &str) -> Result<tch::Device> {
    match s {
        "auto" => Ok(tch::Device::cuda_if_available()),
        "cpu" => Ok(tch::Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(tch::Device::Cuda(0)),
        "cuda" => bail!("--device cuda: libtorch sees no CUDA device"),
        o => bail!("--device '{o}': expected cpu, cuda or auto"),
    }
}

fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn checkpoint_hint() {
    let Ok(rd) = std::fs::read_dir("runs") else {
        return;
    };
    if let Some(ck) = rd
        .flatten()
        .map(|e| e.path().join("ckpt"))
        .find(|p| p.join("config.json").exists())
    {
        eprintln!(
            "hint: a trained checkpoint exists; try --checkpoint {}",
            ck.display()
        );
    }
}

fn main() -> Result<()> {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let args = Args::parse();
    let dev = device(&args.device)?;
    if args.threads > 0 {
        tch::set_num_threads(args.threads as i32);
    }
    let spec = SourceSpec {
        model: args.model.clone(),
        checkpoint: args.checkpoint.clone(),
        preset: args.preset.clone(),
        gqa: args.gqa,
        attention: args.attention,
        dtype: args.dtype,
        device: dev,
        seed: args.seed,
    };
    if args.plan {
        let cfg = match (&args.model, &args.checkpoint) {
            (Some(d), _) | (None, Some(d)) => model::io::read_config(d)?.1,
            _ => {
                let mut c = model::ModelConfig::preset(
                    args.preset.as_deref().unwrap_or(source::DEFAULT_PRESET),
                )
                .map_err(|e| anyhow::anyhow!("--preset: {e}"))?;
                if let Some(g) = args.gqa {
                    anyhow::ensure!(
                        g > 0 && c.n_head.is_multiple_of(g),
                        "--gqa {g}: must divide n_head = {}",
                        c.n_head
                    );
                    c.n_kv_heads = g;
                }
                c
            }
        };
        anyhow::ensure!(args.memory_gb > 0.0, "--memory-gb must be positive");
        let (rows, text) = infer::plan::plan_table(&cfg, args.dtype.bytes(), args.memory_gb);
        match args.format {
            Format::Text => print!("{text}"),
            Format::Json => println!(
                "{}",
                serde_json::json!({"memory_gb": args.memory_gb, "dtype": format!("{:?}", args.dtype).to_lowercase(), "rows": rows})
            ),
        }
        return Ok(());
    }
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.top_p) || args.top_p == 0.0 {
        bail!("--top-p must be in (0, 1], got {}", args.top_p);
    }
    let src = source::load(&spec)?;
    if src.random_weights && args.format == Format::Text {
        eprintln!(
            "note: {} — the text is noise; this run measures speed only",
            src.label
        );
        if args.checkpoint.is_none() {
            checkpoint_hint();
        }
    }
    let prompt: Vec<i64> = match (&args.prompt, &args.prompt_ids, &src.tokenizer) {
        (Some(_), _, None) => bail!(
            "--prompt: this model has no tokenizer ({}); give token ids with --prompt-ids",
            src.label
        ),
        (Some(t), _, Some(tok)) => tok
            .encode(t)
            .context("--prompt")?
            .into_iter()
            .map(i64::from)
            .collect(),
        (None, Some(ids), _) => parse_ids(ids)?,
        (None, None, Some(tok)) if tok.name() == "gpt2" => tok
            .encode("Hello, I'm a language model,")?
            .into_iter()
            .map(i64::from)
            .collect(),
        (None, None, Some(tok)) => tok.encode("\n")?.into_iter().map(i64::from).collect(),
        (None, None, None) => vec![src.bos.unwrap_or(0)],
    };
    if prompt.is_empty() {
        bail!("empty prompt: give --prompt TEXT or --prompt-ids with at least one token");
    }
    let vocab = src.model.cfg.vocab_size as i64;
    if let Some(bad) = prompt.iter().find(|&&i| i < 0 || i >= vocab) {
        bail!("--prompt-ids: id {bad} is outside the vocabulary (0..{vocab})");
    }
    let cfg = src.model.cfg.clone();
    let opts = GenOptions {
        max_new_tokens: args.max_new_tokens,
        kv_cache: args.kv_cache,
        sampler: Sampler {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
        },
        eos: src.eos,
        seed: Some(args.seed),
    };
    let prompts = vec![prompt.clone(); args.batch];
    let text_mode = args.format == Format::Text;
    let mut stream = Utf8Stream::default();
    let mut stdout = std::io::stdout().lock();
    if text_mode {
        if let Some(tok) = &src.tokenizer {
            let p: Vec<u32> = prompt.iter().map(|&i| i as u32).collect();
            write!(stdout, "{}", tok.decode(&p))?;
        } else {
            write!(
                stdout,
                "{}",
                prompt
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            )?;
        }
        stdout.flush()?;
    }
    let gen = infer::generate(&src.model, &prompts, &opts, dev, |step| {
        if !text_mode {
            return;
        }
        let id = step[0];
        let s = match &src.tokenizer {
            Some(tok) => stream.push(&tok.decode_bytes(&[id as u32])),
            None => format!(" {id}"),
        };
        let _ = write!(stdout, "{s}");
        let _ = stdout.flush();
    })?;
    let text: Option<String> = src
        .tokenizer
        .as_ref()
        .map(|tok| tok.decode(&gen.ids[0].iter().map(|&i| i as u32).collect::<Vec<_>>()));
    let dtype = format!("{:?}", cfg.dtype).to_lowercase();
    let attention = format!("{:?}", cfg.attention).to_lowercase();
    let threads = tch::get_num_threads();
    if text_mode {
        writeln!(stdout, "{}", stream.finish())?;
        for (i, ids) in gen.ids.iter().enumerate().skip(1) {
            let body = match &src.tokenizer {
                Some(tok) => tok.decode(&ids.iter().map(|&i| i as u32).collect::<Vec<_>>()),
                None => ids.iter().map(i64::to_string).collect::<Vec<_>>().join(" "),
            };
            writeln!(stdout, "--- sequence {i} ---\n{body}")?;
        }
        let tokens = gen.prompt_tokens + gen.decode_steps;
        eprintln!(
            "\n--- {} new tokens × {} sequence(s) | {} | {dtype}, {attention}, KV cache {}, n_kv_heads {}/{} | {} thread(s), {:?}",
            gen.ids[0].len(), gen.batch, src.label, if args.kv_cache { "on" } else { "off" }, cfg.n_kv_heads, cfg.n_head, threads, dev
        );
        eprintln!("time to first token  {:>10.1} ms", gen.ttft_s * 1e3);
        eprintln!(
            "prefill              {:>10.1} tokens/s ({} prompt tokens)",
            gen.prefill_tokens_per_sec(),
            gen.prompt_tokens
        );
        eprintln!(
            "decode               {:>10.1} tokens/s ({} steps)",
            gen.decode_tokens_per_sec(),
            gen.decode_steps
        );
        if args.kv_cache {
            eprintln!(
                "KV cache             {:>10.2} MB (2 · {} layers · {} KV heads · {} dims · {} bytes · {} tokens{})",
                gen.kv_cache_bytes as f64 / 1e6, cfg.n_layer, cfg.n_kv_heads, cfg.head_dim(), cfg.dtype.bytes(), tokens,
                if gen.batch > 1 { format!(" · {} sequences", gen.batch) } else { String::new() }
            );
        } else {
            eprintln!("KV cache                    off (every step recomputes the context)");
        }
        eprintln!(
            "peak memory          {:>10.1} MB (peak RSS)",
            peak_rss_bytes() as f64 / 1e6
        );
    } else {
        let v = serde_json::json!({
            "ids": gen.ids, "text": text, "prompt_ids": prompt,
            "prefill_tokens_per_sec": gen.prefill_tokens_per_sec(), "decode_tokens_per_sec": gen.decode_tokens_per_sec(),
            "ttft_ms": gen.ttft_s * 1e3, "kv_cache_bytes": gen.kv_cache_bytes, "peak_rss_bytes": peak_rss_bytes(),
            "settings": {
                "source": src.label, "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_kv_heads": cfg.n_kv_heads,
                "dtype": dtype, "attention": attention, "kv_cache": args.kv_cache, "batch": args.batch, "threads": threads,
                "device": format!("{dev:?}").to_lowercase(), "temperature": args.temperature, "top_k": args.top_k,
                "top_p": args.top_p, "seed": args.seed, "max_new_tokens": args.max_new_tokens,
            }
        });
        writeln!(stdout, "{v}")?;
    }
    Ok(())
}
