//! Timing of the three phases on synthetic token ids: warm-up excluded, median of repeats.
use super::budget::{Budget, Timed};
use super::report::Row;
use super::{Phase, SpeedArgs};
use crate::rung::SpeedRung;
use anyhow::Result;
use model::accounting::{
    forward_flops_per_token, kv_cache_bytes_per_token, prefill_flops, train_flops_per_token,
};
use model::{Gpt, KvCache, ModelConfig, RunSettings};
use runtime::device::sync;
use runtime::hardware::MachineRecord;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// Median, min and max of per-repeat rates.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    pub fn of(xs: &[f64]) -> Stats {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        };
        Stats {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// Time `f` within `budget` (each run synchronised); the measured durations in seconds.
fn time_budgeted(
    budget: &Budget,
    device: Device,
    mut f: impl FnMut() -> Result<()>,
) -> Result<Timed> {
    budget.run(|| {
        let t = Instant::now();
        f()?;
        sync(device);
        Ok(t.elapsed().as_secs_f64())
    })
}

/// The workload of one rung's phases. Where the rung's dtype is emulated (bf16 on a CPU
/// without native bf16, 60–400× slower), it shrinks so the rung still finishes within its
/// budget: the rows are marked and say what was cut.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub train_batch: usize,
    pub new_tokens: usize,
    pub note: String,
}

impl Workload {
    pub fn for_rung(args: &SpeedArgs, emulated: bool) -> Workload {
        if emulated {
            let new_tokens = args.new_tokens.min(4);
            Workload {
                train_batch: 1,
                new_tokens,
                note: format!(
                    "bf16 emulated on this CPU: reduced workload (train batch 1, {new_tokens} new tokens)"
                ),
            }
        } else {
            Workload {
                train_batch: args.batch,
                new_tokens: args.new_tokens,
                note: String::new(),
            }
        }
    }
}

