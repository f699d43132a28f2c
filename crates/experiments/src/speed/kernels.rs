//! GPT-2 124M batch-1 decode with the default single-row kernel (`mv` on row-major weights)
//! and with the kernels `model::gemv::tune_for_decode` picks on this machine, interleaved in
//! one process (issue #16: decode against the bandwidth roofline). Random weights of the
//! real shape; prompt 64 + 128 new tokens, greedy, KV cache; decode steps only.
use super::overhead::stats;
use anyhow::{ensure, Result};
use model::gemv::{force_for_decode, set_huge_pages, set_tuning, RowKernel};
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
    /// Read bandwidth measured right before each of this variant's runs (median), GB/s.
    pub bandwidth_gb_s: f64,
    /// What tuning chose, per weight shape (empty for the default).
    pub choice: String,
}

/// The three variants, in the order they run and are reported.
const VARIANTS: [&str; 3] = [
    "default (mv, row-major, 4 KiB pages)",
    "tuned, 4 KiB pages",
    "tuned, huge pages (decode's default)",
];

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
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    // The roofline's bandwidth, measured before every run: a shared VM's drifts.
    let probe = runtime::hardware::BandwidthProbe::new(Device::Cpu, 256 << 20);
    let mut rates = [Vec::new(), Vec::new(), Vec::new()];
    let mut choice = String::new();
    for r in 0..=runs {
        // Default (mv on libtorch's 4 KiB pages), tuned kernels on 4 KiB pages, tuned
        // kernels on huge pages (what decode does).
        for (i, (tuned, huge)) in [(false, false), (true, false), (true, true)]
            .into_iter()
            .enumerate()
        {
            set_tuning(tuned);
            set_huge_pages(huge);
            if !tuned {
                force_for_decode(&m, RowKernel::MvRowMajor);
            } else {
                model::gemv::tune_for_decode(&m); // the choice is cached: moves pages only
            }
            let rate = probe.median_rate(3);
            let g = infer::generate(&m, &prompt, &opts, |_| {})?;
            ensure!(g.decode_steps == new, "decode ran {} steps", g.decode_steps);
            if r > 0 {
                times[i].push(new as f64 / g.decode_s);
                rates[i].push(rate / 1e9);
            }
            if tuned && huge && choice.is_empty() {
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
    set_huge_pages(true);
    let kv_bytes = (cfg.n_layer * 2 * cfg.n_embd * (prompt_len + new / 2)) as f64
        * dtype.kind().elt_size_in_bytes() as f64;
    Ok([VARIANTS[0], VARIANTS[1], VARIANTS[2]]
        .iter()
        .zip(times.into_iter().zip(rates))
        .map(|(name, (v, bw))| {
            let (min, median, max) = stats(v);
            let bandwidth_gb_s = stats(bw).1;
            KernelRow {
                preset: "gpt2_124m".into(),
                dtype: dtype.to_string(),
                kernels: name.to_string(),
                runs,
                tok_s_min: min,
                tok_s_median: median,
                tok_s_max: max,
                effective_gb_s: (weight_bytes as f64 + kv_bytes) * median / 1e9,
                bandwidth_gb_s,
                choice: if *name == VARIANTS[2] {
                    choice.clone()
                } else {
                    String::new()
                },
            }
        })
        .collect())
}

/// The README section for `rows`.
pub fn markdown(rows: &[KernelRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## GPT-2 124M decode: default vs tuned single-row kernels\n"
    );
    let _ = writeln!(s, "Batch 1, prompt 64 + 128 new tokens (greedy, KV cache), random weights of the real shape, decode steps only; the three variants interleaved on one model: libtorch's `mv` on its own allocations (4 KiB pages), the kernels `model::gemv` chooses on the same pages, and those kernels with the weights in transparent huge pages (what `infer` does). \"Bytes/s\" is the weights and mean KV cache a step reads over its time, beside the read bandwidth measured right before each run (three sums over 256 MiB in huge pages, as the tuned weights are; the median over the variant's runs).\n");
    let _ = writeln!(s, "| dtype | kernels | runs | tok/s median (min–max) | bytes/s | measured bandwidth | of it | vs default |");
    let _ = writeln!(s, "|---|---|---:|---|---:|---:|---:|---:|");
    for pair in rows.chunks(VARIANTS.len()) {
        let base = pair[0].tok_s_median;
        for r in pair {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} ({:.1}–{:.1}) | {:.1} GB/s | {:.1} GB/s | {:.0} % | {:.2}× |",
                r.dtype,
                r.kernels,
                r.runs,
                r.tok_s_median,
                r.tok_s_min,
                r.tok_s_max,
                r.effective_gb_s,
                r.bandwidth_gb_s,
                100.0 * r.effective_gb_s / r.bandwidth_gb_s,
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
