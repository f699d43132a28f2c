//! `attention = "auto"` in a training config: the faster of the two attention kernels for
//! this run's shape on this machine, chosen by timing. Neither wins everywhere on a CPU: on
//! a Zen 4 EPYC, `shakespeare_char_cpu` (T 128, head size 32) trained faster with the naive
//! kernel in bf16 but with SDPA in fp32 (results/speed/peers.md). One attention layer of the
//! run's shape (batch × block_size × n_embd, its dtype and dropout) runs forward + backward
//! with each kernel, interleaved; the faster best-of-three wins. Under DDP the ranks average
//! their timings, so all make the same choice.
use crate::ddp::Ddp;
use anyhow::Result;
use model::attention::CausalSelfAttention;
use model::{AttnKernel, ModelConfig, RunSettings};
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

/// ms per forward + backward of one attention layer, [naive, sdpa].
pub fn time_kernels(
    cfg: &ModelConfig,
    run: &RunSettings,
    batch: usize,
    device: Device,
) -> [f64; 2] {
    let (b, t, c) = (batch as i64, cfg.block_size as i64, cfg.n_embd as i64);
    let layers: Vec<(nn::VarStore, CausalSelfAttention)> = [AttnKernel::Naive, AttnKernel::Sdpa]
        .into_iter()
        .map(|k| {
            let vs = nn::VarStore::new(device);
            let a = CausalSelfAttention::new(vs.root(), cfg, &run.with_kernel(k), 0.02, 0.02);
            (vs, a)
        })
        .collect();
    let x = Tensor::randn([b, t, c], (Kind::Float, device))
        .to_kind(run.dtype.kind())
        .set_requires_grad(true);
    let mut best = [f64::INFINITY; 2];
    for round in 0..4 {
        for (i, (_, a)) in layers.iter().enumerate() {
            let t0 = Instant::now();
            let y = a.forward_t(&x, 0, None, None, true);
            y.to_kind(Kind::Float).sum(Kind::Float).backward();
            let _ = x.grad().view([-1]).double_value(&[0]); // wait for the result
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            if round > 0 {
                best[i] = best[i].min(ms); // round 0 warms up
            }
        }
    }
    best
}

/// The kernel with the shorter time (SDPA on a tie).
pub fn faster(naive_ms: f64, sdpa_ms: f64) -> AttnKernel {
    if naive_ms < sdpa_ms {
        AttnKernel::Naive
    } else {
        AttnKernel::Sdpa
    }
}

/// Resolve `auto` for this run: time both kernels (averaged over DDP ranks), log the
/// choice, and return it.
pub fn resolve(
    cfg: &ModelConfig,
    run: &RunSettings,
    batch: usize,
    device: Device,
    ddp: &Ddp,
) -> Result<AttnKernel> {
    let t = ddp.average(&time_kernels(cfg, run, batch, device))?;
    let kernel = faster(t[0], t[1]);
    tracing::info!(
        "attention = auto: {kernel} (one layer forward + backward at batch {batch} × {} in {}: naive {:.1} ms, sdpa {:.1} ms)",
        cfg.block_size,
        run.dtype,
        t[0],
        t[1]
    );
    Ok(kernel)
}
