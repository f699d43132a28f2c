//! Generation: prefill the prompt in one forward, then decode one token at a time, with
//! the pre-allocated KV cache or (the ablation baseline) recomputing the whole context.
use crate::sampling::Sampler;
use anyhow::{bail, Result};
use model::{Gpt, KvCache};
use serde::Serialize;
use std::time::Instant;
use tch::{Device, Tensor};

#[derive(Debug, Clone)]
pub struct GenOptions {
    pub max_new_tokens: usize,
    pub kv_cache: bool,
    pub sampler: Sampler,
    /// Stop a sequence at this id (kept in the output).
    pub eos: Option<i64>,
    /// Seed libtorch's generator before sampling.
    pub seed: Option<i64>,
}

/// What came out, and how fast.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    /// New ids per sequence (prompt excluded).
    pub ids: Vec<Vec<i64>>,
    pub prompt_tokens: usize,
    pub batch: usize,
    /// Time to first token: the prefill forward plus the first sample.
    pub ttft_s: f64,
    pub prefill_s: f64,
    pub decode_s: f64,
    /// Decode steps run (after the first token).
    pub decode_steps: usize,
    /// Bytes the cache holds for the tokens generated (0 without a cache).
    pub kv_cache_bytes: usize,
}

impl Generation {
    pub fn prefill_tokens_per_sec(&self) -> f64 {
        (self.batch * self.prompt_tokens) as f64 / self.prefill_s.max(1e-12)
    }
    pub fn decode_tokens_per_sec(&self) -> f64 {
        if self.decode_steps == 0 {
            return 0.0;
        }
        (self.batch * self.decode_steps) as f64 / self.decode_s.max(1e-12)
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Generate after `prompt` (B sequences of equal length). `on_step` sees each step's
/// new ids (one per sequence) as they are produced, for streaming.
pub fn generate(
    m: &Gpt,
    prompt: &[Vec<i64>],
    opts: &GenOptions,
    device: Device,
    mut on_step: impl FnMut(&[i64]),
) -> Result<Generation> {
    let _g = tch::no_grad_guard();
    let b = prompt.len();
    let p = prompt.first().map_or(0, Vec::len);
    if b == 0 || p == 0 {
        bail!("empty prompt: give at least one token");
    }
    if prompt.iter().any(|s| s.len() != p) {
        bail!("every prompt in a batch must have the same length");
    }
    let ctx = m.cfg.block_size;
    if p + opts.max_new_tokens > ctx {
        bail!(
            "prompt ({p} tokens) + --max-new-tokens ({}) = {} exceeds the model's context of {ctx} tokens (block_size)",
            opts.max_new_tokens,
            p + opts.max_new_tokens
        );
    }
    if let Some(s) = opts.seed {
        tch::manual_seed(s);
    }
    let flat: Vec<i64> = prompt.concat();
    let ids = Tensor::from_slice(&flat)
        .view([b as i64, p as i64])
        .to(device); // (B, P)
    let mut cache = opts
        .kv_cache
        .then(|| KvCache::new(&m.cfg, b, p + opts.max_new_tokens, device));
    let mut out: Vec<Vec<i64>> = vec![Vec::new(); b];
    let mut done = vec![false; b];
    let t0 = Instant::now();
    let logits = m.forward_last(&ids, 0, cache.as_mut())?;
    sync(device);
    let prefill_s = t0.elapsed().as_secs_f64();
    let mut next = opts.sampler.sample(&logits); // (B, 1)
    let mut ttft_s = t0.elapsed().as_secs_f64();
    let mut context = ids;
    let t1 = Instant::now();
    let mut steps = 0;
    for i in 0..opts.max_new_tokens {
        let step: Vec<i64> = Vec::try_from(next.view([-1]).to(Device::Cpu))?;
        if i == 0 {
            ttft_s = t0.elapsed().as_secs_f64();
        }
        for (s, &id) in step.iter().enumerate() {
            if !done[s] {
                out[s].push(id);
                done[s] = opts.eos == Some(id);
            }
        }
        on_step(&step);
        if i + 1 == opts.max_new_tokens || done.iter().all(|&d| d) {
            break;
        }
        let logits = match cache.as_mut() {
            Some(c) => {
                let pos = c.len();
                m.forward_last(&next, pos, Some(c))?
            }
            None => {
                context = Tensor::cat(&[&context, &next], 1); // (B, T + 1): recompute everything
                m.forward_last(&context, 0, None)?
            }
        };
        next = opts.sampler.sample(&logits);
        steps += 1;
    }
    sync(device);
    let decode_s = t1.elapsed().as_secs_f64();
    let held = cache.as_ref().map_or(0, |c| c.len());
    let kv_cache_bytes = if cache.is_some() {
        model::accounting::kv_cache_bytes_per_token(&m.cfg, m.cfg.dtype.bytes()) * b * held
    } else {
        0
    };
    Ok(Generation {
        ids: out,
        prompt_tokens: p,
        batch: b,
        ttft_s,
        prefill_s,
        decode_s,
        decode_steps: steps,
        kv_cache_bytes,
    })
}
