//! A pre-allocated key/value cache, one (K, V) pair per layer, each (B, n_kv_heads, S, hs).
//!
//! Sized by `n_kv_heads`, so GQA shrinks it by n_head / n_kv_heads (Ainslie et al. 2023).
//! The caller owns the cache and passes it to `forward`; new keys and values are written
//! in place at the position offset, and attention reads the prefix `[0, pos + T)`.
use crate::config::ModelConfig;
use crate::gpt::Gpt;
use tch::{Device, Kind, Tensor};

#[derive(Debug)]
pub struct KvCache {
    pub(crate) k: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
    capacity: usize,
    len: usize,
}

impl KvCache {
    /// Allocate room for `capacity` positions of `batch` sequences of `model`, in its
    /// compute dtype.
    pub fn new(model: &Gpt, batch: usize, capacity: usize, device: Device) -> Self {
        let kind = model.settings.dtype.kind();
        Self::with_kind(&model.cfg, batch, capacity, kind, device)
    }

    pub fn with_kind(
        cfg: &ModelConfig,
        batch: usize,
        capacity: usize,
        kind: Kind,
        device: Device,
    ) -> Self {
        let shape = [
            batch as i64,
            cfg.n_kv_heads as i64,
            capacity as i64,
            cfg.head_dim() as i64,
        ];
        let alloc = || {
            (0..cfg.n_layer)
                .map(|_| Tensor::zeros(shape, (kind, device)))
                .collect()
        };
        Self {
            k: alloc(),
            v: alloc(),
            capacity,
            len: 0,
        }
    }

    /// Positions filled so far (the next write goes here).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forget every position from `len` on (e.g. to re-run a step); `len` ≤ `len()`.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Forget the contents (keeps the memory).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Bytes held by the whole pre-allocated cache.
    pub fn bytes(&self) -> usize {
        self.k
            .iter()
            .chain(&self.v)
            .map(|t| t.numel() * t.kind().elt_size_in_bytes())
            .sum()
    }

    /// Write `k`, `v` (B, n_kv, T, hs) of `layer` at `pos`; return the views [0, pos + T).
    pub(crate) fn update(
        &mut self,
        layer: usize,
        pos: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> (Tensor, Tensor) {
        let t = k.size()[2] as usize;
        assert!(
            pos + t <= self.capacity,
            "KV cache overflow: {} + {t} > {}",
            pos,
            self.capacity
        );
        self.k[layer].narrow(2, pos as i64, t as i64).copy_(k);
        self.v[layer].narrow(2, pos as i64, t as i64).copy_(v);
        let end = (pos + t) as i64;
        (
            self.k[layer].narrow(2, 0, end),
            self.v[layer].narrow(2, 0, end),
        )
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len;
    }
}
