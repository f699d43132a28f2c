//! GPT-2 124M (random weights of the real shape) decode at batch 1, for a profiler: a prompt
//! of 64, then 128 steps, again and again for SECONDS, each round's ms per step printed; then
//! the same weights through the gemv alone, in decode's order, to split a step into weight
//! streaming and everything else:
//! `cargo run --release -p infer --example decode_gpt2 -- bf16|fp32 SECONDS`
//! (e.g. under `perf record -g`).
use infer::Decoder;
use model::{Gpt, ModelConfig, RunSettings};
use runtime::DType;
use std::time::Instant;
use tch::{nn, Device, Kind, Tensor};

fn main() {
    let mut args = std::env::args().skip(1);
    let dtype = match args.next().as_deref() {
        Some("fp32") => DType::Fp32,
        _ => DType::Bf16,
    };
    let secs: f64 = args.next().map_or(10.0, |a| a.parse().expect("SECONDS"));
    tch::set_num_threads(2);
    let _g = tch::no_grad_guard();
    let vs = nn::VarStore::new(Device::Cpu);
    let run = RunSettings::default().with_dtype(dtype);
    let m = Gpt::new(&vs.root(), &ModelConfig::gpt2_124m(), &run).unwrap();
    if dtype == DType::Bf16 {
        for (_, mut v) in vs.variables() {
            v.set_data(&v.to_kind(Kind::BFloat16));
        }
    }
    let mut dec = Decoder::new(&m, 1, 256, true);
    let prompt = Tensor::zeros([1, 64], (Kind::Int64, Device::Cpu));
    let (mut steps, t0) = (0u64, Instant::now());
    while t0.elapsed().as_secs_f64() < secs {
        let _ = dec.prefill(&prompt).unwrap();
        let t = Instant::now();
        for _ in 0..128 {
            let _ = dec.step(&[1]).unwrap();
        }
        steps += 128;
        eprintln!("{:.2} ms/step", t.elapsed().as_secs_f64() * 1e3 / 128.0);
    }
    println!("{steps} steps");
    // The same weights through the gemv alone, in decode's order.
    let _im = runtime::InferenceMode::enter();
    let mut ws: Vec<&Tensor> = Vec::new();
    for b in &m.h {
        ws.push(&b.attn.c_attn.weight);
        ws.push(&b.attn.c_proj.weight);
        if let model::layers::Mlp::Gelu(g) = &b.mlp {
            ws.push(&g.c_fc.weight);
            ws.push(&g.c_proj.weight);
        }
    }
    ws.push(&m.wte);
    // Row-major, as the streaming gemv takes them: where the decoder's tuning stored a
    // weight column-major (its `mm` on the transpose won there), this is a copy.
    let ws: Vec<Tensor> = ws.iter().map(|w| w.contiguous()).collect();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..50 {
            for w in &ws {
                let x = Tensor::ones([w.size()[1]], (w.kind(), Device::Cpu));
                let _ =
                    runtime::gemv::gemv(w, &x, None).expect("the streaming gemv needs AVX2 + FMA");
            }
        }
        eprintln!(
            "gemv only: {:.2} ms/step",
            t.elapsed().as_secs_f64() * 1e3 / 50.0
        );
    }
}
