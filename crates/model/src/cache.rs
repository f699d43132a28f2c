//! A pre-allocated key/value cache, one (K, V) pair per layer, each (B, n_kv_heads, S, hs).
//!
//! Sized by `n_kv_heads`, so GQA shrinks it by n_head / n_kv_heads (Ainslie et al. 2023).
//! The caller owns the cache and passes it to `forward`; new keys and values are written
//! in place at the position offset, and attention reads the prefix `[0, pos + T)`.
//!
//! With a sliding window W (Mistral, Jiang et al. 2023) and room asked for more than W
//! positions, the cache is a rolling buffer of W slots: position p lives in slot p mod W, so
//! memory is bounded by W, not by the context. Keys carry their RoPE rotation already, so
//! a single decoding query may read the slots in any order; a chunk of T > 1 queries reads
//! the last W − 1 cached positions in order, followed by its own keys.
use crate::config::ModelConfig;
use crate::gpt::Gpt;
use tch::{Device, Kind, Tensor};

#[derive(Debug)]
pub struct KvCache {
    pub(crate) k: Vec<Tensor>,
    pub(crate) v: Vec<Tensor>,
    capacity: usize,
    len: usize,
    /// `Some(W)`: a rolling buffer of W slots (the window is smaller than the capacity).
    rolling: Option<usize>,
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
        let rolling = cfg.sliding_window.filter(|&w| w < capacity);
        let slots = rolling.unwrap_or(capacity);
        let shape = [
            batch as i64,
            cfg.n_kv_heads as i64,
            slots as i64,
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
            rolling,
        }
    }

    /// Positions filled so far (the next write goes here).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Positions it can reach (the last one written is `capacity − 1`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Positions it stores at once: the capacity, or the window W of a rolling buffer.
    pub fn slots(&self) -> usize {
        self.rolling.unwrap_or(self.capacity)
    }

    /// Whether this is a rolling buffer of `slots()` < `capacity()` positions.
    pub fn is_rolling(&self) -> bool {
        self.rolling.is_some()
    }

    /// Forget every position from `len` on (e.g. to re-run a step); `len` ≤ `len()`. A rolling
    /// buffer has overwritten older positions, so it can only forget all of them (`len` 0).
    pub fn truncate(&mut self, len: usize) {
        if self.rolling.is_some() && len < self.len {
            self.len = 0;
        } else {
            self.len = self.len.min(len);
        }
    }

    /// Treat the first `len` positions as filled, whatever they hold: for timing decode at a
    /// long context without paying for its prefill (the step reads the same bytes either way).
    pub fn assume_filled(&mut self, len: usize) {
        assert!(
            len <= self.capacity,
            "KV cache overflow: {len} > {}",
            self.capacity
        );
        self.len = len;
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

    /// Bytes of the slots filled so far.
    pub fn bytes_used(&self) -> usize {
        self.bytes() / self.slots().max(1) * self.len.min(self.slots())
    }

    /// Write `k`, `v` (B, n_kv, T, hs) of `layer` at `pos`; return the keys and values
    /// attention reads: the views [0, pos + T), or from a rolling buffer the last
    /// min(pos, W − 1) positions and the T new ones (in order when T > 1).
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
        if let Some(w) = self.rolling {
            return self.update_rolling(layer, pos, k, v, w);
        }
        self.k[layer].narrow(2, pos as i64, t as i64).copy_(k);
        self.v[layer].narrow(2, pos as i64, t as i64).copy_(v);
        let end = (pos + t) as i64;
        (
            self.k[layer].narrow(2, 0, end),
            self.v[layer].narrow(2, 0, end),
        )
    }

    fn update_rolling(
        &mut self,
        layer: usize,
        pos: usize,
        k: &Tensor,
        v: &Tensor,
        w: usize,
    ) -> (Tensor, Tensor) {
        let t = k.size()[2] as usize;
        let device = k.device();
        let slots = |range: std::ops::Range<usize>| {
            let idx: Vec<i64> = range.map(|p| (p % w) as i64).collect();
            Tensor::from_slice(&idx).to(device)
        };
        let (kb, vb) = (&mut self.k[layer], &mut self.v[layer]);
        if t == 1 {
            // Write, then read every filled slot: all of them lie within the window.
            kb.narrow(2, (pos % w) as i64, 1).copy_(k);
            vb.narrow(2, (pos % w) as i64, 1).copy_(v);
            let n = (pos + 1).min(w) as i64;
            return (kb.narrow(2, 0, n), vb.narrow(2, 0, n));
        }
        // Read the last m cached positions in order before this chunk overwrites them.
        let m = pos.min(w - 1);
        let past = slots(pos - m..pos);
        let keys = Tensor::cat(&[&kb.index_select(2, &past), k], 2); // (B, nkv, m + T, hs)
        let values = Tensor::cat(&[&vb.index_select(2, &past), v], 2);
        // Keep the last min(T, W) new positions.
        let keep = t.min(w);
        let idx = slots(pos + t - keep..pos + t);
        let _ = kb.index_copy_(2, &idx, &k.narrow(2, (t - keep) as i64, keep as i64));
        let _ = vb.index_copy_(2, &idx, &v.narrow(2, (t - keep) as i64, keep as i64));
        (keys, values)
    }

    pub(crate) fn set_len(&mut self, len: usize) {
        self.len = len;
    }
}
