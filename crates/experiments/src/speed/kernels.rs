//! GPT-2 124M batch-1 decode with the default single-row kernel (`mv` on row-major weights)
//! and with the kernels `model::gemv::tune_for_decode` picks on this machine, interleaved in
//! one process (issue #16: decode against the bandwidth roofline). Random weights of the
//! real shape; prompt 64 + 128 new tokens, greedy, KV cache; decode steps only.
use super::overhead::stats;
use anyhow::{ensure, Result};
use model::gemv::{force_for_decode, set_tuning, RowKernel};
use model::{Gpt, ModelConfig, RunSettings};
use runtime::DType;
use serde::Serialize;
use std::fmt::Write as _;
use tch::{nn, Device};

#[derive(Debug, Clone, Serialize)]
pub struct KernelRow {
    pub preset: String,
    pub dtype: String,
    pub kernels: String,
    pub runs: usize,
    pub tok_s_min: f64,
    pub tok_s_median: f64,
    pub tok_s_max: f64,
    /// Weight and KV bytes one step reads ÷ the step time, GB/s.
    pub effective_gb_s: f64,
    /// What tuning chose, per weight shape (empty for the default).
    pub choice: String,
}

/// `runs` timed generations per variant (after one warm-up each), interleaved.
pub fn decode_kernels(dtype: DType, runs: usize) -> Result<Vec<KernelRow>> {
    let cfg = ModelConfig::gpt2_124m();
    let (prompt_len, new) = (64usize, 128usize);
    let run = RunSettings::default().with_dtype(dtype);
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Gpt::new(&vs.root(), &cfg, &run)?;
    let _g = tch::no_grad_guard();
    for (_, mut v) in vs.variables() {
        v.set_data(&v.to_kind(dtype.kind())); // inference keeps no fp32 master weights
    }
    let weight_bytes: i64 = vs
        .variables()
        .values()
        .map(|v| v.numel() as i64 * v.kind().elt_size_in_bytes() as i64)
        .sum();
    let prompt = vec![(0..prompt_len as i64)
        .map(|t| (t * 104729) % cfg.vocab_size as i64)
        .collect::<Vec<i64>>()];
    let opts = infer::GenOptions {
        max_new_tokens: new + 1, // the first token comes from the prefill
        ..Default::default()
    };
    let mut times = [Vec::new(), Vec::new()];
    let mut choice = String::new();
    for r in 0..=runs {
        for (i, tuned) in [false, true].into_iter().enumerate() {
            set_tuning(tuned);
            if !tuned {
                force_for_decode(&m, RowKernel::MvRowMajor);
            }
            let g = infer::generate(&m, &prompt, &opts, |_| {})?;
            ensure!(g.decode_steps == new, "decode ran {} steps", g.decode_steps);
            if r > 0 {
                times[i].push(new as f64 / g.decode_s);
            }
            if tuned && choice.is_empty() {
                let t = model::gemv::tune_for_decode(&m); // cached: reports the choice
                choice = t
                    .iter()
                    .map(|t| {
                        let us = RowKernel::NAMES
                            .iter()
                            .zip(t.us)
                            .filter(|(_, u)| u.is_finite())
                            .map(|(n, u)| format!("{n} {u:.0}"))
                            .collect::<Vec<_>>()
                            .join(", ");
                        format!(
                            "{}×{} → {:?} (µs, cold cache: {us})",
                            t.out, t.inp, t.kernel
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
            }
        }
    }
    set_tuning(true);
    let kv_bytes = (cfg.n_layer * 2 * cfg.n_embd * (prompt_len + new / 2)) as f64
        * dtype.kind().elt_size_in_bytes() as f64;
    Ok(["default (mv, row-major)", "tuned"]
        .iter()
        .zip(times)
        .map(|(name, v)| {
            let (min, median, max) = stats(v);
            KernelRow {
                preset: "gpt2_124m".into(),
                dtype: dtype.to_string(),
                kernels: name.to_string(),
                runs,
                tok_s_min: min,
                tok_s_median: median,
                tok_s_max: max,
                effective_gb_s: (weight_bytes as f64 + kv_bytes) * median / 1e9,
                choice: if *name == "tuned" {
                    choice.clone()
                } else {
                    String::new()
                },
            }
        })
        .collect())
}

/// The README section for `rows`.
pub fn markdown(rows: &[KernelRow], bandwidth_gb_s: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## GPT-2 124M decode: default vs tuned single-row kernels\n"
    );
    let _ = writeln!(s, "Batch 1, prompt 64 + 128 new tokens (greedy, KV cache), random weights of the real shape, decode steps only; the two variants interleaved. \"Bytes/s\" is the weights and mean KV cache a step reads over its time, beside this machine's measured read bandwidth ({bandwidth_gb_s:.1} GB/s).\n");
    let _ = writeln!(s, "| dtype | kernels | runs | tok/s median (min–max) | bytes/s | of measured bandwidth | vs default |");
    let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|");
    for pair in rows.chunks(2) {
        let base = pair[0].tok_s_median;
        for r in pair {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} ({:.1}–{:.1}) | {:.1} GB/s | {:.0} % | {:.2}× |",
                r.dtype,
                r.kernels,
                r.runs,
                r.tok_s_median,
                r.tok_s_min,
                r.tok_s_max,
                r.effective_gb_s,
                100.0 * r.effective_gb_s / bandwidth_gb_s,
                r.tok_s_median / base
            );
        }
    }
    for r in rows.iter().filter(|r| !r.choice.is_empty()) {
        let _ = writeln!(
            s,
            "\nTuned choice ({}), per weight shape: {}.",
            r.dtype, r.choice
        );
    }
    let _ = writeln!(s, "\n`model::gemv` times `mv` and `mm`, on row- and column-major storage, and our streaming gemv (`runtime::gemv`, {}: wide loads, the next rows prefetched, one FMA per load, on libtorch's threads) for each weight shape of 1 MiB or more when the first decoder of a model is made, and keeps the fastest; which one wins depends on the CPU.", runtime::gemv::level().map_or("not available on this CPU".to_string(), |l| format!("{l} here")));
    s
}
