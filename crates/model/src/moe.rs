//! Mixture-of-experts feed-forward block: a router and `n_experts` SwiGLU experts, each
//! token sent to its top-k experts (Mixtral, Jiang et al. 2024; the sparsely-gated layer of
//! Shazeer et al. 2017), plus optional shared experts every token passes through
//! (DeepSeekMoE, Dai et al. 2024), and the auxiliary load-balancing loss of the Switch
//! Transformer (Fedus et al. 2021) in the form Mixtral trains with.
//!
//! Routing follows Hugging Face's `MixtralSparseMoeBlock`: softmax over the router logits
//! (in f32), the top-k probabilities renormalised to sum to 1 (= a softmax over the k
//! selected logits), then each expert runs on the tokens routed to it (`index_select`) and
//! its weighted output is scattered back (`index_add`). Variable names are Mixtral's:
//! `block_sparse_moe.gate`, `block_sparse_moe.experts.{e}.w1` (gate), `w3` (up), `w2` (down);
//! the shared experts are `block_sparse_moe.shared_experts.{w1,w2,w3}`.
use crate::config::{ConfigError, MlpKind, ModelConfig};
use crate::layers::{Linear, SwiGlu};
use tch::{nn, nn::Module, Kind, Tensor};

/// `ModelConfig::validate`'s part for the mixture-of-experts keys: all or nothing, and
/// numbers that route; the message names the key.
pub(crate) fn validate(cfg: &ModelConfig) -> Result<(), ConfigError> {
    let err = |m: String| Err(ConfigError(m));
    let Some(n) = cfg.n_experts else {
        for (key, set) in [
            ("experts_per_token", cfg.experts_per_token.is_some()),
            ("n_shared_experts", cfg.n_shared_experts > 0),
            ("router_aux_loss_coef", cfg.router_aux_loss_coef.is_some()),
        ] {
            if set {
                return err(format!("{key} is set but n_experts is not: it only applies to a mixture of experts (set n_experts, or leave {key} out)"));
            }
        }
        return Ok(());
    };
    if n == 0 {
        return err(
            "n_experts must be at least 1, got 0; leave it out (null) for a dense MLP".into(),
        );
    }
    if cfg.mlp != MlpKind::SwiGlu {
        return err("n_experts needs mlp = \"swiglu\" (the experts are SwiGLU MLPs, as Mixtral's), got \"gelu\"".into());
    }
    if cfg.bias {
        return err(
            "n_experts needs bias = false (the router and experts have no biases, as Mixtral's)"
                .into(),
        );
    }
    match cfg.experts_per_token {
        None => return err(format!("experts_per_token must be set with n_experts = {n} (top-k routing; Mixtral uses 2)")),
        Some(0) => return err("experts_per_token must be at least 1, got 0".into()),
        Some(k) if k > n => return err(format!("experts_per_token ({k}) must be at most n_experts ({n}): a token cannot be routed to more experts than there are")),
        Some(_) => {}
    }
    if let Some(c) = cfg.router_aux_loss_coef {
        if !(c.is_finite() && c >= 0.0) {
            return err(format!(
                "router_aux_loss_coef must be a finite number ≥ 0, got {c}"
            ));
        }
    }
    Ok(())
}

/// The variables of layer `i`'s mixture of experts: (our key, shape, the config keys behind
/// it), for `validate::native_shapes`.
pub(crate) fn layer_shapes(cfg: &ModelConfig, i: usize) -> Vec<(String, Vec<i64>, &'static str)> {
    let (d, h) = (cfg.n_embd as i64, cfg.intermediate_size as i64);
    let p = format!("h.{i}.block_sparse_moe");
    let e = cfg.n_experts.unwrap_or(0);
    let mut out = vec![(
        format!("{p}.gate.weight"),
        vec![e as i64, d],
        "[n_experts, n_embd]",
    )];
    let mut swiglu = |q: String, h: i64, up: &'static str, down: &'static str| {
        out.push((format!("{q}.w1.weight"), vec![h, d], up));
        out.push((format!("{q}.w2.weight"), vec![d, h], down));
        out.push((format!("{q}.w3.weight"), vec![h, d], up));
    };
    for x in 0..e {
        let (up, down) = ("[intermediate_size, n_embd]", "[n_embd, intermediate_size]");
        swiglu(format!("{p}.experts.{x}"), h, up, down);
    }
    if cfg.n_shared_experts > 0 {
        let s = cfg.n_shared_experts as i64 * h;
        let up = "[n_shared_experts·intermediate_size, n_embd]";
        swiglu(
            format!("{p}.shared_experts"),
            s,
            up,
            "[n_embd, n_shared_experts·intermediate_size]",
        );
    }
    out
}

