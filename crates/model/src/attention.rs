//! Causal self-attention (Vaswani et al. 2017) with grouped key/value heads
//! (GQA, Ainslie et al. 2023: 1 KV head = MQA, n_head KV heads = MHA), two kernels —
//! an explicit masked softmax ("naive") and a fused one ("sdpa": on a CPU our own
//! FlashAttention-2-style kernels for training, prefill and decode where they apply,
//! `scaled_dot_product_attention` otherwise) — optional
//! RoPE, an optional sliding window (Mistral: each query sees the last W positions), and an
//! optional KV cache written at a position offset.
use crate::cache::KvCache;
use crate::config::{AttnKernel, ModelConfig};
use crate::layers::Linear;
use crate::rope::Rope;
use crate::settings::RunSettings;
use tch::{nn, nn::Module, Device, Kind, Tensor};

#[derive(Debug)]
pub struct CausalSelfAttention {
    /// Fused q, k, v projection: (n_head + 2·n_kv_heads)·hs outputs.
    pub c_attn: Linear,
    pub c_proj: Linear,
    n_head: i64,
    n_kv: i64,
    hs: i64,
    kernel: AttnKernel,
    dropout: f64,
    window: Option<usize>,
}

/// Boolean mask, true = may attend, for `t` queries at positions [pos, pos+t) over the `s`
/// keys ending with them (key `j` is at position pos + t − s + j): causal, and with a
/// `window` W only the W positions up to and including the query's own.
/// Bottom-right aligned, unlike SDPA's `is_causal` (top-left), so it is right for chunks too.
pub fn causal_mask(t: i64, s: i64, pos: i64, window: Option<usize>, device: Device) -> Tensor {
    let q = Tensor::arange(t, (Kind::Int64, device)).unsqueeze(1) + pos; // (T, 1)
    let k = Tensor::arange(s, (Kind::Int64, device)).unsqueeze(0) + (pos + t - s); // (1, S)
    let causal = k.le_tensor(&q); // (T, S)
    match window {
        Some(w) => causal.logical_and(&(q - k).lt(w as i64)), // q − k < W
        None => causal,
    }
}

/// (B, n_kv, S, hs) -> (B, n_kv·rep, S, hs): each KV head serves `rep` consecutive query heads.
fn repeat_kv(x: &Tensor, rep: i64) -> Tensor {
    if rep == 1 {
        return x.shallow_clone();
    }
    let (b, h, s, d) = x.size4().unwrap();
    x.unsqueeze(2)
        .expand([b, h, rep, s, d], false)
        .reshape([b, h * rep, s, d])
}

impl CausalSelfAttention {
    pub fn new(
        p: nn::Path,
        cfg: &ModelConfig,
        run: &RunSettings,
        std: f64,
        resid_std: f64,
    ) -> Self {
        let (d, hs) = (cfg.n_embd as i64, cfg.head_dim() as i64);
        let (nh, nkv) = (cfg.n_head as i64, cfg.n_kv_heads as i64);
        let k = run.dtype.kind();
        let qkv_bias = cfg.bias || cfg.qkv_bias;
        Self {
            c_attn: Linear::new(&p / "c_attn", d, (nh + 2 * nkv) * hs, qkv_bias, std, k),
            c_proj: Linear::new(&p / "c_proj", d, d, cfg.bias, resid_std, k),
            n_head: nh,
            n_kv: nkv,
            hs,
            kernel: run.kernel,
            dropout: run.dropout,
            window: cfg.sliding_window,
        }
    }

    /// x: (B, T, C) at positions [pos, pos+T). With a cache, keys/values of this layer are
    /// written into it and attention covers every cached position before and including these.
    pub fn forward_t(
        &self,
        x: &Tensor,
        pos: usize,
        rope: Option<&Rope>,
        cache: Option<(&mut KvCache, usize)>,
        train: bool,
    ) -> Tensor {
        let (b, t, c) = x.size3().unwrap();
        let (nh, nkv, hs) = (self.n_head, self.n_kv, self.hs);
        let qkv = self.c_attn.forward(x).view([b, t, nh + 2 * nkv, hs]); // (B, T, nh+2nkv, hs)
        let p_drop = if train { self.dropout } else { 0.0 };
        // Square causal attention with nothing between the projection and the kernel (no RoPE,
        // no cache, no dropout, a window no shorter than T): our kernel straight from the
        // packed projection, so its gradient is one buffer rather than three zero-filled ones.
        let plain = rope.is_none() && cache.is_none() && p_drop == 0.0;
        if plain && self.kernel == AttnKernel::Sdpa && self.window.is_none_or(|w| w as i64 >= t) {
            let scale = 1.0 / (hs as f64).sqrt();
            if let Some(y) = runtime::causal_attn::causal_attention_packed(&qkv, nh, nkv, scale) {
                // (B, nh, T, hs) over (B, T, nh, hs) memory: the transpose below is free.
                return self
                    .c_proj
                    .forward(&y.transpose(1, 2).contiguous().view([b, t, c]));
            }
        }

        // Rotate the q and k heads together, before they are split and transposed.
        let qk = qkv.narrow(2, 0, nh + nkv); // (B, T, nh+nkv, hs)
        let qk = match rope {
            Some(r) => r.apply_bthd(&qk, pos),
            None => qk,
        };
        let q = qk.narrow(2, 0, nh).transpose(1, 2); // (B, nh, T, hs)
        let k = qk.narrow(2, nh, nkv).transpose(1, 2); // (B, nkv, T, hs)
        let v = qkv.narrow(2, nh + nkv, nkv).transpose(1, 2); // (B, nkv, T, hs)
        let (k, v) = match cache {
            // (B, nkv, S, hs): S = pos+T, or fewer with a rolling (sliding-window) cache.
            Some((cache, layer)) => cache.update(layer, pos, &k, &v),
            None => (k, v),
        };
        let y = match self.kernel {
            AttnKernel::Naive => self.naive(&q, &k, &v, pos, p_drop, train),
            AttnKernel::Sdpa => self.sdpa(&q, &k, &v, pos, p_drop),
        }; // (B, nh, T, hs)
        let y = if t == 1 {
            y.reshape([b, t, c]) // (B, nh, 1, hs) is already (B, 1, C) in memory
        } else {
            y.transpose(1, 2).contiguous().view([b, t, c]) // (B, T, C)
        };
        let y = self.c_proj.forward(&y);
        if p_drop > 0.0 {
            y.dropout(p_drop, train)
        } else {
            y
        }
    }

