//! Helpers shared by the model tests.
#![allow(dead_code)]
use model::{Gpt, KvCache};
use tch::{Device, Kind, Tensor};

/// Greedy decoding with a KV cache: `n` new ids after `prompt`.
pub fn greedy_cached(m: &Gpt, prompt: &[i64], n: usize) -> Vec<i64> {
    let mut cache = KvCache::new(m, 1, prompt.len() + n, Device::Cpu);
    let mut logits = m
        .forward_last(
            &Tensor::from_slice(prompt).unsqueeze(0),
            0,
            Some(&mut cache),
        )
        .unwrap();
    let mut out = Vec::new();
    for _ in 0..n {
        let next = logits.argmax(-1, false).int64_value(&[0]);
        out.push(next);
        let pos = cache.len();
        logits = m
            .forward_last(
                &Tensor::from_slice(&[next]).unsqueeze(0),
                pos,
                Some(&mut cache),
            )
            .unwrap();
    }
    out
}

/// Greedy decoding recomputing the whole context every step (no cache).
pub fn greedy_full(m: &Gpt, prompt: &[i64], n: usize) -> Vec<i64> {
    let mut ids = prompt.to_vec();
    for _ in 0..n {
        let logits = m
            .forward_last(&Tensor::from_slice(&ids).unsqueeze(0), 0, None)
            .unwrap();
        ids.push(logits.argmax(-1, false).int64_value(&[0]));
    }
    ids[prompt.len()..].to_vec()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

pub fn random_ids(vocab: usize, b: i64, t: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randint(vocab as i64, [b, t], (Kind::Int64, Device::Cpu))
}
