//! Autoregressive generation as in nanoGPT's `generate` and HF `generate`: prefill the
//! prompt in one forward, then decode one token at a time — either writing each token's
//! keys/values into a pre-allocated KV cache (Pope et al. 2022, "Efficiently Scaling
//! Transformer Inference") or, the ablation baseline, re-running the whole context.
use crate::decoder::Decoder;
use crate::sampling::Sampler;
use anyhow::{bail, Result};
use model::Gpt;
use runtime::Rng;
use serde::Serialize;
use std::time::Instant;
use tch::{Device, Tensor};

/// How to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// Tokens to generate per sequence (at least 1); fewer when every sequence hits EOS.
    pub max_new_tokens: usize,
    /// Decode with the pre-allocated KV cache (`false`: recompute the whole context each step).
    pub kv_cache: bool,
    pub sampler: Sampler,
    /// Stop ids (EOS): a sequence that produces one ends there (the id is kept in its output).
    pub eos: Vec<i64>,
    /// Seed of the sampling RNG (unused by greedy).
    pub seed: u64,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            max_new_tokens: 64,
            kv_cache: true,
            sampler: Sampler::greedy(),
            eos: Vec::new(),
            seed: 1337,
        }
    }
}

/// What came out, and how fast. Times are wall-clock seconds, synchronised with the device.
#[derive(Debug, Clone, Serialize)]
pub struct Generation {
    /// New ids per sequence (the prompt excluded; an EOS that ended a sequence included).
    pub ids: Vec<Vec<i64>>,
    pub prompt_tokens: usize,
    pub batch: usize,
    /// Time to first token: the prefill forward plus the first sample.
    pub ttft_s: f64,
    /// The prefill forward alone.
    pub prefill_s: f64,
    /// Every decode step (forward + sample), not counting the caller's `on_step`.
    pub decode_s: f64,
    /// Decode steps run (each produces one more token per sequence after the first).
    pub decode_steps: usize,
    /// Bytes of K and V held for the positions in the cache, all sequences: 2 · layers ·
    /// n_kv_heads · head_dim · bytes · tokens · batch (0 without a cache).
    pub kv_cache_bytes: usize,
    /// Bytes of the whole pre-allocated cache (0 without a cache).
    pub kv_cache_capacity_bytes: usize,
}

impl Generation {
    /// Prompt tokens (all sequences) per second of prefill forward.
    pub fn prefill_tokens_per_sec(&self) -> f64 {
        (self.batch * self.prompt_tokens) as f64 / self.prefill_s.max(1e-12)
    }

