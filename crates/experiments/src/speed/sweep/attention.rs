//! Attention points: a training step (forward + backward + AdamW) or a prefill (`infer`'s
//! [`infer::Decoder::prefill`], the prompt in one forward) at sequence length T, with naive
//! attention (explicit B·H·T·T scores, Vaswani et al. 2017) or SDPA (the fused flash /
//! memory-efficient kernels, Dao et al. 2022), in one child process each.
use super::plan::Point;
use super::row::{Row, Status};
use super::Job;
use crate::speed::budget::Budget;
use crate::speed::Phase;
use anyhow::{Context, Result};
use model::{Gpt, ModelConfig, RunSettings};
use runtime::device::sync;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// Build the point's model: weights seeded, the point's kernel and dtype.
pub(super) fn build(
    job: &Job,
    cfg: &ModelConfig,
    device: Device,
) -> Result<(nn::VarStore, Gpt, RunSettings)> {
    let p = &job.point;
    let run = RunSettings::default()
        .with_kernel(p.variant.kernel())
        .with_dtype(p.dtype);
    tch::manual_seed(job.seed);
    let vs = nn::VarStore::new(device);
    let model = Gpt::new(&vs.root(), cfg, &run).context("building the model")?;
    Ok((vs, model, run))
}

/// Inference keeps no master weights: store them in the compute dtype (as `infer` does).
pub(super) fn cast_for_inference(vs: &nn::VarStore, run: &RunSettings) {
    if run.dtype.kind() != Kind::Float {
        for (_, mut v) in vs.variables() {
            v.set_data(&v.to_kind(run.dtype.kind()));
        }
    }
}

pub(super) fn budget(job: &Job, warmup: usize) -> Budget {
    Budget {
        warmup,
        repeats: job.repeats,
        min_repeats: 2,
        max_seconds: job.max_seconds,
    }
}

/// Measure one training or prefill point.
pub fn measure(job: &Job, cfg: &ModelConfig, device: Device) -> Result<Row> {
    let p: &Point = &job.point;
    let (b, t) = (p.batch, p.seq_len);
    let ids = || {
        Tensor::randint(
            cfg.vocab_size as i64,
            [b as i64, t as i64],
            (Kind::Int64, device),
        )
    }; // (B, T)
    let (vs, model, run) = build(job, cfg, device)?;
    let timed = match p.phase {
        Phase::Train => {
            let groups = optim::groups_by_dim(&vs, 0.1);
            let mut opt = optim::AdamW::new(
                groups,
                optim::AdamWConfig {
                    beta1: 0.9,
                    beta2: 0.95,
                    eps: 1e-8,
                },
            );
            budget(job, job.warmup).run(|| {
                let (x, y) = (ids(), ids());
                let t0 = Instant::now();
                let loss = model.train_loss(&x, &y, true)?.loss;
                loss.backward();
                opt.step(6e-4);
                opt.zero_grad();
                sync(device);
                Ok(t0.elapsed().as_secs_f64())
            })?
        }
        _ => {
            let _g = tch::no_grad_guard();
            cast_for_inference(&vs, &run);
            let mut dec = infer::Decoder::new(&model, b, t, true);
            let x = ids();
            budget(job, job.warmup).run(|| {
                let t0 = Instant::now();
                let _ = dec.prefill(&x)?; // (B, V)
                sync(device);
                Ok(t0.elapsed().as_secs_f64())
            })?
        }
    };
    let mut row = Row::blank(p, cfg, Status::Ok, String::new());
    row.set_rates(&timed, b * t, 1);
    Ok(row)
}
