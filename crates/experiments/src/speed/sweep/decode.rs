//! Decode points: `infer`'s own decode loop ([`infer::decode`], greedy, the KV cache of
//! Pope et al. 2022) after `context` cached positions, for MHA, GQA-4 and MQA (Ainslie et
//! al. 2023; Shazeer 2019), batch B. The cache is marked filled instead of prefilled — a
//! step reads the same bytes whatever they hold — so a point at context 8192 × batch 32
//! costs its decode steps, not a 262k-token prefill. The real-size point runs the whole of
//! [`infer::generate`] (prefill included; only its decode steps are timed). Before every
//! timed repeat the point measures the read bandwidth (`runtime::hardware::BandwidthProbe`),
//! and its roofline uses their median.
use super::attention::{budget, build, cast_for_inference};
use super::row::{Row, Section, Status};
use super::Job;
use anyhow::{ensure, Result};
use model::ModelConfig;
use runtime::Rng;
use tch::Device;

fn options(new_tokens: usize, seed: i64) -> infer::GenOptions {
    infer::GenOptions {
        // The first token comes from the prefill's logits: `new` decode steps make `new + 1`.
        max_new_tokens: new_tokens + 1,
        kv_cache: true,
        sampler: infer::Sampler::greedy(),
        eos: Vec::new(),
        seed: seed as u64,
    }
}

/// Measure one decode (or real-size) point.
pub fn measure(job: &Job, cfg: &ModelConfig, device: Device) -> Result<Row> {
    let p = &job.point;
    let (b, ctx, new) = (p.batch, p.seq_len, p.new_tokens);
    let (vs, model, run) = build(job, cfg, device)?;
    let _g = tch::no_grad_guard();
    cast_for_inference(&vs, &run);
    let opts = options(new, job.seed);
    let mut kv_bytes = 0;
    // The roofline's bandwidth, measured right before every repeat (the VM's drifts).
    let probe = runtime::hardware::BandwidthProbe::new(device, bandwidth_bytes(device));
    let mut rates = Vec::new();
    let timed = if p.section == Section::RealSize {
        let prompt: Vec<Vec<i64>> = (0..b)
            .map(|i| {
                (0..ctx)
                    .map(|t| ((i * 7919 + t * 104729) % cfg.vocab_size) as i64)
                    .collect()
            })
            .collect();
        budget(job, 1).run(|| {
            rates.push(probe.median_rate(3));
            let g = infer::generate(&model, &prompt, &opts, |_| {})?;
            ensure!(
                g.decode_steps == new,
                "decode ran {} steps, not {new}",
                g.decode_steps
            );
            kv_bytes = g.kv_cache_bytes;
            Ok(g.decode_s)
        })?
    } else {
        let mut dec = infer::Decoder::new(&model, b, ctx + new, true);
        let mut rng = Rng::new(job.seed as u64);
        budget(job, 1).run(|| {
            rates.push(probe.median_rate(3));
            dec.assume_filled(ctx); // as if a prompt of `ctx` tokens had been prefilled
            let d = infer::decode(&mut dec, vec![0; b], &opts, &mut rng, |_| {})?;
            ensure!(d.steps == new, "decode ran {} steps, not {new}", d.steps);
            kv_bytes = dec.cache().map_or(0, |c| c.bytes_used());
            Ok(d.decode_s)
        })?
    };
    let mut row = Row::blank(p, cfg, Status::Ok, String::new());
    row.set_rates(&timed, b * new, new);
    row.kv_cache_bytes = kv_bytes as u64;
    rates.sort_by(f64::total_cmp);
    row.bandwidth_bytes_per_s = rates.get(rates.len() / 2).copied().unwrap_or(0.0);
    Ok(row)
}

/// The bandwidth buffer: as `runtime::hardware::measure` uses (far above any cache).
fn bandwidth_bytes(device: Device) -> u64 {
    match device {
        Device::Cuda(_) => 1 << 30,
        _ => 256 << 20,
    }
}
