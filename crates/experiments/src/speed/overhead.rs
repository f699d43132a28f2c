//! `results/speed/overhead/` (issue #16): the per-token overhead of a tiny model's decode
//! (stories260K, the llama2.c model, greedy from BOS, one and two threads) and what the
//! chunked cross-entropy (`model::loss`) and the flat AdamW (`optim::Layout`) do to a
//! training step with GPT-2's vocabulary.
//! Variants are interleaved in one process, so a busy machine slows them alike.
use anyhow::{Context, Result};
use infer::{GenOptions, Sampler};
use model::{Gpt, ModelConfig, RunSettings};
use runtime::DType;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// Issue #16's decode target: what llama2.c's `run.c` (-O3, one thread) reaches on this
/// machine kind, as the issue measured it (2,343–2,559 tok/s).
pub const TINY_TARGET_TOK_S: f64 = 2400.0;
/// Tokens generated per stories260K run (greedy from BOS, as the comparison).
pub const TINY_TOKENS: usize = 500;

#[derive(Debug, Clone, Serialize)]
pub struct DecodeRow {
    pub model: String,
    pub dtype: String,
    pub threads: i32,
    pub runs: usize,
    pub tokens: usize,
    pub tok_s_min: f64,
    pub tok_s_median: f64,
    pub tok_s_max: f64,
    pub us_per_token_median: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct StepRow {
    pub preset: String,
    pub dtype: String,
    pub variant: String,
    pub repeats: usize,
    pub ms_per_step_median: f64,
    pub ms_per_step_min: f64,
    pub ms_per_step_max: f64,
    /// AdamW step + zero_grad alone.
    pub adamw_ms_median: f64,
    pub tokens_per_sec: f64,
}

pub(crate) fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// stories260K greedy decode for each (dtype, threads) in `variants`, `runs` runs each
/// (after one warm-up run each), interleaved; each dtype's model loaded as `infer` loads it
/// (`infer::source::load`: bf16 weights cast once).
pub fn tiny_decode(dir: &Path, variants: &[(DType, i32)], runs: usize) -> Result<Vec<DecodeRow>> {
    let mut models = Vec::new();
    for &(dtype, _) in variants {
        if !models.iter().any(|(d, _)| *d == dtype) {
            let spec = infer::source::SourceSpec {
                dtype,
                ..infer::source::SourceSpec::model(dir)
            };
            let src =
                infer::source::load(&spec).with_context(|| format!("loading {}", dir.display()))?;
            models.push((dtype, src));
        }
    }
    let opts = GenOptions {
        max_new_tokens: TINY_TOKENS,
        kv_cache: true,
        sampler: Sampler::greedy(),
        eos: Vec::new(),
        seed: 0,
    };
    let mut tok_s = vec![Vec::new(); variants.len()];
    for r in 0..=runs {
        for (i, &(dtype, t)) in variants.iter().enumerate() {
            tch::set_num_threads(t);
            let src = &models
                .iter()
                .find(|(d, _)| *d == dtype)
                .expect("loaded above")
                .1;
            let g = infer::generate(&src.model, &[vec![1]], &opts, |_| {})?;
            if r > 0 {
                tok_s[i].push(g.decode_steps as f64 / g.decode_s);
            }
        }
    }
    Ok(variants
        .iter()
        .zip(tok_s)
        .map(|(&(dtype, t), v)| {
            let (min, median, max) = stats(v);
            DecodeRow {
                model: "stories260K".into(),
                dtype: dtype.name().into(),
                threads: t,
                runs,
                tokens: TINY_TOKENS,
                tok_s_min: min,
                tok_s_median: median,
                tok_s_max: max,
                us_per_token_median: 1e6 / median,
            }
        })
        .collect())
}

/// How a training-step variant computes its loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossPath {
    /// libtorch's log-softmax + NLL over the full logits (`Gpt::loss`).
    Plain,
    /// `model::loss::chunked_cross_entropy`: blocks of rows, the logits never whole.
    Chunked,
    /// `model::loss::fused_cross_entropy`: the logits become their gradient in one pass
    /// (what `Gpt::train_loss` uses at this size where the CPU kernel applies).
    Fused,
}

/// The training-step variants compared, in order: the loss and the optimizer layout.
pub const STEP_VARIANTS: [(&str, LossPath, optim::Layout); 4] = [
    (
        "plain CE, per-tensor AdamW",
        LossPath::Plain,
        optim::Layout::PerTensor,
    ),
    ("plain CE, flat AdamW", LossPath::Plain, optim::Layout::Flat),
    (
        "chunked CE, flat AdamW",
        LossPath::Chunked,
        optim::Layout::Flat,
    ),
    ("fused CE, flat AdamW", LossPath::Fused, optim::Layout::Flat),
];

