//! The best time of one `infer::Decoder::step` (the step `infer::generate` runs, Pope et
//! al. 2022) on `gpt2_long_cpu` at context 256, 1024 and 4096, for MHA and GQA-4, SDPA and
//! naive, bf16 and fp32: `cargo run --release -p infer --example decode_step -- THREADS`.
//! Run it at 1 thread and at all cores: on a machine other processes keep busy, libtorch's
//! OpenMP threads spin at barriers and a batch-1 step can take 25× longer at 2 threads than
//! at 1 — the sweep's README warns when the load average says so.
use infer::Decoder;
use model::{AttnKernel, Gpt, ModelConfig, RunSettings};
use runtime::DType;
use std::time::Instant;
use tch::{nn, Device, Kind};

fn main() {
    let threads: i32 = std::env::args()
        .nth(1)
        .map_or(1, |a| a.parse().expect("THREADS: a number"));
    tch::set_num_threads(threads);
    let _g = tch::no_grad_guard();
    for (dtype, kernel) in [
        (DType::Bf16, AttnKernel::Sdpa),
        (DType::Bf16, AttnKernel::Naive),
        (DType::Fp32, AttnKernel::Sdpa),
    ] {
        for nkv in [12usize, 4] {
            let cfg = ModelConfig {
                n_kv_heads: nkv,
                ..ModelConfig::gpt2_long_cpu()
            };
            let vs = nn::VarStore::new(Device::Cpu);
            let run = RunSettings::default().with_kernel(kernel).with_dtype(dtype);
            let m = Gpt::new(&vs.root(), &cfg, &run).unwrap();
            if dtype == DType::Bf16 {
                for (_, mut v) in vs.variables() {
                    v.set_data(&v.to_kind(Kind::BFloat16));
                }
            }
            for ctx in [256usize, 1024, 4096] {
                let mut dec = Decoder::new(&m, 1, ctx + 8, true);
                let mut best = f64::MAX;
                for _ in 0..12 {
                    dec.assume_filled(ctx);
                    let t = Instant::now();
                    let _ = dec.step(&[1]).unwrap();
                    best = best.min(t.elapsed().as_secs_f64() * 1e3);
                }
                println!("{dtype:?} {kernel:?} n_kv={nkv} ctx={ctx}: best step {best:.2} ms");
            }
        }
    }
}