    /// Tokens (all sequences) per second of decode; 0 when no step ran.
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

/// Check a batch of prompts against the model: non-empty, equal lengths, ids in the
/// vocabulary, and prompt + new tokens within the context (`block_size`).
pub fn check_prompt(m: &Gpt, prompt: &[Vec<i64>], max_new_tokens: usize) -> Result<usize> {
    let p = prompt.first().map_or(0, Vec::len);
    if p == 0 {
        bail!("empty prompt: give at least one token (--prompt TEXT or --prompt-ids 1,2,3)");
    }
    if prompt.iter().any(|s| s.len() != p) {
        bail!("every prompt in a batch must have the same length");
    }
    let vocab = m.cfg.vocab_size as i64;
    if let Some(bad) = prompt.iter().flatten().find(|&&i| i < 0 || i >= vocab) {
        bail!("prompt id {bad} is outside the model's vocabulary (0..{vocab})");
    }
    if max_new_tokens == 0 {
        bail!("--max-new-tokens must be at least 1");
    }
    let ctx = m.cfg.block_size;
    if p + max_new_tokens > ctx {
        bail!(
            "prompt ({p} tokens) + --max-new-tokens ({max_new_tokens}) = {} exceeds the model's context of {ctx} tokens (block_size); shorten the prompt or generate fewer tokens",
            p + max_new_tokens
        );
    }
    Ok(p)
}

/// What [`decode`] produced: new ids per sequence and the time its steps took.
#[derive(Debug, Clone)]
pub struct Decoded {
    /// New ids per sequence, `first` included (an EOS that ended a sequence included).
    pub ids: Vec<Vec<i64>>,
    /// Every decode step (forward + sample), not counting the caller's `on_step`.
    pub decode_s: f64,
    /// Decode steps run (each produces one more token per sequence after `first`).
    pub steps: usize,
}

/// The decode loop of [`generate`]: emit `first` (one id per sequence, sampled from the
/// prefill's logits), then feed each new token back through `dec` one step at a time until
/// `opts.max_new_tokens` tokens per sequence exist or every sequence hit EOS.
pub fn decode(
    dec: &mut Decoder<'_>,
    first: Vec<i64>,
    opts: &GenOptions,
    rng: &mut Rng,
    mut on_step: impl FnMut(&[Option<i64>]),
) -> Result<Decoded> {
    let _g = tch::no_grad_guard();
    let b = dec.batch();
    let mut out: Vec<Vec<i64>> = vec![Vec::with_capacity(opts.max_new_tokens); b];
    let mut done = vec![false; b];
    let mut next = first;
    let (mut decode_s, mut steps) = (0.0, 0);
    loop {
        let step: Vec<Option<i64>> = next
            .iter()
            .zip(done.iter_mut())
            .zip(out.iter_mut())
            .map(|((&id, done), out)| {
                if *done {
                    return None;
                }
                out.push(id);
                *done = opts.eos.contains(&id);
                Some(id)
            })
            .collect();
        on_step(&step);
        if steps + 1 >= opts.max_new_tokens || done.iter().all(|&d| d) {
            break;
        }
        let t = Instant::now();
        let logits = dec.step(&next)?; // (B, V)
        next = opts.sampler.sample(&logits, rng)?; // on the host: synchronised
        decode_s += t.elapsed().as_secs_f64();
        steps += 1;
    }
    tracing::debug!(
        "infer::decode: {steps} steps × {b} sequences in {:.1} ms",
        decode_s * 1e3
    );
    Ok(Decoded {
        ids: out,
        decode_s,
        steps,
    })
}

/// Generate after `prompt` (B sequences of equal length) on the model's device: a prefill
/// through a [`Decoder`], then [`decode`].
///
/// `on_step` sees each token as it is produced, one entry per sequence: `Some(id)`, or
/// `None` for a sequence that already ended at EOS (for streaming).
pub fn generate(
    m: &Gpt,
    prompt: &[Vec<i64>],
    opts: &GenOptions,
    on_step: impl FnMut(&[Option<i64>]),
) -> Result<Generation> {
    let _g = tch::no_grad_guard();
    let p = check_prompt(m, prompt, opts.max_new_tokens)?;
    opts.sampler.validate()?;
    let (b, device) = (prompt.len(), m.wte.device());
    let mut rng = Rng::new(opts.seed);
    let ids = Tensor::from_slice(&prompt.concat())
        .view([b as i64, p as i64])
        .to(device); // (B, P)
                     // The last new token is never fed back, so P + n − 1 positions suffice.
    let mut dec = Decoder::new(m, b, p + opts.max_new_tokens - 1, opts.kv_cache);

    let t0 = Instant::now();
    let logits = dec.prefill(&ids)?; // (B, V)
    sync(device);
    let prefill_s = t0.elapsed().as_secs_f64();
    let first = opts.sampler.sample(&logits, &mut rng)?; // on the host: synchronised
    let ttft_s = t0.elapsed().as_secs_f64();
    tracing::debug!(
        "prefill of {b} × {p} tokens: {:.1} ms; KV cache {}",
        prefill_s * 1e3,
        dec.cache()
            .map_or("off".into(), |c| format!("{} bytes allocated", c.bytes()))
    );
    let d = decode(&mut dec, first, opts, &mut rng, on_step)?;
    let (kv_cache_bytes, kv_cache_capacity_bytes) = match dec.cache() {
        Some(c) => (c.bytes_used(), c.bytes()),
        None => (0, 0),
    };
    Ok(Generation {
        ids: d.ids,
        prompt_tokens: p,
        batch: b,
        ttft_s,
        prefill_s,
        decode_s: d.decode_s,
        decode_steps: d.steps,
        kv_cache_bytes,
        kv_cache_capacity_bytes,
    })
}
