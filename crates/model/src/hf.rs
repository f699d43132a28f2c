//! Hugging Face interop: GPT-2 (`GPT2LMHeadModel`), Llama (`LlamaForCausalLM`), Qwen2
//! (`Qwen2ForCausalLM`), Mistral (`MistralForCausalLM`) and Mixtral (`MixtralForCausalLM`)
//! folders (`config.json` + `model.safetensors`), in and out; `hf_config.rs` reads and
//! writes their `config.json`.
//!
//! GPT-2 stores its projections as `Conv1D` with weights `[in, out]` (transposed here),
//! keys optionally prefixed `transformer.`, causal-mask buffers `attn.bias` /
//! `attn.masked_bias` (skipped) and a head tied to `wte`. Llama stores separate
//! `q/k/v_proj` (fused here into `c_attn`, in that order), `gate/up/down_proj`,
//! `input_layernorm`, `post_attention_layernorm`, `model.norm` and an optional `lm_head`.
//! Qwen2 (Bai et al. 2023) is the Llama layout plus `q/k/v_proj.bias` (fused into
//! `c_attn.bias`) and, in practice, an untied head; Mistral (Jiang et al. 2023) is the
//! Llama layout exactly, with a `sliding_window` in its config. Mixtral (Jiang et al. 2024)
//! is Mistral's attention with `block_sparse_moe.gate` and `block_sparse_moe.experts.{e}.
//! w1/w2/w3` in place of the MLP (the per-expert layout transformers writes; our variables
//! carry the same names, `moe.rs`).
use crate::config::{MlpKind, ModelConfig, NormKind, PosEmb};
use tch::Tensor;

pub use crate::hf_config::{config_from_hf, config_to_hf};

/// A Hub architecture we can read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HfArch {
    Gpt2,
    Llama,
    Qwen2,
    Mistral,
    Mixtral,
}

impl HfArch {
    /// The Hub layout a config can be saved in, if any (mixed rungs have none).
    pub fn for_config(cfg: &ModelConfig) -> Option<Self> {
        let gpt2 = cfg.pos_emb == PosEmb::Learned
            && cfg.norm == NormKind::LayerNorm
            && cfg.mlp == MlpKind::Gelu
            && cfg.bias
            && cfg.n_kv_heads == cfg.n_head;
        let llama = cfg.pos_emb == PosEmb::Rope
            && cfg.norm == NormKind::RmsNorm
            && cfg.mlp == MlpKind::SwiGlu
            && !cfg.bias;
        if cfg.is_moe() {
            let mixtral = llama && !cfg.qkv_bias && cfg.n_shared_experts == 0;
            return mixtral.then_some(HfArch::Mixtral);
        }
        match (gpt2, llama, cfg.qkv_bias, cfg.sliding_window) {
            (true, _, _, None) => Some(HfArch::Gpt2),
            (_, true, false, None) => Some(HfArch::Llama),
            (_, true, true, None) => Some(HfArch::Qwen2),
            (_, true, false, Some(_)) => Some(HfArch::Mistral),
            _ => None,
        }
    }

    /// Llama's layout (`model.layers.{i}.self_attn.q_proj`, …), which Qwen2 and Mistral share.
    pub fn is_llama_family(self) -> bool {
        !matches!(self, HfArch::Gpt2)
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
        HfArch::Llama | HfArch::Qwen2 | HfArch::Mistral | HfArch::Mixtral => {
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
                if cfg.qkv_bias {
                    m.push(KeyMap {
                        ours: format!("{o}.attn.c_attn.bias"),
                        hub: ["q", "k", "v"]
                            .iter()
                            .map(|x| format!("{h}.self_attn.{x}_proj.bias"))
                            .collect(),
                        transposed: false,
                    });
                }
                m.push(one(
                    format!("{o}.attn.c_proj.weight"),
                    format!("{h}.self_attn.o_proj.weight"),
                    false,
                ));
                if arch == HfArch::Mixtral {
                    let moe = "block_sparse_moe";
                    let mut names = vec!["gate".to_string()];
                    for e in 0..cfg.n_experts.unwrap_or(0) {
                        names.extend(["w1", "w2", "w3"].map(|w| format!("experts.{e}.{w}")));
                    }
                    for n in names {
                        m.push(one(
                            format!("{o}.{moe}.{n}.weight"),
                            format!("{h}.{moe}.{n}.weight"),
                            false,
                        ));
                    }
                    continue;
                }
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
        _ => key.ends_with("rotary_emb.inv_freq") || (tied && key == "lm_head.weight"),
    }
}

/// Split our fused qkv rows (weight or bias) back into the Hub's q, k, v (Llama family).
pub(crate) fn split_qkv(cfg: &ModelConfig, w: &Tensor) -> Vec<Tensor> {
    let hs = cfg.head_dim() as i64;
    let (q, kv) = (cfg.n_head as i64 * hs, cfg.n_kv_heads as i64 * hs);
    w.split_with_sizes([q, kv, kv], 0)
}