    /// Explicit (T × S) scores, causal mask, softmax in f32.
    fn naive(&self, q: &Tensor, k: &Tensor, v: &Tensor, pos: usize, p: f64, train: bool) -> Tensor {
        let rep = self.n_head / self.n_kv;
        let (k, v) = (repeat_kv(k, rep), repeat_kv(v, rep)); // (B, nh, S, hs)
        let (t, s) = (q.size()[2], k.size()[2]);
        let scale = 1.0 / (self.hs as f64).sqrt();
        // The scale goes on q (B, nh, T, hs), not on the scores (B, nh, T, S): the same
        // product for a pass over hs/S as many elements, forward and backward
        // (results/speed/naive_attn_scale.txt). Filling the mask in place differed from
        // this by less than the VM's noise there; out of place, autograd never tracks an
        // in-place op on matmul's output (a view).
        let att = (q * scale).matmul(&k.transpose(-2, -1)); // (B, nh, T, S)
        let mask = causal_mask(t, s, pos as i64, self.window, q.device());
        let att = att
            .to_kind(Kind::Float)
            .masked_fill(&mask.logical_not(), f64::NEG_INFINITY);
        let att = att
            .softmax(-1, Kind::Float)
            .dropout(p, train)
            .to_kind(v.kind());
        att.matmul(&v) // (B, nh, T, hs)
    }

    /// `scaled_dot_product_attention`: the fused (flash / memory-efficient) kernels.
    fn sdpa(&self, q: &Tensor, k: &Tensor, v: &Tensor, pos: usize, p: f64) -> Tensor {
        let rep = self.n_head / self.n_kv;
        let (b, _, t, hs) = q.size4().unwrap();
        let s = k.size()[2];
        let window = self.window.filter(|&w| (w as i64) < s); // None: the mask is plain causal
        if t == 1 {
            // Decode: one query per sequence sees every cached key (with a window, the last W),
            // so no mask. Fold the `rep` query heads of each group into the query axis: K/V
            // are read once per KV head, never copied — the memory-bandwidth saving GQA is for.
            let (k, v) = match window {
                Some(w) => (
                    k.narrow(2, s - w as i64, w as i64),
                    v.narrow(2, s - w as i64, w as i64),
                ),
                None => (k.shallow_clone(), v.shallow_clone()),
            };
            // Our kernel where it applies (no autograd: inference mode only, as decode runs).
            if p == 0.0 && runtime::inference::is_enabled() {
                let scale = 1.0 / (hs as f64).sqrt();
                if let Some(y) = runtime::attn::decode_attention(q, &k, &v, scale) {
                    return y; // (B, nh, 1, hs)
                }
            }
            let qg = q.reshape([b, self.n_kv, rep, hs]); // (B, nkv, rep, hs)
            let y = Tensor::scaled_dot_product_attention::<Tensor>(
                &qg, &k, &v, None, p, false, None, false,
            );
            return y.reshape([b, self.n_head, 1, hs]); // (B, nh, 1, hs)
        }
        // K/V stay (B, nkv, S, hs): `enable_gqa` lets each KV head serve its `rep` query heads
        // (query head i reads KV head i / rep, as `repeat_kv` lays them out) without the
        // repeated copy, and its backward without the sum over copies (issue #16).
        let gqa = rep > 1;
        if s == t && window.is_none() {
            // Square (training, a prefill from position 0): on a CPU, our fused kernel where it
            // applies (forward and backward, `runtime::causal_attn`; results/speed/attn_train.txt);
            // else SDPA, whose top-left `is_causal` is exactly the causal mask.
            if p == 0.0 {
                let scale = 1.0 / (hs as f64).sqrt();
                if let Some(y) = runtime::causal_attn::causal_attention(q, k, v, scale) {
                    return y; // (B, nh, T, hs), a view of (B, T, nh, hs) memory
                }
            }
            Tensor::scaled_dot_product_attention::<Tensor>(q, k, v, None, p, true, None, gqa)
        } else {
            let mask = causal_mask(t, s, pos as i64, window, q.device());
            Tensor::scaled_dot_product_attention(q, k, v, Some(mask), p, false, None, gqa)
        }
    }
}
