//! Leaf layers: a Linear that computes in the model's precision, LayerNorm / RMSNorm,
//! and the feed-forward blocks (GPT-2's tanh-GELU MLP, SwiGLU from Shazeer 2020, and a
//! mixture of SwiGLU experts, `moe.rs`).
//!
//! Mixed precision the way autocast does it: parameters stay in their storage dtype
//! (fp32 master weights in training) and are cast to the compute dtype at use, so
//! gradients flow back into the fp32 weights. Norms compute in f32.
use crate::config::{MlpKind, ModelConfig, NormKind};
use crate::moe::Moe;
use tch::{nn, nn::Module as _, Kind, Tensor};

/// `y = x Wᵀ + b`, with `W` stored (out, in) and the matmul run in `compute` precision.
#[derive(Debug)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    compute: Kind,
    /// Set by `quant::quantize_model`: the matmul runs on the quantized weight instead.
    pub quant: Option<crate::quant::QLinear>,
}

impl Linear {
    pub fn new(
        p: nn::Path,
        in_dim: i64,
        out_dim: i64,
        bias: bool,
        std: f64,
        compute: Kind,
    ) -> Self {
        let weight = p.var(
            "weight",
            &[out_dim, in_dim],
            nn::Init::Randn {
                mean: 0.0,
                stdev: std,
            },
        );
        let bias = bias.then(|| p.var("bias", &[out_dim], nn::Init::Const(0.0)));
        Self {
            weight,
            bias,
            compute,
            quant: None,
        }
    }
}

impl nn::Module for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        let b = self.bias.as_ref().map(|b| b.to_kind(self.compute));
        if let Some(q) = &self.quant {
            let y = q.forward(&x.to_kind(self.compute));
            return match b {
                Some(b) => y + b,
                None => y,
            };
        }
        let w = self.weight.to_kind(self.compute);
        x.to_kind(self.compute).linear(&w, b.as_ref())
    }
}

/// LayerNorm (with or without bias) or RMSNorm; statistics in f32, output in the input dtype.
#[derive(Debug)]
pub struct Norm {
    kind: NormKind,
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    eps: f64,
    dim: i64,
}

impl Norm {
    pub fn new(p: nn::Path, cfg: &ModelConfig) -> Self {
        let dim = cfg.n_embd as i64;
        let weight = p.var("weight", &[dim], nn::Init::Const(1.0));
        let bias = (cfg.norm == NormKind::LayerNorm && cfg.bias)
            .then(|| p.var("bias", &[dim], nn::Init::Const(0.0)));
        Self {
            kind: cfg.norm,
            weight,
            bias,
            eps: cfg.norm_eps,
            dim,
        }
    }
}

impl nn::Module for Norm {
    fn forward(&self, x: &Tensor) -> Tensor {
        let out_kind = x.kind();
        let xf = x.to_kind(Kind::Float);
        let w = self.weight.to_kind(Kind::Float);
        let y = match self.kind {
            NormKind::LayerNorm => {
                let b = self.bias.as_ref().map(|b| b.to_kind(Kind::Float));
                xf.layer_norm([self.dim], Some(&w), b.as_ref(), self.eps, false)
            }
            // x / sqrt(mean(x²) + eps) · g   (no centering, no bias)
            NormKind::RmsNorm => {
                let ms = xf.square().mean_dim(-1, true, Kind::Float);
                xf * (ms + self.eps).rsqrt() * w
            }
        };
        y.to_kind(out_kind)
    }
}

/// GPT-2 MLP: `c_proj(gelu_tanh(c_fc(x)))`.
#[derive(Debug)]
pub struct GeluMlp {
    pub c_fc: Linear,
    pub c_proj: Linear,
}

/// SwiGLU: `down_proj(silu(gate_proj(x)) ⊙ up_proj(x))`.
#[derive(Debug)]
pub struct SwiGlu {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl nn::Module for SwiGlu {
    fn forward(&self, x: &Tensor) -> Tensor {
        let gate = self.gate_proj.forward(x).silu();
        self.down_proj.forward(&(gate * self.up_proj.forward(x)))
    }
}

/// The feed-forward block of a layer.
#[derive(Debug)]
pub enum Mlp {
    Gelu(GeluMlp),
    SwiGlu(SwiGlu),
    Moe(Moe),
}

impl Mlp {
    /// `resid_std` is the init std of the output projection (GPT-2 scales it by 1/sqrt(2L));
    /// the matmuls run in `k`. `p` is the block's path: the dense MLP lives under `mlp`,
    /// a mixture of experts under `block_sparse_moe` (Mixtral's name).
    pub fn new(p: nn::Path, cfg: &ModelConfig, k: Kind, std: f64, resid_std: f64) -> Self {
        if cfg.is_moe() {
            return Mlp::Moe(Moe::new(&p / "block_sparse_moe", cfg, k, std, resid_std));
        }
        let p = &p / "mlp";
        let (d, h) = (cfg.n_embd as i64, cfg.intermediate_size as i64);
        match cfg.mlp {
            MlpKind::Gelu => Mlp::Gelu(GeluMlp {
                c_fc: Linear::new(&p / "c_fc", d, h, cfg.bias, std, k),
                c_proj: Linear::new(&p / "c_proj", h, d, cfg.bias, resid_std, k),
            }),
            MlpKind::SwiGlu => Mlp::SwiGlu(SwiGlu {
                gate_proj: Linear::new(&p / "gate_proj", d, h, cfg.bias, std, k),
                up_proj: Linear::new(&p / "up_proj", d, h, cfg.bias, std, k),
                down_proj: Linear::new(&p / "down_proj", h, d, cfg.bias, resid_std, k),
            }),
        }
    }
}

impl Mlp {
    /// The output and, for a mixture of experts, its router logits (N, E) in f32.
    pub fn forward_routed(&self, x: &Tensor) -> (Tensor, Option<Tensor>) {
        match self {
            Mlp::Gelu(m) => (m.c_proj.forward(&m.c_fc.forward(x).gelu("tanh")), None),
            Mlp::SwiGlu(m) => (m.forward(x), None),
            Mlp::Moe(m) => {
                let (y, logits) = m.forward_routed(x);
                (y, Some(logits))
            }
        }
    }
}

impl nn::Module for Mlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.forward_routed(x).0
    }
}
