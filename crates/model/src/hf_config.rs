//! Hugging Face `config.json` ⇄ [`ModelConfig`] for GPT-2, Llama, Qwen2, Mistral and Mixtral
//! (transformers' `GPT2Config`, `LlamaConfig`, `Qwen2Config`, `MistralConfig`,
//! `MixtralConfig`: `num_local_experts`, `num_experts_per_tok`, `router_aux_loss_coef`). RoPE θ is read from `rope_theta` (transformers
//! 4) or `rope_parameters.rope_theta` (transformers 5), and both are written.
use crate::config::{MlpKind, ModelConfig, NormKind, PosEmb};
use crate::hf::HfArch;
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

const SUPPORTED: &str = "\"gpt2\", \"llama\", \"qwen2\", \"mistral\" or \"mixtral\"";

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

/// RoPE θ from `rope_theta` and/or `rope_parameters: {rope_type: "default", rope_theta}`.
fn rope_theta(v: &Value) -> Result<f64> {
    if v.get("rope_scaling").is_some_and(|r| !r.is_null()) {
        bail!("config.json: rope_scaling is not supported (expected null or absent)");
    }
    let top = match v.get("rope_theta") {
        None | Some(Value::Null) => None,
        Some(_) => Some(get_f64_or(v, "rope_theta", 0.0)?),
    };
    let nested = match v.get("rope_parameters") {
        None | Some(Value::Null) => None,
        Some(p) if p.is_object() => {
            let ty = p
                .get("rope_type")
                .and_then(Value::as_str)
                .unwrap_or("default");
            if ty != "default" {
                bail!("config.json: rope_parameters.rope_type '{ty}' is not supported (expected \"default\", plain RoPE)");
            }
            match p.get("rope_theta") {
                None | Some(Value::Null) => None,
                Some(x) => Some(x.as_f64().with_context(|| {
                    format!(
                        "config.json: key 'rope_parameters.rope_theta' must be a number, got {x}"
                    )
                })?),
            }
        }
        Some(x) => bail!("config.json: key 'rope_parameters' must be an object, got {x}"),
    };
    match (top, nested) {
        (Some(a), Some(b)) if a != b => bail!(
            "config.json: rope_theta = {a} but rope_parameters.rope_theta = {b} (expected one value)"
        ),
        (Some(t), _) | (None, Some(t)) => Ok(t),
        (None, None) => Ok(10000.0),
    }
}

fn gpt2(v: &Value) -> Result<ModelConfig> {
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
    Ok(ModelConfig {
        vocab_size: get_usize(v, "vocab_size")?,
        block_size: get_usize(v, "n_positions")?,
        n_layer: get_usize(v, "n_layer")?,
        n_head,
        n_kv_heads: n_head,
        n_embd,
        intermediate_size: inner,
        pos_emb: PosEmb::Learned,
        rope_theta: 10000.0,
        norm: NormKind::LayerNorm,
        norm_eps: get_f64_or(v, "layer_norm_epsilon", 1e-5)?,
        mlp: MlpKind::Gelu,
        bias: true,
        tie_embeddings: get_bool_or(v, "tie_word_embeddings", true)?,
        qkv_bias: false,
        sliding_window: None,
        n_experts: None,
        experts_per_token: None,
        n_shared_experts: 0,
        router_aux_loss_coef: None,
    })
}

/// Llama and its descendants: RoPE, RMSNorm, SwiGLU, GQA, no biases (but Qwen2's q/k/v),
/// full attention (but Mistral's `sliding_window`).
fn llama_family(v: &Value, arch: HfArch) -> Result<ModelConfig> {
    let act = v
        .get("hidden_act")
        .and_then(Value::as_str)
        .unwrap_or("silu");
    if act != "silu" {
        bail!("config.json: hidden_act '{act}' not supported (expected silu)");
    }
    let qkv_bias = match arch {
        HfArch::Qwen2 => {
            if get_bool_or(v, "use_sliding_window", false)? {
                bail!("config.json: use_sliding_window = true is not supported for qwen2 (expected false)");
            }
            true
        }
        _ => {
            if get_bool_or(v, "attention_bias", false)? || get_bool_or(v, "mlp_bias", false)? {
                bail!("config.json: attention_bias / mlp_bias are not supported (expected false)");
            }
            false
        }
    };
    let sliding_window = match (arch, v.get("sliding_window")) {
        (HfArch::Mistral | HfArch::Mixtral, Some(x)) if !x.is_null() => {
            Some(get_usize(v, "sliding_window")?)
        }
        _ => None,
    };
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
    Ok(ModelConfig {
        vocab_size: get_usize(v, "vocab_size")?,
        block_size: get_usize(v, "max_position_embeddings")?,
        n_layer: get_usize(v, "num_hidden_layers")?,
        n_head,
        n_kv_heads: n_kv,
        n_embd,
        intermediate_size: get_usize(v, "intermediate_size")?,
        pos_emb: PosEmb::Rope,
        rope_theta: rope_theta(v)?,
        norm: NormKind::RmsNorm,
        norm_eps: get_f64_or(v, "rms_norm_eps", 1e-6)?,
        mlp: MlpKind::SwiGlu,
        bias: false,
        tie_embeddings: get_bool_or(v, "tie_word_embeddings", false)?,
        qkv_bias,
        sliding_window,
        n_experts: None,
        experts_per_token: None,
        n_shared_experts: 0,
        router_aux_loss_coef: None,
    })
}

