//! One decode step — the next token after a context of 64, 256 or 512 — with the KV cache
//! (one token through the model, attending to the cached prefix) and without it (the
//! whole context again), for MHA (12 KV heads) and GQA-4 (Ainslie et al. 2023).
//! `cargo bench -p infer` (a small GPT-2-shaped model: 4 layers, 12 heads, 384 wide, fp32;
//! under a minute in all).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use model::{AttnKernel, Gpt, KvCache, ModelConfig, RunSettings};
use std::time::Duration;
use tch::{nn, Device, Kind, Tensor};

fn bench(c: &mut Criterion) {
    let _g = tch::no_grad_guard();
    let base = ModelConfig {
        n_layer: 4,
        block_size: 1024,
        ..ModelConfig::gpt2_speed_cpu()
    };
    let mut group = c.benchmark_group("decode_step");
    group
        .measurement_time(Duration::from_millis(1500))
        .warm_up_time(Duration::from_millis(300))
        .sampling_mode(SamplingMode::Flat) // steps of tens of ms: no ramp of iteration counts
        .sample_size(10);
    for (label, n_kv) in [("mha", base.n_head), ("gqa4", 4)] {
        let cfg = ModelConfig {
            n_kv_heads: n_kv,
            ..base.clone()
        };
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        // GPT-2's own kernel, as the preset used to carry: naive attention, fp32.
        let run = RunSettings::default().with_kernel(AttnKernel::Naive);
        let m = Gpt::new(&vs.root(), &cfg, &run).unwrap();
        for ctx in [64usize, 256, 512] {
            let prompt = Tensor::randint(
                cfg.vocab_size as i64,
                [1, ctx as i64],
                (Kind::Int64, Device::Cpu),
            ); // (1, ctx)
            let next = Tensor::from_slice(&[1i64]).view([1, 1]); // (1, 1)
            let mut cache = KvCache::new(&m, 1, ctx + 1, Device::Cpu);
            let _ = m.forward_last(&prompt, 0, Some(&mut cache)).unwrap(); // prefill once
            group.bench_with_input(
                BenchmarkId::new(format!("{label}_kv_cache"), ctx),
                &ctx,
                |b, &ctx| {
                    b.iter(|| {
                        cache.truncate(ctx); // forget the previous iteration's token
                        m.forward_last(&next, ctx, Some(&mut cache)).unwrap()
                    })
                },
            );
            let full = Tensor::cat(&[&prompt, &next], 1); // (1, ctx + 1)
            group.bench_with_input(
                BenchmarkId::new(format!("{label}_no_cache"), ctx),
                &ctx,
                |b, _| b.iter(|| m.forward_last(&full, 0, None).unwrap()),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