/// One training step (forward + backward + clip + AdamW + zero_grad) of `gpt2_speed_cpu`
/// at batch 8 × 256 in each of [`STEP_VARIANTS`] (a model each, same init), `repeats` times
/// after a warm-up, interleaved.
pub fn train_step(dtype: DType, repeats: usize) -> Result<Vec<StepRow>> {
    let cfg = ModelConfig::gpt2_speed_cpu();
    let (b, t) = (8i64, 256i64);
    let run = RunSettings::default().with_dtype(dtype);
    // The fused loss needs its CPU kernel (AVX2 at least); without it that variant is left out.
    let variants: Vec<_> = STEP_VARIANTS
        .iter()
        .filter(|v| v.1 != LossPath::Fused || runtime::xent::level().is_some())
        .collect();
    let mut models = Vec::new();
    for &&(_, _, layout) in &variants {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Gpt::new(&vs.root(), &cfg, &run)?;
        let groups = optim::groups_by_dim(&vs, 0.1);
        let opt = optim::AdamW::with_layout(groups, optim::AdamWConfig::default(), layout);
        let params: Vec<Tensor> = vs.trainable_variables();
        models.push((vs, m, opt, params));
    }
    let ids = || Tensor::randint(cfg.vocab_size as i64, [b, t], (Kind::Int64, Device::Cpu));
    let mut times = vec![(Vec::new(), Vec::new()); variants.len()];
    for r in 0..=repeats {
        let (x, y) = (ids(), ids());
        for (i, (_, m, opt, params)) in models.iter_mut().enumerate() {
            let t0 = Instant::now();
            let head =
                |f: fn(&Tensor, &Tensor, &Tensor, Kind) -> Option<Tensor>| -> Result<Tensor> {
                    let h = m.hidden(&x, 0, None, true)?;
                    let c = h.size()[2];
                    let h = h.reshape([-1, c]);
                    f(&h, &m.wte, &y.view([-1]), dtype.kind())
                        .context("the fused cross-entropy kernel does not run on this CPU")
                };
            let loss = match variants[i].1 {
                LossPath::Plain => m.loss(&x, &y, true)?,
                LossPath::Chunked => {
                    head(|h, w, y, k| Some(model::loss::chunked_cross_entropy(h, w, y, k)))?
                }
                LossPath::Fused => head(model::loss::fused_cross_entropy)?,
            };
            loss.backward();
            optim::clip_grad_norm(params, 1.0);
            let t1 = Instant::now();
            opt.step(1e-4);
            opt.zero_grad();
            let (step, adamw) = (t0.elapsed(), t1.elapsed());
            if r > 0 {
                times[i].0.push(step.as_secs_f64() * 1e3);
                times[i].1.push(adamw.as_secs_f64() * 1e3);
            }
        }
    }
    Ok(variants
        .into_iter()
        .zip(times)
        .map(|(&(name, _, _), (step, adamw))| {
            let (min, median, max) = stats(step);
            StepRow {
                preset: "gpt2_speed_cpu".into(),
                dtype: dtype.to_string(),
                variant: name.to_string(),
                repeats,
                ms_per_step_median: median,
                ms_per_step_min: min,
                ms_per_step_max: max,
                adamw_ms_median: stats(adamw).1,
                tokens_per_sec: (b * t) as f64 / (median / 1e3),
            }
        })
        .collect())
}

/// Writes `decode.csv`, `train_step.csv`, `decode_kernels.csv` and `README.md` into `dir`.
pub fn write(
    dir: &Path,
    command: &str,
    decode: &[DecodeRow],
    head: &[StepRow],
    kernels: &[super::kernels::KernelRow],
) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::csvio::write_rows(&dir.join("decode.csv"), decode)?;
    if !kernels.is_empty() {
        crate::csvio::write_rows(&dir.join("decode_kernels.csv"), kernels)?;
    }
    if !head.is_empty() {
        crate::csvio::write_rows(&dir.join("train_step.csv"), head)?;
    }
    let _ = std::fs::remove_file(dir.join("train_head.csv")); // before issue #16's flat AdamW
    let mut md = markdown(command, decode, head);
    if !kernels.is_empty() {
        md.push('\n');
        md.push_str(&super::kernels::markdown(kernels));
    }
    runtime::fsio::write_atomic(&dir.join("README.md"), |tmp| Ok(std::fs::write(tmp, md)?))
}