/// The MoE feed-forward block of one layer.
#[derive(Debug)]
pub struct Moe {
    /// The router: (n_embd) -> (n_experts) logits, no bias.
    pub gate: Linear,
    pub experts: Vec<SwiGlu>,
    /// The shared experts as one SwiGLU of hidden `n_shared_experts · intermediate_size`.
    pub shared: Option<SwiGlu>,
    /// Experts per token (top-k).
    pub k: i64,
}

/// A SwiGLU expert under Mixtral's names: `w1` = gate, `w3` = up, `w2` = down.
fn expert(p: nn::Path, d: i64, h: i64, k: Kind, std: f64, resid_std: f64) -> SwiGlu {
    SwiGlu {
        gate_proj: Linear::new(&p / "w1", d, h, false, std, k),
        up_proj: Linear::new(&p / "w3", d, h, false, std, k),
        down_proj: Linear::new(&p / "w2", h, d, false, resid_std, k),
    }
}

impl Moe {
    /// `cfg` must be a valid MoE config (`n_experts` and `experts_per_token` set).
    pub fn new(p: nn::Path, cfg: &ModelConfig, k: Kind, std: f64, resid_std: f64) -> Self {
        let (d, h) = (cfg.n_embd as i64, cfg.intermediate_size as i64);
        let n = cfg.n_experts.unwrap_or(1) as i64;
        let experts = (0..n)
            .map(|e| expert(&p / "experts" / e, d, h, k, std, resid_std))
            .collect();
        let s = cfg.n_shared_experts as i64;
        Self {
            gate: Linear::new(&p / "gate", d, n, false, std, k),
            experts,
            shared: (s > 0).then(|| expert(&p / "shared_experts", d, s * h, k, std, resid_std)),
            k: cfg.experts_per_token.unwrap_or(1) as i64,
        }
    }

    /// Output (same shape as `x`, in the compute dtype) and the router logits (N, E) in f32,
    /// N = the number of tokens in `x` (B·T).
    pub fn forward_routed(&self, x: &Tensor) -> (Tensor, Tensor) {
        let shape = x.size(); // (B, T, C)
        let c = shape[shape.len() - 1];
        let xs = x.reshape([-1, c]); // (N, C)
        let logits = self.gate.forward(&xs); // (N, E), compute dtype
        let kind = logits.kind();
        let logits = logits.to_kind(Kind::Float);
        let (w, sel) = route(&logits, self.k); // (N, k) each
        let w = w.to_kind(kind);
        let mut y = if self.dense_dispatch(xs.size()[0]) {
            self.dispatch_dense(&xs, &w, &sel)
        } else {
            self.dispatch_sparse(&xs, &w, &sel)
        };
        if let Some(s) = &self.shared {
            y += s.forward(&xs);
        }
        (y.reshape(shape.as_slice()), logits)
    }
}

impl Moe {
    /// Whether to run every expert on every token and weight the outputs by a combine
    /// matrix that is zero off the chosen experts. Same result as the sparse dispatch (a
    /// weight of exactly 0 adds nothing and passes no gradient to the expert), at
    /// `n_experts / k` times the active FLOPs but without the gather, scatter and host
    /// synchronisation per expert; it pays when that ratio is at most 2 and the batch has
    /// more than a few tokens (training and prefill of small models: 3.2× faster for the
    /// `8_moe` rung, 4 experts top-2). Decode (a few tokens) and wide routing go sparse.
    pub fn dense_dispatch(&self, n_tokens: i64) -> bool {
        n_tokens >= 64 && self.experts.len() as i64 <= 2 * self.k
    }

