//! The decoder: token (+ learned position) embeddings, `n_layer` pre-norm blocks, a final
//! norm and the LM head (tied to the token embedding or not). GPT-2 (Radford et al. 2019)
//! at one end, Llama 3 (Meta 2024) at the other; `ModelConfig` picks every part and
//! `RunSettings` how it runs (kernel, compute dtype, dropout).
//!
//! Variable paths follow GPT-2's Hugging Face names without the `transformer.` prefix
//! (`wte`, `wpe`, `h.{i}.ln_1`, `h.{i}.attn.c_attn`, …; SwiGLU uses Llama's
//! `gate_proj`/`up_proj`/`down_proj`, a mixture of experts Mixtral's `h.{i}.block_sparse_moe.*`,
//! `moe.rs`); `hf.rs` maps to and from the Hub layouts.
use crate::attention::CausalSelfAttention;
use crate::cache::KvCache;
use crate::config::{ModelConfig, PosEmb};
use crate::layers::{Mlp, Norm};
use crate::rope::Rope;
use crate::settings::RunSettings;
use anyhow::{bail, Result};
use tch::{nn, nn::Module, Kind, Tensor};

/// One pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x)).
#[derive(Debug)]
pub struct Block {
    pub ln_1: Norm,
    pub attn: CausalSelfAttention,
    pub ln_2: Norm,
    pub mlp: Mlp,
    dropout: f64,
}

impl Block {
    fn new(p: nn::Path, cfg: &ModelConfig, run: &RunSettings) -> Self {
        let std = 0.02;
        // GPT-2: residual projections scaled by 1/sqrt(2·n_layer) (two per block).
        let resid_std = 0.02 / (2.0 * cfg.n_layer as f64).sqrt();
        Self {
            ln_1: Norm::new(&p / "ln_1", cfg),
            attn: CausalSelfAttention::new(&p / "attn", cfg, run, std, resid_std),
            ln_2: Norm::new(&p / "ln_2", cfg),
            mlp: Mlp::new(p, cfg, run.dtype.kind(), std, resid_std),
            dropout: run.dropout,
        }
    }

    pub fn forward(
        &self,
        x: &Tensor,
        pos: usize,
        rope: Option<&Rope>,
        cache: Option<(&mut KvCache, usize)>,
        train: bool,
    ) -> Tensor {
        self.forward_routed(x, pos, rope, cache, train).0
    }

    /// As [`Block::forward`], with a mixture of experts' router logits (N, E).
    pub fn forward_routed(
        &self,
        x: &Tensor,
        pos: usize,
        rope: Option<&Rope>,
        cache: Option<(&mut KvCache, usize)>,
        train: bool,
    ) -> (Tensor, Option<Tensor>) {
        let x = x + self
            .attn
            .forward_t(&self.ln_1.forward(x), pos, rope, cache, train);
        let (m, router) = self.mlp.forward_routed(&self.ln_2.forward(&x));
        let m = match train && self.dropout > 0.0 {
            true => m.dropout(self.dropout, train),
            false => m, // no call for a no-op (decode runs this per layer per token)
        };
        (x + m, router)
    }
}

/// What [`Gpt::train_loss`] returns: the loss to differentiate and its parts.
#[derive(Debug)]
pub struct TrainLoss {
    /// `ce + router_aux_loss_coef · aux` (just `ce` for a dense model).
    pub loss: Tensor,
    /// Mean cross-entropy (f32).
    pub ce: Tensor,
    /// The load-balancing loss over all layers (0 for a dense model).
    pub aux: Tensor,
    /// Per layer, the (token, slot) assignments each expert got (empty for a dense model).
    pub expert_tokens: Vec<Vec<i64>>,
}

/// The whole model. Its variables live in the `VarStore` it was built on.
#[derive(Debug)]
pub struct Gpt {
    pub cfg: ModelConfig,
    pub settings: RunSettings,
    pub wte: Tensor,
    pub wpe: Option<Tensor>,
    pub h: Vec<Block>,
    pub ln_f: Norm,
    pub lm_head: Option<Tensor>,
    /// Set by `quant::quantize_model`: the quantized head (a copy of `wte` when tied).
    pub head_q: Option<crate::quant::QLinear>,
    rope: Option<Rope>,
    pub(crate) head_t: crate::layers::WeightT,
}