fn markdown(command: &str, decode: &[DecodeRow], head: &[StepRow]) -> String {
    let mut s = String::new();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(
        s,
        "# Per-token overhead and the chunked loss (generated by `speed_overhead`)\n"
    );
    let _ = writeln!(
        s,
        "Command: `{command}` · git {} · {} · machine: {} · load average at the end: {}\n",
        runtime::facts::git_rev(),
        runtime::facts::timestamp_utc(),
        crate::sys::cpu_name(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    let _ = writeln!(
        s,
        "## stories260K decode (KV cache, greedy {TINY_TOKENS} tokens from BOS)\n"
    );
    let _ = writeln!(s, "| dtype | threads | runs | tok/s median (min–max) | µs/token | target ≥ {TINY_TARGET_TOK_S:.0} tok/s |");
    let _ = writeln!(s, "|---|---:|---:|---|---:|---|");
    for r in decode {
        let verdict = if r.dtype != DType::Fp32.name() {
            "— (not `auto`'s choice here)".to_string()
        } else if r.tok_s_median >= TINY_TARGET_TOK_S {
            "met".to_string()
        } else {
            format!(
                "missed by {:.0} %",
                100.0 * (1.0 - r.tok_s_median / TINY_TARGET_TOK_S)
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.0} ({:.0}–{:.0}) | {:.0} | {verdict} |",
            r.dtype,
            r.threads,
            r.runs,
            r.tok_s_median,
            r.tok_s_min,
            r.tok_s_max,
            r.us_per_token_median
        );
    }
    let _ = writeln!(
        s,
        "\nThe target is llama2.c `run.c`'s speed on this machine kind as issue #16 measured it. A decode step of this model is a few hundred small libtorch ops, each costing more in dispatch than in arithmetic, so the step runs under `c10::InferenceMode` (`runtime::InferenceMode`), with no dtype casts, dropout calls or host copies that do nothing, RoPE on q and k in one pass, and single-row matmuls through `mv`. `infer --threads 0` picks one thread for models under {} MB (`infer::limits::auto_threads`), and `--dtype auto` keeps fp32 for models under {} MB of fp32 weights even where bf16 is native (`infer::limits::auto_dtype`): the bf16 row, where there is one, is what it avoids. Where the time goes: `valgrind --tool=callgrind` on `cargo run --release -p infer --example tiny_overhead` (instruction counts do not depend on what else the machine runs).\n",
        infer::limits::ONE_THREAD_BELOW_BYTES >> 20,
        infer::limits::FP32_BELOW_BYTES >> 20
    );
    if !head.is_empty() {
        let _ = writeln!(
            s,
            "## One training step with GPT-2's vocabulary: the loss and the optimizer layout\n"
        );
        let _ = writeln!(s, "`gpt2_speed_cpu` (6 layers, 384 wide, vocab 50,304; 30 M parameters), batch 8 × 256 tokens: forward + backward + gradient clipping + AdamW + zero_grad, each variant on its own copy of the model, interleaved.\n");
        let _ = writeln!(s, "| dtype | variant | repeats | ms/step median (min–max) | of which AdamW ms | tokens/s | vs first row |");
        let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|");
        for group in head.chunk_by(|a, b| a.dtype == b.dtype) {
            let base = group[0].tokens_per_sec;
            for r in group {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} ({:.0}–{:.0}) | {:.0} | {:.0} | {:.2}× |",
                    r.dtype,
                    r.variant,
                    r.repeats,
                    r.ms_per_step_median,
                    r.ms_per_step_min,
                    r.ms_per_step_max,
                    r.adamw_ms_median,
                    r.tokens_per_sec,
                    r.tokens_per_sec / base
                );
            }
        }
        let _ = writeln!(s, "\nFlat AdamW (`optim::Layout::Flat`, the default): parameters, gradients and moments of one dtype live in four contiguous buffers, and the update runs PyTorch's single-tensor chain of ops over blocks of 2²⁰ elements that stay in cache, instead of ~10 kernels per parameter each streaming it through memory (bit-identical: `crates/optim/tests/flat.rs`). The chunked loss never holds the (2,048 × 50,304) logits, their f32 copy, log-softmax or gradient (412 MB each in f32), a block of 333 rows at a time (`model::loss`; tests: `crates/model/tests/loss.rs`); it saves memory, not time, so `Gpt::train_loss` uses it only above {} GiB of f32 logits (`model::loss::CHUNK_ABOVE_BYTES`). Below that it uses the fused loss where the CPU has AVX2 (`model::loss::fused_cross_entropy`, `runtime::xent`): one buffer of logits in the compute dtype, turned into its own gradient in one pass that reads and writes each row once with `exp` once per element, instead of libtorch's log-softmax + NLL and their backward (five or six passes over logits-sized buffers, `exp` twice, and in bf16 an f32 copy first); the fused rows are missing where the CPU has no kernel.", model::loss::CHUNK_ABOVE_BYTES >> 30);
    }
    s
}
