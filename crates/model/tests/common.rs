//! Helpers shared by the model tests.
#![allow(dead_code)]
use model::{Gpt, KvCache};
use tch::{Device, Kind, Tensor};

/// Logits (1, T, V) of `ids` through the decode path: a prefill of the first id, then one
/// id at a time (T = 1) over the KV cache — teacher-forced, so two models can be compared
/// position by position. Greedy generation itself is `infer`'s and tested there
/// (crates/infer/tests/generate.rs).
pub fn cached_decode_logits(m: &Gpt, ids: &[i64]) -> Tensor {
    let mut cache = KvCache::new(m, 1, ids.len(), Device::Cpu);
    let parts: Vec<Tensor> = (0..ids.len())
        .map(|p| {
            let x = Tensor::from_slice(&ids[p..p + 1]).unsqueeze(0); // (1, 1)
            m.forward(&x, p, Some(&mut cache)).unwrap()
        })
        .collect();
    Tensor::cat(&parts, 1)
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