impl Gpt {
    /// Build (and GPT-2-initialise) a model under `p` (usually `vs.root()`).
    /// `cfg` and `settings` must be valid (they are checked here).
    pub fn new(p: &nn::Path, cfg: &ModelConfig, settings: &RunSettings) -> Result<Self> {
        cfg.validate()?;
        settings.validate()?;
        let (v, d, bs) = (
            cfg.vocab_size as i64,
            cfg.n_embd as i64,
            cfg.block_size as i64,
        );
        let init = nn::Init::Randn {
            mean: 0.0,
            stdev: 0.02,
        };
        let wte = (p / "wte").var("weight", &[v, d], init);
        let wpe =
            (cfg.pos_emb == PosEmb::Learned).then(|| (p / "wpe").var("weight", &[bs, d], init));
        let h = (0..cfg.n_layer)
            .map(|i| Block::new(p / "h" / i, cfg, settings))
            .collect();
        let ln_f = Norm::new(p / "ln_f", cfg);
        let lm_head = (!cfg.tie_embeddings).then(|| (p / "lm_head").var("weight", &[v, d], init));
        let rope = (cfg.pos_emb == PosEmb::Rope)
            .then(|| Rope::new(cfg.head_dim(), cfg.block_size, cfg.rope_theta, p.device()));
        Ok(Self {
            cfg: cfg.clone(),
            settings: *settings,
            wte,
            wpe,
            h,
            ln_f,
            lm_head,
            head_q: None,
            rope,
            head_t: Default::default(),
        })
    }

    /// Hidden states after the final norm, (B, T, C), for tokens at [start_pos, start_pos+T).
    pub fn hidden(
        &self,
        idx: &Tensor,
        start_pos: usize,
        cache: Option<&mut KvCache>,
        train: bool,
    ) -> Result<Tensor> {
        self.hidden_routed(idx, start_pos, cache, train, None)
    }

    /// As [`Gpt::hidden`]; a mixture of experts pushes each layer's router logits (B·T, E)
    /// onto `router`.
    fn hidden_routed(
        &self,
        idx: &Tensor,
        start_pos: usize,
        mut cache: Option<&mut KvCache>,
        train: bool,
        mut router: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let (_b, t) = idx.size2()?;
        let t = t as usize;
        let end = start_pos + t;
        if end > self.cfg.block_size {
            bail!(
                "sequence reaches position {end}, past this model's context of {} (block_size)",
                self.cfg.block_size
            );
        }
        if let Some(c) = &cache {
            if c.len() != start_pos {
                bail!(
                    "KV cache holds {} positions but start_pos is {start_pos}",
                    c.len()
                );
            }
            if end > c.capacity() {
                bail!(
                    "KV cache capacity is {} positions, asked for {end}",
                    c.capacity()
                );
            }
        }
        let tok = Tensor::embedding(&self.wte, idx, -1, false, false); // (B, T, C)
        let x = match &self.wpe {
            Some(wpe) => {
                let pos =
                    Tensor::arange_start(start_pos as i64, end as i64, (Kind::Int64, idx.device()));
                tok + Tensor::embedding(wpe, &pos, -1, false, false) // (T, C) broadcast over B
            }
            None => tok,
        };
        let mut x = match train && self.settings.dropout > 0.0 {
            true => x.dropout(self.settings.dropout, train),
            false => x,
        };
        let rope = self.rope.as_ref();
        for (i, block) in self.h.iter().enumerate() {
            let c = cache.as_deref_mut().map(|c| (c, i));
            let (y, logits) = block.forward_routed(&x, start_pos, rope, c, train);
            x = y;
            if let (Some(r), Some(l)) = (router.as_deref_mut(), logits) {
                r.push(l);
            }
        }
        if let Some(c) = cache {
            c.set_len(end);
        }
        Ok(self.ln_f.forward(&x))
    }

    /// LM head: (…, C) -> (…, V) in the compute dtype.
    pub fn head(&self, h: &Tensor) -> Tensor {
        let k = self.settings.dtype.kind();
        let h = crate::layers::as_kind(h, k);
        if let Some(q) = &self.head_q {
            return q.forward(&h);
        }
        let w = self.lm_head.as_ref().unwrap_or(&self.wte);
        if w.kind() == k && runtime::inference::is_enabled() {
            return self.head_t.matmul(&h, w, None);
        }
        h.linear::<Tensor>(&crate::layers::as_kind(w, k), None)
    }

