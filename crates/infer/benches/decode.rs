//! One decode step — the next token after a context of 64, 256 or 512 — with the KV cache
//! (one token through the model, attending to the cached prefix) and without it (the
//! whole context again), for MHA (12 KV heads) and GQA-4 (Ainslie et al. 2023).
//! Each step is `infer::Decoder::step`, the one `infer::generate` runs.
//! `cargo bench -p infer` (a small GPT-2-shaped model: 4 layers, 12 heads, 384 wide, fp32;
//! under a minute in all).
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use infer::Decoder;
use model::{AttnKernel, Gpt, ModelConfig, RunSettings};
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
               // `infer`'s own decoder, the one `generate` runs: prefill once, then time one
               // step after the context, rewinding to it before each.
            for (kind, kv) in [("kv_cache", true), ("no_cache", false)] {
                let mut dec = Decoder::new(&m, 1, ctx + 1, kv);
                let _ = dec.prefill(&prompt).unwrap();
                group.bench_with_input(
                    BenchmarkId::new(format!("{label}_{kind}"), ctx),
                    &ctx,
                    |b, &ctx| {
                        b.iter(|| {
                            dec.rewind(ctx); // forget the previous iteration's token
                            dec.step(&[1]).unwrap()
                        })
                    },
                );
            }
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
