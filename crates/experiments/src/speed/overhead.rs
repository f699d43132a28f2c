//! `results/speed/overhead/` (issue #16): the per-token overhead of a tiny model's decode
//! (stories260K, the llama2.c model, greedy from BOS, one and two threads) and what the
//! chunked cross-entropy (`model::loss`) does to a training step with GPT-2's vocabulary.
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
    pub threads: i32,
    pub runs: usize,
    pub tokens: usize,
    pub tok_s_min: f64,
    pub tok_s_median: f64,
    pub tok_s_max: f64,
    pub us_per_token_median: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct HeadRow {
    pub preset: String,
    pub dtype: String,
    pub loss: String,
    pub repeats: usize,
    pub ms_per_step_median: f64,
    pub ms_per_step_min: f64,
    pub ms_per_step_max: f64,
    pub tokens_per_sec: f64,
}

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

/// stories260K greedy decode at each thread count in `threads`, `runs` runs each (after
/// one warm-up run per count), interleaved.
pub fn tiny_decode(dir: &Path, threads: &[i32], runs: usize) -> Result<Vec<DecodeRow>> {
    let loaded = model::io::load(
        dir,
        &RunSettings::default().with_dtype(DType::Fp32),
        Device::Cpu,
    )
    .with_context(|| format!("loading {}", dir.display()))?;
    let opts = GenOptions {
        max_new_tokens: TINY_TOKENS,
        kv_cache: true,
        sampler: Sampler::greedy(),
        eos: Vec::new(),
        seed: 0,
    };
    let mut tok_s = vec![Vec::new(); threads.len()];
    for r in 0..=runs {
        for (i, &t) in threads.iter().enumerate() {
            tch::set_num_threads(t);
            let g = infer::generate(&loaded.model, &[vec![1]], &opts, |_| {})?;
            if r > 0 {
                tok_s[i].push(g.decode_steps as f64 / g.decode_s);
            }
        }
    }
    Ok(threads
        .iter()
        .zip(tok_s)
        .map(|(&t, v)| {
            let (min, median, max) = stats(v);
            DecodeRow {
                model: "stories260K".into(),
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

/// One training step (forward + backward) of `gpt2_speed_cpu` at batch 8 × 256 with the
/// plain and the chunked cross-entropy, `repeats` times each after a warm-up, interleaved.
pub fn head_loss(dtype: DType, repeats: usize) -> Result<Vec<HeadRow>> {
    let cfg = ModelConfig::gpt2_speed_cpu();
    let (b, t) = (8i64, 256i64);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Gpt::new(&vs.root(), &cfg, &RunSettings::default().with_dtype(dtype))?;
    let ids = || Tensor::randint(cfg.vocab_size as i64, [b, t], (Kind::Int64, Device::Cpu));
    let mut times = [Vec::new(), Vec::new()];
    for r in 0..=repeats {
        for (i, chunked) in [false, true].into_iter().enumerate() {
            let (x, y) = (ids(), ids());
            let t0 = Instant::now();
            let loss = match chunked {
                true => m.train_loss(&x, &y, true)?.loss,
                false => m.loss(&x, &y, true)?,
            };
            loss.backward();
            let s = t0.elapsed().as_secs_f64();
            for (_, v) in vs.variables() {
                let _ = v.grad().zero_();
            }
            if r > 0 {
                times[i].push(s * 1e3);
            }
        }
    }
    Ok(["plain (full logits)", "chunked"]
        .iter()
        .zip(times)
        .map(|(name, v)| {
            let (min, median, max) = stats(v);
            HeadRow {
                preset: "gpt2_speed_cpu".into(),
                dtype: dtype.to_string(),
                loss: name.to_string(),
                repeats,
                ms_per_step_median: median,
                ms_per_step_min: min,
                ms_per_step_max: max,
                tokens_per_sec: (b * t) as f64 / (median / 1e3),
            }
        })
        .collect())
}

/// Writes `decode.csv`, `train_head.csv` and `README.md` into `dir`.
pub fn write(dir: &Path, command: &str, decode: &[DecodeRow], head: &[HeadRow]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    crate::csvio::write_rows(&dir.join("decode.csv"), decode)?;
    crate::csvio::write_rows(&dir.join("train_head.csv"), head)?;
    let md = markdown(command, decode, head);
    runtime::fsio::write_atomic(&dir.join("README.md"), |tmp| Ok(std::fs::write(tmp, md)?))
}

fn markdown(command: &str, decode: &[DecodeRow], head: &[HeadRow]) -> String {
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
        "## stories260K decode (fp32, KV cache, greedy {TINY_TOKENS} tokens from BOS)\n"
    );
    let _ = writeln!(s, "| threads | runs | tok/s median (min–max) | µs/token | target ≥ {TINY_TARGET_TOK_S:.0} tok/s |");
    let _ = writeln!(s, "|---:|---:|---|---:|---|");
    for r in decode {
        let verdict = if r.tok_s_median >= TINY_TARGET_TOK_S {
            "met".to_string()
        } else {
            format!(
                "missed by {:.0} %",
                100.0 * (1.0 - r.tok_s_median / TINY_TARGET_TOK_S)
            )
        };
        let _ = writeln!(
            s,
            "| {} | {} | {:.0} ({:.0}–{:.0}) | {:.0} | {verdict} |",
            r.threads, r.runs, r.tok_s_median, r.tok_s_min, r.tok_s_max, r.us_per_token_median
        );
    }
    let _ = writeln!(
        s,
        "\nThe target is llama2.c `run.c`'s speed on this machine kind as issue #16 measured it. A decode step of this model is a few hundred small libtorch ops, each costing more in dispatch than in arithmetic, so the step runs under `c10::InferenceMode` (`runtime::InferenceMode`), with no dtype casts, dropout calls or host copies that do nothing, RoPE on q and k in one pass, and single-row matmuls through `mv`. `infer --threads 0` picks one thread for models under {} MB (`infer::limits::auto_threads`). Where the time goes: `valgrind --tool=callgrind` on `cargo run --release -p infer --example tiny_overhead` (instruction counts do not depend on what else the machine runs).\n",
        infer::limits::ONE_THREAD_BELOW_BYTES >> 20
    );
    if !head.is_empty() {
        let _ = writeln!(
            s,
            "## One training step with GPT-2's vocabulary: plain vs chunked cross-entropy\n"
        );
        let _ = writeln!(s, "`gpt2_speed_cpu` (vocab 50,304), batch 8 × 256 tokens, forward + backward (no optimizer step).\n");
        let _ = writeln!(
            s,
            "| dtype | loss | repeats | ms/step median (min–max) | tokens/s |"
        );
        let _ = writeln!(s, "|---|---|---:|---|---:|");
        for r in head {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.0} ({:.0}–{:.0}) | {:.0} |",
                r.dtype,
                r.loss,
                r.repeats,
                r.ms_per_step_median,
                r.ms_per_step_min,
                r.ms_per_step_max,
                r.tokens_per_sec
            );
        }
        for pair in head.chunks(2) {
            if let [plain, chunked] = pair {
                let _ = writeln!(
                    s,
                    "\n{}: chunked / plain = {:.2}× the tokens/s.",
                    plain.dtype,
                    chunked.tokens_per_sec / plain.tokens_per_sec
                );
            }
        }
        let _ = writeln!(s, "\nThe chunked loss never holds the (2,048 × 50,304) logits, their f32 copy, log-softmax or gradient (412 MB each in f32): a block of 333 rows at a time, with the same three matmuls autograd would run (`model::loss`; tests: `crates/model/tests/loss.rs`). Training (`Gpt::train_loss`) and the speed ladder's train phase use it.");
    }
    s
}