    /// Logits (B, T, V) for every position, in eval mode (no dropout).
    pub fn forward(
        &self,
        idx: &Tensor,
        start_pos: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        Ok(self.head(&self.hidden(idx, start_pos, cache, false)?))
    }

    /// Logits (B, V) of the last position only: what generation needs, without the
    /// (T × V) matmul over the whole prompt.
    pub fn forward_last(
        &self,
        idx: &Tensor,
        start_pos: usize,
        cache: Option<&mut KvCache>,
    ) -> Result<Tensor> {
        let h = self.hidden(idx, start_pos, cache, false)?;
        let t = h.size()[1];
        Ok(self.head(&h.select(1, t - 1)))
    }

    /// Training forward: logits (B, T, V) and the mean cross-entropy (f32) against `targets`.
    pub fn forward_loss(
        &self,
        idx: &Tensor,
        targets: &Tensor,
        train: bool,
    ) -> Result<(Tensor, Tensor)> {
        let logits = self.head(&self.hidden(idx, 0, None, train)?);
        let loss = logits_ce(&logits, targets);
        Ok((logits, loss))
    }

    /// The training objective (the cross-entropy, chunked for a large batch × vocabulary:
    /// `loss.rs`) plus, for a mixture of experts, `router_aux_loss_coef` × the
    /// load-balancing loss, with the per-expert token counts.
    pub fn train_loss(&self, idx: &Tensor, targets: &Tensor, train: bool) -> Result<TrainLoss> {
        let mut router = Vec::new();
        let h = self.hidden_routed(idx, 0, None, train, Some(&mut router))?;
        let ce = self.head_loss(&h, targets);
        let (Some(n), Some(k)) = (self.cfg.n_experts, self.cfg.experts_per_token) else {
            let aux = Tensor::zeros([], (Kind::Float, ce.device()));
            return Ok(TrainLoss {
                loss: ce.shallow_clone(),
                ce,
                aux,
                expert_tokens: Vec::new(),
            });
        };
        let aux = crate::moe::load_balancing_loss(&router, n, k);
        let expert_tokens = router
            .iter()
            .map(|l| crate::moe::tokens_per_expert(l, n, k))
            .collect();
        Ok(TrainLoss {
            loss: &ce + &aux * self.cfg.aux_loss_coef(),
            ce,
            aux,
            expert_tokens,
        })
    }

    /// Mean cross-entropy of the head over hidden states `h` (B, T, C) against `targets`
    /// (B, T), for training: chunked (`loss.rs`, the (B·T × V) logits never held at once) for
    /// a dense head whose f32 logits would pass `loss::CHUNK_ABOVE_BYTES`; else fused (the
    /// logits turned into their gradient in one pass, `loss::fused_cross_entropy`) where the
    /// CPU kernel applies; else through libtorch's loss on the full logits.
    fn head_loss(&self, h: &Tensor, targets: &Tensor) -> Tensor {
        let (c, rows) = (h.size()[2], targets.numel() as i64);
        if self.head_q.is_some() {
            return logits_ce(&self.head(h), targets);
        }
        let w = self.lm_head.as_ref().unwrap_or(&self.wte);
        let k = self.settings.dtype.kind();
        let (h2, t1) = (h.reshape([-1, c]), targets.view([-1]));
        if crate::loss::should_chunk(rows, self.cfg.vocab_size as i64) {
            return crate::loss::chunked_cross_entropy(&h2, w, &t1, k);
        }
        if let Some(loss) = crate::loss::fused_cross_entropy(&h2, w, &t1, k) {
            return loss;
        }
        logits_ce(&self.head(h), targets)
    }

    /// Mean cross-entropy only.
    pub fn loss(&self, idx: &Tensor, targets: &Tensor, train: bool) -> Result<Tensor> {
        Ok(self.forward_loss(idx, targets, train)?.1)
    }
}

/// Mean cross-entropy (f32) of logits (B, T, V) against `targets` (B, T).
fn logits_ce(logits: &Tensor, targets: &Tensor) -> Tensor {
    let v = logits.size()[2];
    logits
        .view([-1, v])
        .to_kind(Kind::Float)
        .cross_entropy_for_logits(&targets.view([-1]))
}
