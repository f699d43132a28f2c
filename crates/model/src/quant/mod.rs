//! Weight-only quantization for inference: `int8` (symmetric absmax per output channel, as
//! LLM.int8's vector-wise scales, Dettmers et al. 2022, without the outlier split) and `int4`
//! with a scale and a zero per group of 32/64/128/256 input columns (llama.cpp's Q4_1;
//! gpt-fast's int4). The matmuls are libtorch's weight-only kernels, the ones gpt-fast uses:
//! `_weight_int8pack_mm`, `_weight_int4pack_mm_for_cpu` (CPU) and `_weight_int4pack_mm`
//! (CUDA tinygemm). Where a device has no kernel the layer dequantizes then multiplies and
//! says so in the log. Activations, norms, embeddings and the KV cache keep the model's dtype.
//!
//! How it plugs into the model (the smallest change to the model files): every `Linear`
//! carries `quant: Option<QLinear>` and `Gpt` carries `head_q: Option<QLinear>`. When set,
//! the forward uses it and the dense weight, freed to an empty tensor, is never read.
//! An enum `Linear::{Dense, Quant}` would make the type say it, but would touch every
//! constructor and every `.weight` access (HF mapping, init, optimizer); an `Option` beside
//! the weight keeps training and the loaders untouched, and a quantized model is still a
//! `Gpt`, so generation, the KV cache and every report work on it unchanged. A tied head
//! gets its own quantized copy of `wte`: the embedding lookup reads one row per token and
//! stays dense, the head reads the whole table every step and is quantized.
//!
//! `quantize_model` turns any loaded model (HF folder, checkpoint, preset) into a quantized
//! one; `store::{save, load}` write and read it (`model.safetensors` with codes and scales,
//! `config.json`, and `quant.json` naming the scheme), so a model is quantized once.
pub mod int4;
pub mod int8;
mod linear;
pub mod plan;
pub mod store;

pub use linear::{QLinear, QWeight};
pub use plan::planned_weight_bytes;
pub use store::{load, save, QuantFile};

use crate::gpt::Gpt;
use crate::layers::{Linear, Mlp};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// A quantization scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "lowercase")]
pub enum Scheme {
    Int8,
    Int4 { group_size: i64 },
}

impl Scheme {
    /// From `--quant int8|int4` and `--group-size N` (int4 only; default 32, as Q4_1).
    pub fn parse(name: &str, group_size: Option<i64>) -> Result<Self> {
        match (name, group_size) {
            ("int8", None) => Ok(Scheme::Int8),
            ("int8", Some(g)) => bail!("--group-size {g}: int8 has one scale per output channel, no groups (drop --group-size, or use --quant int4)"),
            ("int4", g) => {
                let g = g.unwrap_or(32);
                int4::check_group(g).context("--group-size")?;
                Ok(Scheme::Int4 { group_size: g })
            }
            (other, _) => bail!("--quant '{other}': expected int8 or int4"),
        }
    }

    /// "int8", "int4_g32", …
    pub fn label(&self) -> String {
        match self {
            Scheme::Int8 => "int8".into(),
            Scheme::Int4 { group_size } => format!("int4_g{group_size}"),
        }
    }

    /// Stored bits per weight, scales and zeros included (scales in `scale_bytes` each).
    pub fn bits_per_weight(&self, in_features: i64, scale_bytes: i64) -> f64 {
        match self {
            Scheme::Int8 => 8.0 + 8.0 * scale_bytes as f64 / in_features as f64,
            Scheme::Int4 { group_size } => 4.0 + 16.0 * scale_bytes as f64 / *group_size as f64,
        }
    }
}

/// Weights must be 2-D floating point.
pub(crate) fn check_weight(w: &Tensor) -> Result<()> {
    let size = w.size();
    if size.len() != 2 {
        bail!("quantize: expected a 2-D (out, in) weight, got shape {size:?}");
    }
    if !matches!(
        w.kind(),
        Kind::Float | Kind::BFloat16 | Kind::Half | Kind::Double
    ) {
        bail!(
            "quantize: weight dtype {:?} is not supported (expected fp32, bf16, fp16 or fp64)",
            w.kind()
        );
    }
    Ok(())
}

/// Every Linear of the model with its variable path (`h.0.attn.c_attn`, …).
pub fn linears_mut(model: &mut Gpt) -> Vec<(String, &mut Linear)> {
    let mut out = Vec::new();
    for (i, b) in model.h.iter_mut().enumerate() {
        let p = format!("h.{i}");
        out.push((format!("{p}.attn.c_attn"), &mut b.attn.c_attn));
        out.push((format!("{p}.attn.c_proj"), &mut b.attn.c_proj));
        match &mut b.mlp {
            Mlp::Gelu(m) => out.extend([
                (format!("{p}.mlp.c_fc"), &mut m.c_fc),
                (format!("{p}.mlp.c_proj"), &mut m.c_proj),
            ]),
            Mlp::SwiGlu(m) => out.extend([
                (format!("{p}.mlp.gate_proj"), &mut m.gate_proj),
                (format!("{p}.mlp.up_proj"), &mut m.up_proj),
                (format!("{p}.mlp.down_proj"), &mut m.down_proj),
            ]),
            // The router stays dense (small, and it decides the routing); the experts are
            // quantized like any MLP.
            Mlp::Moe(m) => {
                let q = format!("{p}.block_sparse_moe");
                for (e, x) in m.experts.iter_mut().enumerate() {
                    out.extend([
                        (format!("{q}.experts.{e}.w1"), &mut x.gate_proj),
                        (format!("{q}.experts.{e}.w3"), &mut x.up_proj),
                        (format!("{q}.experts.{e}.w2"), &mut x.down_proj),
                    ]);
                }
                if let Some(x) = &mut m.shared {
                    out.extend([
                        (format!("{q}.shared_experts.w1"), &mut x.gate_proj),
                        (format!("{q}.shared_experts.w3"), &mut x.up_proj),
                        (format!("{q}.shared_experts.w2"), &mut x.down_proj),
                    ]);
                }
            }
        }
    }
    out
}

