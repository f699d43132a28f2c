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
    pub(crate) wt: WeightT,
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
            wt: WeightT::default(),
        }
    }
}

/// `t` in `kind`, without a call into libtorch when it already is (the decode hot path
/// runs a few hundred small ops per token, so each avoided call counts).
pub(crate) fn as_kind(t: &Tensor, kind: Kind) -> Tensor {
    if t.kind() == kind {
        t.shallow_clone()
    } else {
        t.to_kind(kind)
    }
}

/// How a single row multiplies a weight under inference mode (`gemv::tune_for_decode`
/// picks one per weight shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowPath {
    /// `mv(W, x)` (gemv): the default.
    Mv,
    /// `x · Wᵀ` through `mm`.
    Mm,
    /// `runtime::gemv`, our streaming gemv, with the bias in the same pass.
    Stream,
}

/// `Wᵀ` as a view made once, for inference: `x · Wᵀ` through `mm` costs half of
/// `linear` on a decode step's few rows (no `t()` call, no 3-d folding per use). A single
/// row goes through `mv` (gemv), `mm` or our streaming gemv, whichever
/// `gemv::tune_for_decode` measured fastest on this machine for the weight's shape (none
/// wins everywhere: `mv` read bf16 weights faster on an AMX Xeon and slower on a Zen 4
/// EPYC); `mv` until tuned.
/// Used only under `runtime::InferenceMode`, where no graph is recorded; it follows the
/// weight's storage, so a `set_data` (a dtype or layout change) makes a fresh view.
#[derive(Debug, Default)]
pub(crate) struct WeightT {
    view: std::sync::Mutex<Option<(usize, Tensor)>>,
    /// A single row's [`RowPath`], as its index in [`RowPath::ALL`].
    row_path: std::sync::atomic::AtomicU8,
}

impl RowPath {
    const ALL: [RowPath; 3] = [RowPath::Mv, RowPath::Mm, RowPath::Stream];
}

impl WeightT {
    /// Send a single row through `path`.
    pub(crate) fn set_row_path(&self, path: RowPath) {
        let code = RowPath::ALL.iter().position(|&p| p == path).unwrap_or(0) as u8;
        self.row_path
            .store(code, std::sync::atomic::Ordering::Relaxed);
    }

    fn row_path(&self) -> RowPath {
        let code = self.row_path.load(std::sync::atomic::Ordering::Relaxed);
        RowPath::ALL[code as usize % RowPath::ALL.len()]
    }

    /// `x (…, in) · wᵀ (+ b)` -> (…, out), for `w` (out, in) and `b` already in `x`'s dtype.
    pub(crate) fn matmul(&self, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Tensor {
        let mut shape = x.size();
        let last = shape.len() - 1;
        let rows: i64 = shape[..last].iter().product();
        let (out, inp) = (w.size()[0], shape[last]);
        shape[last] = out;
        let add = |y: Tensor| match b {
            Some(b) => y + b,
            None => y,
        };
        let path = self.row_path();
        if rows == 1 && path != RowPath::Mm {
            let xv = x.reshape([inp]);
            let streamed = (path == RowPath::Stream)
                .then(|| runtime::gemv::gemv(w, &xv, b))
                .flatten();
            return match streamed {
                Some(y) => y.view(shape.as_slice()), // (…, out), bias included
                None => add(w.mv(&xv).view(shape.as_slice())), // (…, out)
            };
        }
        let ptr = w.data_ptr() as usize;
        let mut slot = self.view.lock().unwrap_or_else(|e| e.into_inner());
        let wt = match slot.as_ref() {
            Some((p, t)) if *p == ptr => t.shallow_clone(),
            _ => {
                let t = w.tr(); // (in, out) view
                *slot = Some((ptr, t.shallow_clone()));
                t
            }
        };
        drop(slot);
        add(x.reshape([rows, inp]).mm(&wt).view(shape.as_slice())) // (…, out)
    }
}

impl nn::Module for Linear {
    fn forward(&self, x: &Tensor) -> Tensor {
        let b = self.bias.as_ref().map(|b| as_kind(b, self.compute));
        let x = as_kind(x, self.compute);
        if let Some(q) = &self.quant {
            let y = q.forward(&x);
            return match b {
                Some(b) => y + b,
                None => y,
            };
        }
        if self.weight.kind() == self.compute && runtime::inference::is_enabled() {
            return self.wt.matmul(&x, &self.weight, b.as_ref());
        }
        x.linear(&as_kind(&self.weight, self.compute), b.as_ref())
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
        if self.kind == NormKind::LayerNorm
            && out_kind == Kind::BFloat16
            && self.weight.kind() == out_kind
            && runtime::inference::is_enabled()
        {
            // One call instead of five (three casts to f32, the norm, a cast back) per norm of
            // a bf16 decode step: libtorch's CPU layer_norm already computes bf16 in f32
            // (mean, variance and the affine map) and rounds once at the end.
            return x.layer_norm(
                [self.dim],
                Some(&self.weight),
                self.bias.as_ref(),
                self.eps,
                false,
            );
        }
        let xf = as_kind(x, Kind::Float);
        let w = as_kind(&self.weight, Kind::Float);
        let y = match self.kind {
            NormKind::LayerNorm => {
                let b = self.bias.as_ref().map(|b| as_kind(b, Kind::Float));
                xf.layer_norm([self.dim], Some(&w), b.as_ref(), self.eps, false)
            }
            // x / sqrt(mean(x²) + eps) · g   (no centering, no bias). Six small ops: on
            // one token that is half the cost of libtorch's composite `rms_norm`.
            NormKind::RmsNorm => {
                let mut ms = xf.square().mean_dim(-1, true, None::<Kind>); // f32 already
                if runtime::inference::is_enabled() {
                    // No graph to keep: update the fresh temporaries in place.
                    let _ = ms.g_add_scalar_(self.eps);
                    let _ = ms.rsqrt_();
                    let mut y = &xf * &ms;
                    let _ = y.g_mul_(&w);
                    y
                } else {
                    xf * (ms + self.eps).rsqrt() * w
                }
            }
        };
        as_kind(&y, out_kind)
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
            Mlp::Gelu(m) => {
                let h = runtime::gelu::gelu_tanh(&m.c_fc.forward(x)); // our kernel on a CPU
                (m.c_proj.forward(&h), None)
            }
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
