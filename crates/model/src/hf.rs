//! Hugging Face interop: GPT-2 (`GPT2LMHeadModel`) and Llama (`LlamaForCausalLM`) folders
//! (`config.json` + `model.safetensors`), in and out.
//!
//! GPT-2 stores its projections as `Conv1D` with weights `[in, out]` (transposed here),
//! keys optionally prefixed `transformer.`, causal-mask buffers `attn.bias` /
//! `attn.masked_bias` (skipped) and a head tied to `wte`. Llama stores separate
//! `q/k/v_proj` (fused here into `c_attn`, in that order), `gate/up/down_proj`,
//! `input_layernorm`, `post_attention_layernorm`, `model.norm` and an optional `lm_head`.
use crate::config::{Attention, Mlp, ModelConfig, Norm, PosEmb};
use anyhow::{bail, Context, Result};
use runtime::DType;
use serde_json::{json, Value};
use tch::Tensor;

/// A Hub architecture we can read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfArch {
    Gpt2,
    Llama,
}

impl HfArch {
    /// The Hub layout a config can be saved in, if any (mixed rungs have none).
    pub fn for_config(cfg: &ModelConfig) -> Option<Self> {
        let gpt2 = cfg.pos_emb == PosEmb::Learned
            && cfg.norm == Norm::LayerNorm
            && cfg.mlp == Mlp::Gelu
            && cfg.bias
            && cfg.n_kv_heads == cfg.n_head;
        let llama = cfg.pos_emb == PosEmb::Rope
            && cfg.norm == Norm::RmsNorm
            && cfg.mlp == Mlp::SwiGlu
            && !cfg.bias;
        if gpt2 {
            Some(HfArch::Gpt2)
        } else if llama {
            Some(HfArch::Llama)
        } else {
            None
        }
    }
}

fn get_usize(v: &Value, key: &str) -> Result<usize> {
    v.get(key)
        .and_then(Value::as_u64)
        .map(|x| x as usize)
        .with_context(|| format!("config.json: key '{key}' missing or not a positive integer"))
}

fn get_f64_or(v: &Value, key: &str, default: f64) -> Result<f64> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_f64()
            .with_context(|| format!("config.json: key '{key}' must be a number, got {x}")),
    }
}

fn get_bool_or(v: &Value, key: &str, default: bool) -> Result<bool> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(x) => x
            .as_bool()
            .with_context(|| format!("config.json: key '{key}' must be a boolean, got {x}")),
    }
}

/// Read a Hub `config.json` (already parsed) into our config.
pub fn config_from_hf(v: &Value) -> Result<(HfArch, ModelConfig)> {
    let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
    let cfg = match model_type {
        "gpt2" => {
            let act = v
                .get("activation_function")
                .and_then(Value::as_str)
                .unwrap_or("gelu_new");
            if !matches!(act, "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast") {
                bail!("config.json: activation_function '{act}' not supported (expected gelu_new, the tanh GELU)");
            }
            let n_embd = get_usize(v, "n_embd")?;
            let n_head = get_usize(v, "n_head")?;
            let inner = match v.get("n_inner") {
                None | Some(Value::Null) => 4 * n_embd,
                Some(_) => get_usize(v, "n_inner")?,
            };
            ModelConfig {
                vocab_size: get_usize(v, "vocab_size")?,
                block_size: get_usize(v, "n_positions")?,
                n_layer: get_usize(v, "n_layer")?,
                n_head,
                n_kv_heads: n_head,
                n_embd,
                intermediate_size: inner,
                pos_emb: PosEmb::Learned,
                rope_theta: 10000.0,
                norm: Norm::LayerNorm,
                norm_eps: get_f64_or(v, "layer_norm_epsilon", 1e-5)?,
                mlp: Mlp::Gelu,
                attention: Attention::Sdpa,
                bias: true,
                tie_embeddings: get_bool_or(v, "tie_word_embeddings", true)?,
                dropout: 0.0,
                dtype: DType::Fp32,
            }
        }
        "llama" => {
            let act = v
                .get("hidden_act")
                .and_then(Value::as_str)
                .unwrap_or("silu");
            if act != "silu" {
                bail!("config.json: hidden_act '{act}' not supported (expected silu)");
            }
            if v.get("rope_scaling").is_some_and(|r| !r.is_null()) {
                bail!("config.json: rope_scaling is not supported (expected null or absent)");
            }
            if get_bool_or(v, "attention_bias", false)? || get_bool_or(v, "mlp_bias", false)? {
                bail!("config.json: attention_bias / mlp_bias are not supported (expected false)");
            }
            let n_embd = get_usize(v, "hidden_size")?;
            let n_head = get_usize(v, "num_attention_heads")?;
            if let Some(hd) = v.get("head_dim").and_then(Value::as_u64) {
                if hd as usize * n_head != n_embd {
                    bail!("config.json: head_dim {hd} × {n_head} heads != hidden_size {n_embd} (not supported)");
                }
            }
            let n_kv = match v.get("num_key_value_heads") {
                None | Some(Value::Null) => n_head,
                Some(_) => get_usize(v, "num_key_value_heads")?,
            };
            ModelConfig {
                vocab_size: get_usize(v, "vocab_size")?,
                block_size: get_usize(v, "max_position_embeddings")?,
                n_layer: get_usize(v, "num_hidden_layers")?,
                n_head,
                n_kv_heads: n_kv,
                n_embd,
                intermediate_size: get_usize(v, "intermediate_size")?,
                pos_emb: PosEmb::Rope,
                rope_theta: get_f64_or(v, "rope_theta", 10000.0)?,
                norm: Norm::RmsNorm,
                norm_eps: get_f64_or(v, "rms_norm_eps", 1e-6)?,
                mlp: Mlp::SwiGlu,
                attention: Attention::Sdpa,
                bias: false,
                tie_embeddings: get_bool_or(v, "tie_word_embeddings", false)?,
                dropout: 0.0,
                dtype: DType::Fp32,
            }
        }
        "" => bail!("config.json: no 'model_type' (expected \"gpt2\" or \"llama\")"),
        other => bail!(
            "config.json: model_type '{other}' not supported (expected \"gpt2\" or \"llama\")"
        ),
    };
    cfg.validate().context("config.json")?;
    Ok((
        HfArch::for_config(&cfg).expect("hub configs map to a hub arch"),
        cfg,
    ))
}