/// Every Linear of the model, read-only (same order and names as [`linears_mut`]).
pub fn linears(model: &Gpt) -> Vec<(String, &Linear)> {
    let mut out: Vec<(String, &Linear)> = Vec::new();
    for (i, b) in model.h.iter().enumerate() {
        let p = format!("h.{i}");
        out.push((format!("{p}.attn.c_attn"), &b.attn.c_attn));
        out.push((format!("{p}.attn.c_proj"), &b.attn.c_proj));
        match &b.mlp {
            Mlp::Gelu(m) => out.extend([
                (format!("{p}.mlp.c_fc"), &m.c_fc),
                (format!("{p}.mlp.c_proj"), &m.c_proj),
            ]),
            Mlp::SwiGlu(m) => out.extend([
                (format!("{p}.mlp.gate_proj"), &m.gate_proj),
                (format!("{p}.mlp.up_proj"), &m.up_proj),
                (format!("{p}.mlp.down_proj"), &m.down_proj),
            ]),
            // The router stays dense (small, and it decides the routing); the experts are
            // quantized like any MLP.
            Mlp::Moe(m) => {
                let q = format!("{p}.block_sparse_moe");
                for (e, x) in m.experts.iter().enumerate() {
                    out.extend([
                        (format!("{q}.experts.{e}.w1"), &x.gate_proj),
                        (format!("{q}.experts.{e}.w3"), &x.up_proj),
                        (format!("{q}.experts.{e}.w2"), &x.down_proj),
                    ]);
                }
                if let Some(x) = &m.shared {
                    out.extend([
                        (format!("{q}.shared_experts.w1"), &x.gate_proj),
                        (format!("{q}.shared_experts.w3"), &x.up_proj),
                        (format!("{q}.shared_experts.w2"), &x.down_proj),
                    ]);
                }
            }
        }
    }
    out
}

/// Name of the quantized head in files ("lm_head" whether or not it is tied).
pub const HEAD: &str = "lm_head";

/// Device supported by the scheme's kernels or fallback.
fn check_device(d: tch::Device) -> Result<()> {
    match d {
        tch::Device::Cpu | tch::Device::Cuda(_) => Ok(()),
        d => bail!("quantize: device {d:?} is not supported (expected cpu or cuda)"),
    }
}

/// Quantize every Linear and the LM head in place, freeing their dense weights. With `pad`,
/// int4 widths the group size does not divide are zero-padded (logged); without, an error.
pub fn quantize_model(model: &mut Gpt, scheme: Scheme, pad: bool) -> Result<()> {
    if model.head_q.is_some() {
        bail!("quantize: this model is already quantized");
    }
    let kind = model.settings.dtype.kind();
    let device = model.wte.device();
    check_device(device)?;
    tch::no_grad(|| -> Result<()> {
        for (name, lin) in linears_mut(model) {
            let q = QLinear::quantize(&lin.weight, scheme, kind, pad)
                .with_context(|| format!("quantizing {name}.weight"))?;
            log_layer(&name, &q);
            lin.weight
                .set_data(&lin.weight.empty_like().narrow(0, 0, 0));
            lin.quant = Some(q);
        }
        let head = model.lm_head.as_ref().unwrap_or(&model.wte);
        let q = QLinear::quantize(head, scheme, kind, pad).context("quantizing the LM head")?;
        log_layer(HEAD, &q);
        if let Some(w) = &mut model.lm_head {
            w.set_data(&w.empty_like().narrow(0, 0, 0));
        }
        model.head_q = Some(q);
        Ok(())
    })
}

fn log_layer(name: &str, q: &QLinear) {
    if q.padded_in != q.in_features {
        tracing::info!(
            "{name}: input width {} zero-padded to {} for {}",
            q.in_features,
            q.padded_in,
            q.scheme().label()
        );
    }
    if !q.uses_kernel() {
        tracing::warn!(
            "{name}: no {} kernel on this device, dequantize-then-matmul",
            q.scheme().label()
        );
    }
}

/// Bytes of a model's weights: `dense` (every variable still held: embeddings, norms,
/// biases, unquantized weights) and `quantized` (codes + scales). `matmul` is what one
/// decode step reads for its matmuls: the quantized layers, or every dense Linear and head.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WeightBytes {
    pub dense: i64,
    pub quantized: i64,
    pub matmul: i64,
}

impl WeightBytes {
    pub fn total(&self) -> i64 {
        self.dense + self.quantized
    }
}

/// Count the bytes of `model`'s weights as stored in `vs`.
pub fn weight_bytes(vs: &tch::nn::VarStore, model: &Gpt) -> WeightBytes {
    let bytes = |t: &Tensor| t.numel() as i64 * t.kind().elt_size_in_bytes() as i64;
    let dense: i64 = vs.variables().values().map(bytes).sum();
    let head_dense = bytes(model.lm_head.as_ref().unwrap_or(&model.wte));
    let mut quantized = model.head_q.as_ref().map_or(0, QLinear::bytes);
    let mut matmul = model.head_q.as_ref().map_or(head_dense, QLinear::bytes);
    for (_, lin) in linears(model) {
        match &lin.quant {
            Some(q) => {
                quantized += q.bytes();
                matmul += q.bytes();
            }
            None => matmul += bytes(&lin.weight),
        }
    }
    WeightBytes {
        dense,
        quantized,
        matmul,
    }
}