/// Mixtral: Mistral's attention and a mixture of `num_local_experts` SwiGLU experts, each
/// token routed to `num_experts_per_tok` of them.
fn mixtral(v: &Value) -> Result<ModelConfig> {
    let jitter = get_f64_or(v, "router_jitter_noise", 0.0)?;
    if jitter != 0.0 {
        bail!("config.json: router_jitter_noise = {jitter} is not supported (expected 0)");
    }
    let mut cfg = llama_family(v, HfArch::Mixtral)?;
    let (n, k) = (
        get_usize(v, "num_local_experts")?,
        get_usize(v, "num_experts_per_tok")?,
    );
    if n == 0 || k == 0 || k > n {
        bail!("config.json: num_experts_per_tok = {k} and num_local_experts = {n} do not route (expected 1 ≤ num_experts_per_tok ≤ num_local_experts)");
    }
    (cfg.n_experts, cfg.experts_per_token) = (Some(n), Some(k));
    cfg.router_aux_loss_coef = match v.get("router_aux_loss_coef") {
        None | Some(Value::Null) => None,
        Some(_) => Some(get_f64_or(v, "router_aux_loss_coef", 0.0)?),
    };
    Ok(cfg)
}

/// Read a Hub `config.json` (already parsed) into our config.
pub fn config_from_hf(v: &Value) -> Result<(HfArch, ModelConfig)> {
    let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
    let (arch, cfg) = match model_type {
        "gpt2" => (HfArch::Gpt2, gpt2(v)?),
        "llama" => (HfArch::Llama, llama_family(v, HfArch::Llama)?),
        "qwen2" => (HfArch::Qwen2, llama_family(v, HfArch::Qwen2)?),
        "mistral" => (HfArch::Mistral, llama_family(v, HfArch::Mistral)?),
        "mixtral" => (HfArch::Mixtral, mixtral(v)?),
        "" => bail!("config.json: no 'model_type' (expected {SUPPORTED})"),
        other => bail!("config.json: model_type '{other}' not supported (expected {SUPPORTED})"),
    };
    cfg.validate().context("config.json")?;
    // The layout is the model type's (a Mistral without a window saves as Llama, the same).
    Ok((arch, cfg))
}

/// The Hub `config.json` for one of our configs.
pub fn config_to_hf(arch: HfArch, cfg: &ModelConfig) -> Value {
    let llama_like = |class: &str, model_type: &str| {
        json!({
            "architectures": [class], "model_type": model_type,
            "vocab_size": cfg.vocab_size, "max_position_embeddings": cfg.block_size,
            "hidden_size": cfg.n_embd, "intermediate_size": cfg.intermediate_size,
            "num_hidden_layers": cfg.n_layer, "num_attention_heads": cfg.n_head,
            "num_key_value_heads": cfg.n_kv_heads, "rms_norm_eps": cfg.norm_eps,
            "rope_theta": cfg.rope_theta,
            "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "tie_word_embeddings": cfg.tie_embeddings,
            "hidden_act": "silu", "torch_dtype": "float32",
        })
    };
    match arch {
        HfArch::Gpt2 => json!({
            "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_ctx": cfg.block_size,
            "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "n_inner": cfg.intermediate_size, "activation_function": "gelu_new",
            "layer_norm_epsilon": cfg.norm_eps, "tie_word_embeddings": cfg.tie_embeddings,
            "bos_token_id": 50256, "eos_token_id": 50256, "torch_dtype": "float32",
        }),
        HfArch::Llama => llama_like("LlamaForCausalLM", "llama"),
        HfArch::Qwen2 => {
            let mut v = llama_like("Qwen2ForCausalLM", "qwen2");
            let extra = json!({
                "use_sliding_window": false, "sliding_window": null,
                "max_window_layers": cfg.n_layer,
            });
            if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
                o.extend(e.clone());
            }
            v
        }
        HfArch::Mistral => {
            let mut v = llama_like("MistralForCausalLM", "mistral");
            v["sliding_window"] = json!(cfg.sliding_window);
            v["head_dim"] = json!(cfg.head_dim());
            v
        }
        HfArch::Mixtral => {
            let mut v = llama_like("MixtralForCausalLM", "mixtral");
            v["sliding_window"] = json!(cfg.sliding_window);
            v["head_dim"] = json!(cfg.head_dim());
            v["num_local_experts"] = json!(cfg.n_experts);
            v["num_experts_per_tok"] = json!(cfg.experts_per_token);
            if let Some(c) = cfg.router_aux_loss_coef {
                v["router_aux_loss_coef"] = json!(c);
            }
            v["router_jitter_noise"] = json!(0.0);
            v["output_router_logits"] = json!(false);
            v
        }
    }
}
