//! The state of one generation between forwards (Pope et al. 2022, "Efficiently Scaling
//! Transformer Inference"): the pre-allocated KV cache — or, for the ablation baseline, the
//! whole context so far, recomputed every step. [`crate::generate`] is a prefill followed by
//! [`crate::generation::decode`] over a `Decoder`; the speed ladder, the sweep, the criterion
//! bench and the tests drive these same two halves, so their numbers describe the code users run.
//! Every forward runs under `c10::InferenceMode` (`runtime::InferenceMode`): the cache is
//! allocated outside it, so it stays a normal tensor updated in place; the logits returned
//! are inference tensors (read them, sample them; do not differentiate them).
use anyhow::{ensure, Result};
use model::{Gpt, KvCache};
use runtime::InferenceMode;
use tch::{Device, Kind, Tensor};

/// A cache (or a growing context) for `batch` sequences of one model.
#[derive(Debug)]
pub struct Decoder<'m> {
    m: &'m Gpt,
    cache: Option<KvCache>,
    /// Without a cache: every id so far, (B, T).
    context: Option<Tensor>,
    batch: usize,
    device: Device,
}

impl<'m> Decoder<'m> {
    /// Room for `capacity` positions of `batch` sequences; `kv_cache: false` recomputes the
    /// whole context at each step instead.
    /// The first decoder of a model in a process also picks, by timing, the fastest
    /// single-row kernel for each weight shape of 1 MiB or more (`model::gemv`).
    pub fn new(m: &'m Gpt, batch: usize, capacity: usize, kv_cache: bool) -> Self {
        let device = m.wte.device();
        for t in model::gemv::tune_for_decode(m) {
            tracing::debug!(
                "decode kernel for {} × {} {} (×{}): {:?} (µs: {:?})",
                t.out,
                t.inp,
                t.kind,
                t.count,
                t.kernel,
                t.us
            );
        }
        Self {
            m,
            cache: kv_cache.then(|| KvCache::new(m, batch, capacity, device)),
            context: None,
            batch,
            device,
        }
    }

    pub fn model(&self) -> &Gpt {
        self.m
    }

    pub fn batch(&self) -> usize {
        self.batch
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// The KV cache, when decoding with one.
    pub fn cache(&self) -> Option<&KvCache> {
        self.cache.as_ref()
    }

    /// Positions held: filled cache slots, or the context's length.
    pub fn len(&self) -> usize {
        match (&self.cache, &self.context) {
            (Some(c), _) => c.len(),
            (None, Some(x)) => x.size()[1] as usize,
            (None, None) => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The prompt `ids` (B, P) from position 0 in one forward; logits (B, V) of its last position.
    pub fn prefill(&mut self, ids: &Tensor) -> Result<Tensor> {
        let _im = InferenceMode::enter();
        ensure!(
            ids.size()[0] as usize == self.batch,
            "prefill of {} sequences into a decoder for {}",
            ids.size()[0],
            self.batch
        );
        self.rewind(0);
        match self.cache.as_mut() {
            Some(c) => self.m.forward_last(ids, 0, Some(c)),
            None => {
                self.context = Some(ids.shallow_clone());
                self.m.forward_last(ids, 0, None)
            }
        }
    }

    /// One decode forward: `next` (one id per sequence) at the next position; logits (B, V).
    pub fn step(&mut self, next: &[i64]) -> Result<Tensor> {
        let _im = InferenceMode::enter();
        ensure!(
            next.len() == self.batch,
            "{} ids for {} sequences",
            next.len(),
            self.batch
        );
        let x = Tensor::from_slice(next).view([self.batch as i64, 1]); // (B, 1)
        let x = match self.device {
            Device::Cpu => x,
            d => x.to(d),
        };
        match self.cache.as_mut() {
            Some(c) => {
                let pos = c.len();
                self.m.forward_last(&x, pos, Some(c))
            }
            None => {
                let ctx = match &self.context {
                    Some(c) => Tensor::cat(&[c, &x], 1), // (B, T + 1): recompute everything
                    None => x,
                };
                let logits = self.m.forward_last(&ctx, 0, None);
                self.context = Some(ctx);
                logits
            }
        }
    }

    /// Forget every position from `len` on (to repeat a measurement from the same context).
    pub fn rewind(&mut self, len: usize) {
        let _im = InferenceMode::enter();
        if let Some(c) = self.cache.as_mut() {
            c.truncate(len);
        }
        if let Some(x) = &self.context {
            self.context = (len > 0).then(|| x.narrow(1, 0, len.min(x.size()[1] as usize) as i64));
        }
    }

    /// Treat the first `len` positions as filled, whatever they hold (cache slots, or id 0):
    /// for timing decode after a long context without paying for its prefill. A decode step
    /// reads the same bytes and runs the same kernels whatever the values.
    pub fn assume_filled(&mut self, len: usize) {
        let _im = InferenceMode::enter();
        match self.cache.as_mut() {
            Some(c) => c.assume_filled(len),
            None => {
                self.context = (len > 0).then(|| {
                    Tensor::zeros([self.batch as i64, len as i64], (Kind::Int64, self.device))
                })
            }
        }
    }
}