    /// All experts on all tokens: `y = Σ_e combine[:, e] · expert_e(xs)`.
    pub fn dispatch_dense(&self, xs: &Tensor, w: &Tensor, sel: &Tensor) -> Tensor {
        let n_e = self.experts.len() as i64;
        let (n, c) = (xs.size()[0], xs.size()[1]);
        let combine = Tensor::zeros([n, n_e], (w.kind(), w.device())).scatter(1, sel, w); // (N, E)
        let mut y = Tensor::zeros([n, c], (w.kind(), xs.device())); // (N, C)
        for (e, ex) in self.experts.iter().enumerate() {
            y += ex.forward(xs) * combine.narrow(1, e as i64, 1); // (N, C) · (N, 1)
        }
        y
    }

    /// Each expert on the tokens routed to it (`index_select`), scattered back (`index_add`).
    pub fn dispatch_sparse(&self, xs: &Tensor, w: &Tensor, sel: &Tensor) -> Tensor {
        let (n, c) = (xs.size()[0], xs.size()[1]);
        let mut y = Tensor::zeros([n, c], (w.kind(), xs.device())); // (N, C)
        for (e, ex) in self.experts.iter().enumerate() {
            let mask = sel.eq(e as i64); // (N, k): token n sends slot j to e
            let pos = mask.nonzero(); // (M, 2): (token, slot), row-major
            let tok = pos.select(1, 0); // (M,)
            let we = w.masked_select(&mask); // (M,), the same row-major order
                                             // An expert no token chose still runs (on 0 rows) so its gradients exist.
            let out = ex.forward(&xs.index_select(0, &tok)) * we.unsqueeze(-1); // (M, C)
            y = y.index_add(0, &tok, &out);
        }
        y
    }
}

impl Module for Moe {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_routed(x).0
    }
}

/// Mixtral's routing from router logits (N, E): the top-k of softmax(logits), renormalised
/// to sum to 1 over the k (f32, (N, k)), and the chosen experts ((N, k), int64).
pub fn route(logits: &Tensor, k: i64) -> (Tensor, Tensor) {
    let probs = logits.softmax(-1, Kind::Float); // (N, E)
    let (w, sel) = probs.topk(k, -1, true, true); // (N, k)
    let w = &w / w.sum_dim_intlist(-1, true, Kind::Float);
    (w, sel)
}

/// The load-balancing loss over every layer's router logits (each (N, E)), as Hugging
/// Face's `load_balancing_loss_func` computes it (no padding mask):
/// `E · Σ_e f_e · P_e`, where f_e is the fraction of (token, slot) pairs routed to expert e
/// per slot, summed over the k slots, and P_e the mean router probability of e, both over
/// all layers' tokens. Balanced routing gives k; all tokens on one expert gives up to k·E.
pub fn load_balancing_loss(router_logits: &[Tensor], n_experts: usize, k: usize) -> Tensor {
    let logits = Tensor::cat(router_logits, 0).to_kind(Kind::Float); // (L·N, E)
    let probs = logits.softmax(-1, Kind::Float); // (L·N, E)
    let (_, sel) = probs.topk(k as i64, -1, true, true); // (L·N, k)
    let mask = sel.one_hot(n_experts as i64).to_kind(Kind::Float); // (L·N, k, E)
    let f = mask.mean_dim(0, false, Kind::Float); // (k, E)
    let p = probs.mean_dim(0, false, Kind::Float); // (E,)
    (f * p.unsqueeze(0)).sum(Kind::Float) * n_experts as f64
}

/// How many (token, slot) assignments each expert got from one layer's router logits
/// (N, E) under top-k routing: E counts summing to N·k.
pub fn tokens_per_expert(router_logits: &Tensor, n_experts: usize, k: usize) -> Vec<i64> {
    let _g = tch::no_grad_guard();
    let (_, sel) = router_logits.topk(k as i64, -1, true, true); // (N, k)
    let counts = sel
        .reshape([-1])
        .bincount::<Tensor>(None, n_experts as i64)
        .to_kind(Kind::Int64)
        .to_device(tch::Device::Cpu);
    Vec::<i64>::try_from(counts).unwrap_or_default()
}