pub fn run_rung(
    rung: SpeedRung,
    cfg: &ModelConfig,
    run: &RunSettings,
    args: &SpeedArgs,
    device: Device,
    threads: usize,
    machine: &MachineRecord,
) -> Result<Vec<Row>> {
    let build = || -> Result<(nn::VarStore, Gpt)> {
        tch::manual_seed(args.seed);
        let vs = nn::VarStore::new(device);
        let model = Gpt::new(&vs.root(), cfg, run)?;
        Ok((vs, model))
    };
    let peak_flops = machine.flops(run.dtype.kind());
    let emulated = run.dtype.kind() == Kind::BFloat16 && !machine.native_bf16();
    let work = Workload::for_rung(args, emulated);
    let budget = |warmup: usize, repeats: usize| Budget {
        warmup,
        repeats,
        min_repeats: 2,
        max_seconds: args.max_seconds,
    };
    let ids = |b: usize, t: usize| {
        Tensor::randint(
            cfg.vocab_size as i64,
            [b as i64, t as i64],
            (Kind::Int64, device),
        )
    };
    let mut rows = Vec::new();
    let mut row = |phase: Phase,
                   batch: usize,
                   seq: usize,
                   new: usize,
                   timed: &Timed,
                   tokens: usize,
                   flops_per_token: f64,
                   kv_bytes: usize| {
        let rates: Vec<f64> = timed.secs.iter().map(|s| tokens as f64 / s).collect();
        let st = Stats::of(&rates);
        let steps = if new > 0 { new } else { 1 };
        rows.push(Row {
            rung,
            phase,
            dtype: run.dtype,
            attention: run.kernel,
            kv_cache: rung.kv_cache() && phase != Phase::Train,
            n_kv_heads: cfg.n_kv_heads,
            vocab_size: cfg.vocab_size,
            batch,
            seq_len: seq,
            new_tokens: new,
            tokens_per_sec: st.median,
            tokens_per_sec_min: st.min,
            tokens_per_sec_max: st.max,
            ms_per_step: 1e3 * tokens as f64 / st.median / steps as f64,
            mfu: flops_per_token * st.median / peak_flops,
            kv_cache_bytes: kv_bytes,
            peak_rss_bytes: runtime::mem::peak_rss_bytes().unwrap_or(0),
            threads,
            device: runtime::device::device_name(device),
            git_rev: runtime::facts::git_rev(),
            timestamp: runtime::facts::timestamp_utc(),
            repeats: timed.secs.len(),
            phase_s: timed.spent,
            budget_hit: timed.budget_hit,
            note: work.note.clone(),
            page_faults_per_run: timed.faults_per_run,
        });
    };
    let phases = |p: Phase| args.phases.contains(&p);

    let (vs, model) = build()?;
    let no_grad = tch::no_grad_guard();
    if run.dtype.kind() != Kind::Float {
        // Inference keeps no master weights: store them in the compute dtype, so no step
        // pays for casting every weight again (what `infer --dtype bf16` does too).
        for (_, mut v) in vs.variables() {
            v.set_data(&v.to_kind(run.dtype.kind()));
        }
    }
    let (b, p, new) = (args.infer_batch, args.prompt_len, work.new_tokens);
    let mut cache = rung
        .kv_cache()
        .then(|| KvCache::new(&model, b, p + new, device));
    // 2 · layers · n_kv_heads · head_dim · bytes · tokens, for the tokens held.
    let has_cache = cache.is_some();
    let kv_bytes = move |tokens: usize| {
        if has_cache {
            kv_cache_bytes_per_token(cfg, run.dtype.bytes()) * b * tokens
        } else {
            0
        }
    };
    if phases(Phase::Prefill) {
        let prompt = ids(b, p);
        let timed = time_budgeted(&budget(args.warmup, args.repeats), device, || {
            if let Some(c) = cache.as_mut() {
                c.reset();
            }
            let _ = model.forward_last(&prompt, 0, cache.as_mut())?;
            Ok(())
        })?;
        let bytes = kv_bytes(p);
        row(
            Phase::Prefill,
            b,
            p,
            0,
            &timed,
            b * p,
            prefill_flops(cfg, b, p) / (b * p) as f64,
            bytes,
        );
    }
    if phases(Phase::Decode) {
        // The decode loop users run: `infer::generate`, greedy, `new` decode steps after the
        // prefill (its first token comes from the prefill's logits). One warm-up generation,
        // then `decode_repeats` measured ones (within the budget).
        let prompt: Vec<Vec<i64>> = (0..b)
            .map(|i| {
                (0..p)
                    .map(|t| ((i * 7919 + t * 104729) % cfg.vocab_size) as i64)
                    .collect()
            })
            .collect();
        let opts = infer::GenOptions {
            max_new_tokens: new + 1,
            kv_cache: rung.kv_cache(),
            sampler: infer::Sampler::greedy(),
            eos: Vec::new(),
            seed: args.seed as u64,
        };
        let timed = budget(1, args.decode_repeats).run(|| {
            let g = infer::generate(&model, &prompt, &opts, |_| {})?;
            anyhow::ensure!(
                g.decode_steps == new,
                "decode ran {} steps, not {new}",
                g.decode_steps
            );
            Ok(g.decode_s)
        })?;
        let bytes = kv_bytes(p + new);
        row(
            Phase::Decode,
            b,
            p,
            new,
            &timed,
            b * new,
            forward_flops_per_token(cfg, p + new / 2),
            bytes,
        );
    }
    drop((no_grad, model, vs, cache));
    if phases(Phase::Train) {
        // Training last: its (larger) peak memory does not show in the inference rows.
        let (vs, model) = build()?;
        let groups = optim::groups_by_dim(&vs, 0.1);
        let mut opt = optim::AdamW::new(
            groups,
            optim::AdamWConfig {
                beta1: 0.9,
                beta2: 0.95,
                eps: 1e-8,
            },
        );
        let (b, t) = (work.train_batch, args.seq_len);
        let mut step = || -> Result<()> {
            let x = ids(b, t);
            let y = ids(b, t);
            let loss = model.train_loss(&x, &y, true)?.loss;
            loss.backward();
            opt.step(6e-4);
            opt.zero_grad();
            Ok(())
        };
        let timed = time_budgeted(&budget(args.warmup, args.repeats), device, &mut step)?;
        row(
            Phase::Train,
            b,
            t,
            0,
            &timed,
            b * t,
            train_flops_per_token(cfg, t),
            0,
        );
    }
    Ok(rows)
}
