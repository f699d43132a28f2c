//! The measurements of one rung: generation speed (infer's prefill + KV-cache decode) and
//! quality against the unquantized fp32 model.
use super::{Args, Quality, Rung, Speed};
use anyhow::Result;
use infer::{generate, source, GenOptions, Sampler, SourceSpec};
use runtime::DType;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn load(mut spec: SourceSpec, rung: Rung, dtype: DType) -> Result<source::Source> {
    spec.dtype = dtype;
    let mut src = source::load(&spec)?;
    if let Some(s) = rung.scheme() {
        model::quant::quantize_model(&mut src.model, s, true)?;
    }
    Ok(src)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median prefill and decode tokens/sec of greedy generation with the KV cache.
fn measure(src: &source::Source, label: &str, args: &Args) -> Result<Speed> {
    let vocab = src.model.cfg.vocab_size as i64;
    let prompt: Vec<i64> = (0..args.prompt_len as i64)
        .map(|i| (i * 7919 + 1) % vocab)
        .collect();
    let opts = GenOptions {
        max_new_tokens: args.decode_tokens,
        kv_cache: true,
        sampler: Sampler::greedy(),
        eos: Vec::new(),
        seed: 1337,
    };
    let run = |batch: usize| generate(&src.model, &vec![prompt.clone(); batch], &opts, |_| {});
    run(1)?; // warm-up: first-call allocations and kernel selection
    let (mut d1, mut d8, mut pf) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.repeats.max(1) {
        let g = run(1)?;
        d1.push(g.decode_tokens_per_sec());
        pf.push(g.prefill_tokens_per_sec());
        d8.push(run(8)?.decode_tokens_per_sec());
    }
    let b = model::quant::weight_bytes(&src.vs, &src.model);
    let s = Speed {
        model: label.into(),
        weight_bytes: b.total(),
        matmul_bytes: b.matmul,
        decode_tps_b1: median(d1),
        decode_tps_b8: median(d8),
        prefill_tps: median(pf),
    };
    eprintln!(
        "  {label}: {:.1} MB weights, decode {:.1} tok/s (batch 1), {:.1} tok/s (batch 8), prefill {:.0} tok/s",
        s.weight_bytes as f64 / 1e6,
        s.decode_tps_b1,
        s.decode_tps_b8,
        s.prefill_tps
    );
    Ok(s)
}

pub fn speed_preset(name: &str, rung: Rung, dtype: DType, args: &Args) -> Result<Speed> {
    let src = load(SourceSpec::preset(name), rung, dtype)?;
    measure(&src, name, args)
}

pub fn speed_folder(dir: &Path, rung: Rung, dtype: DType, args: &Args) -> Result<Speed> {
    let src = load(SourceSpec::model(dir), rung, dtype)?;
    let name = dir
        .file_name()
        .map_or("model".into(), |n| n.to_string_lossy().into_owned());
    measure(&src, &name, args)
}

/// Greedy ids from BOS.
fn greedy(m: &model::Gpt, n: usize) -> Result<Vec<i64>> {
    let opts = GenOptions {
        max_new_tokens: n,
        ..GenOptions::default()
    };
    Ok(generate(m, &[vec![1]], &opts, |_| {})?.ids.remove(0))
}

/// stories260K quality of `rung` (weights quantized, fp32 activations) against fp32 dense.
pub fn quality(dir: &Path, rung: Rung) -> Result<Quality> {
    let reference = load(SourceSpec::model(dir), Rung::Baseline, DType::Fp32)?;
    let quant = load(SourceSpec::model(dir), rung, DType::Fp32)?;
    let n = reference.model.cfg.block_size.min(512);
    // The fixed sequence: BOS + n-1 ids sampled at temperature 1 from the fp32 model.
    let opts = GenOptions {
        max_new_tokens: n - 1,
        sampler: Sampler {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        },
        seed: 1337,
        ..GenOptions::default()
    };
    let sampled = generate(&reference.model, &[vec![1]], &opts, |_| {})?
        .ids
        .remove(0);
    let seq: Vec<i64> = std::iter::once(1).chain(sampled).take(n).collect();
    let x = Tensor::from_slice(&seq).unsqueeze(0).to_device(Device::Cpu); // (1, n)
    let lp = |m: &model::Gpt| -> Result<Tensor> {
        Ok(m.forward(&x, 0, None)?
            .to_kind(Kind::Float)
            .log_softmax(-1, Kind::Float))
    }; // (1, n, V)
    let (p, q) = (lp(&reference.model)?, lp(&quant.model)?);
    let kl = (p.exp() * (&p - &q)).sum_dim_intlist(-1, false, Kind::Float); // (1, n)
    let top1 = p
        .argmax(-1, false)
        .eq_tensor(&q.argmax(-1, false))
        .to_kind(Kind::Float);
    let (ga, gb) = (greedy(&reference.model, 200)?, greedy(&quant.model, 200)?);
    let greedy_match = ga.iter().zip(&gb).filter(|(a, b)| a == b).count();
    let greedy_prefix = ga.iter().zip(&gb).take_while(|(a, b)| a == b).count();
    let q = Quality {
        positions: seq.len(),
        kl_mean: kl.mean(Kind::Float).double_value(&[]),
        kl_max: kl.max().double_value(&[]),
        top1_agreement: top1.mean(Kind::Float).double_value(&[]),
        greedy_match,
        greedy_prefix,
    };
    eprintln!(
        "  stories260K quality: KL {:.2e} nats (mean over {}), top-1 {:.3}, greedy {}/200 (prefix {})",
        q.kl_mean, q.positions, q.top1_agreement, q.greedy_match, q.greedy_prefix
    );
    Ok(q)
}