/// The Hub `config.json` for one of our configs.
pub fn config_to_hf(arch: HfArch, cfg: &ModelConfig) -> Value {
    match arch {
        HfArch::Gpt2 => json!({
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_ctx": cfg.block_size,
            "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "n_inner": cfg.intermediate_size, "activation_function": "gelu_new",
            "layer_norm_epsilon": cfg.norm_eps, "tie_word_embeddings": cfg.tie_embeddings,
            "bos_token_id": 50256, "eos_token_id": 50256, "torch_dtype": "float32",
        }),
        HfArch::Llama => json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama",
            "vocab_size": cfg.vocab_size, "max_position_embeddings": cfg.block_size,
            "hidden_size": cfg.n_embd, "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
            "num_key_value_heads": cfg.n_kv_heads, "rms_norm_eps": cfg.norm_eps,
            "rope_theta": cfg.rope_theta, "tie_word_embeddings": cfg.tie_embeddings,
            "hidden_act": "silu", "torch_dtype": "float32",
        }),
    }
}

/// One of our variables and the Hub tensors it is made of (several for the fused qkv).
pub(crate) struct KeyMap {
    pub ours: String,
    pub hub: Vec<String>,
    /// GPT-2 Conv1D: the Hub tensor is the transpose of ours.
    pub transposed: bool,
}

/// Map every variable of `cfg` to its Hub key(s). `prefix` is GPT-2's `transformer.` (or "").
pub(crate) fn key_map(arch: HfArch, cfg: &ModelConfig, prefix: &str) -> Vec<KeyMap> {
    let one = |ours: String, hub: String, transposed| KeyMap {
        ours,
        hub: vec![hub],
        transposed,
    };
    let mut m = Vec::new();
    match arch {
        HfArch::Gpt2 => {
            for n in ["wte.weight", "wpe.weight", "ln_f.weight", "ln_f.bias"] {
                m.push(one(n.into(), format!("{prefix}{n}"), false));
            }
            for i in 0..cfg.n_layer {
                for (layer, conv) in [
                    ("ln_1", false),
                    ("attn.c_attn", true),
                    ("attn.c_proj", true),
                    ("ln_2", false),
                    ("mlp.c_fc", true),
                    ("mlp.c_proj", true),
                ] {
                    for p in ["weight", "bias"] {
                        let n = format!("h.{i}.{layer}.{p}");
                        m.push(one(
                            n.clone(),
                            format!("{prefix}{n}"),
                            conv && p == "weight",
                        ));
                    }
                }
            }
        }
        HfArch::Llama => {
            m.push(one(
                "wte.weight".into(),
                "model.embed_tokens.weight".into(),
                false,
            ));
            m.push(one("ln_f.weight".into(), "model.norm.weight".into(), false));
            for i in 0..cfg.n_layer {
                let (o, h) = (format!("h.{i}"), format!("model.layers.{i}"));
                m.push(one(
                    format!("{o}.ln_1.weight"),
                    format!("{h}.input_layernorm.weight"),
                    false,
                ));
                m.push(one(
                    format!("{o}.ln_2.weight"),
                    format!("{h}.post_attention_layernorm.weight"),
                    false,
                ));
                m.push(KeyMap {
                    ours: format!("{o}.attn.c_attn.weight"),
                    hub: ["q", "k", "v"]
                        .iter()
                        .map(|x| format!("{h}.self_attn.{x}_proj.weight"))
                        .collect(),
                    transposed: false,
                });
                m.push(one(
                    format!("{o}.attn.c_proj.weight"),
                    format!("{h}.self_attn.o_proj.weight"),
                    false,
                ));
                for p in ["gate_proj", "up_proj", "down_proj"] {
                    m.push(one(
                        format!("{o}.mlp.{p}.weight"),
                        format!("{h}.mlp.{p}.weight"),
                        false,
                    ));
                }
            }
        }
    }
    if !cfg.tie_embeddings {
        m.push(one("lm_head.weight".into(), "lm_head.weight".into(), false));
    }
    m
}

/// Hub keys that are buffers, not weights: skipped on load.
pub(crate) fn is_ignored_hub_key(arch: HfArch, key: &str, tied: bool) -> bool {
    match arch {
        HfArch::Gpt2 => {
            key.ends_with(".attn.bias")
                || key.ends_with(".attn.masked_bias")
                || (tied && key == "lm_head.weight")
        }
        HfArch::Llama => key.ends_with("rotary_emb.inv_freq") || (tied && key == "lm_head.weight"),
    }
}

/// Split our fused qkv rows back into the Hub's q, k, v (Llama).
pub(crate) fn split_qkv(cfg: &ModelConfig, w: &Tensor) -> Vec<Tensor> {
    let hs = cfg.head_dim() as i64;
    let (q, kv) = (cfg.n_head as i64 * hs, cfg.n_kv_heads as i64 * hs);
    w.split_with_sizes([q, kv, kv], 0)
}
