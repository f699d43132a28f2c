//! Checks a model folder before anything is allocated: the `model.safetensors` header is
//! read on its own (`st_header.rs`), every tensor's byte range and dtype is checked, and
//! every size in `config.json` is checked against the shapes the file actually holds,
//! against sane bounds, and against the memory there is. Only then are tensors created; their values are checked for
//! non-finite numbers as they are loaded ([`check_finite`]).
use crate::config::{MlpKind, ModelConfig, NormKind, PosEmb};
use crate::hf::{self, HfArch};
use crate::io::Layout;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::Tensor;

pub use crate::st_header::{read_header, TensorInfo, FLOAT_DTYPES};

/// A tensor the config implies: its key in the file, shape, and the config keys behind it.
#[derive(Debug, Clone)]
pub struct Expected {
    pub key: String,
    pub shape: Vec<i64>,
    pub dims: String,
}

/// The variables `Gpt::new` creates for `cfg`, with their shapes, in our naming.
pub fn native_shapes(cfg: &ModelConfig) -> Vec<Expected> {
    let (v, d, bs) = (
        cfg.vocab_size as i64,
        cfg.n_embd as i64,
        cfg.block_size as i64,
    );
    let (hs, nh, nkv) = (
        cfg.head_dim() as i64,
        cfg.n_head as i64,
        cfg.n_kv_heads as i64,
    );
    let h = cfg.intermediate_size as i64;
    let mut out = Vec::new();
    let mut push = |key: String, shape: Vec<i64>, dims: &str| {
        out.push(Expected {
            key,
            shape,
            dims: dims.into(),
        })
    };
    let norm_bias = cfg.norm == NormKind::LayerNorm && cfg.bias;
    push("wte.weight".into(), vec![v, d], "[vocab_size, n_embd]");
    if cfg.pos_emb == PosEmb::Learned {
        push("wpe.weight".into(), vec![bs, d], "[block_size, n_embd]");
    }
    let qkv = (nh + 2 * nkv) * hs;
    for i in 0..cfg.n_layer {
        let mut linear = |name: &str, out_dim: i64, in_dim: i64, dims: &str| {
            push(format!("h.{i}.{name}.weight"), vec![out_dim, in_dim], dims);
            if cfg.bias || (cfg.qkv_bias && name == "attn.c_attn") {
                let od = dims.split(',').next().unwrap_or("[").to_string() + "]";
                push(format!("h.{i}.{name}.bias"), vec![out_dim], &od);
            }
        };
        linear(
            "attn.c_attn",
            qkv,
            d,
            "[(n_head + 2·n_kv_heads)·n_embd/n_head, n_embd]",
        );
        linear("attn.c_proj", d, d, "[n_embd, n_embd]");
        if cfg.is_moe() {
            for (key, shape, dims) in crate::moe::layer_shapes(cfg, i) {
                push(key, shape, dims);
            }
        } else {
            match cfg.mlp {
                MlpKind::Gelu => {
                    linear("mlp.c_fc", h, d, "[intermediate_size, n_embd]");
                    linear("mlp.c_proj", d, h, "[n_embd, intermediate_size]");
                }
                MlpKind::SwiGlu => {
                    linear("mlp.gate_proj", h, d, "[intermediate_size, n_embd]");
                    linear("mlp.up_proj", h, d, "[intermediate_size, n_embd]");
                    linear("mlp.down_proj", d, h, "[n_embd, intermediate_size]");
                }
            }
        }
        for ln in ["ln_1", "ln_2"] {
            push(format!("h.{i}.{ln}.weight"), vec![d], "[n_embd]");
            if norm_bias {
                push(format!("h.{i}.{ln}.bias"), vec![d], "[n_embd]");
            }
        }
    }
    push("ln_f.weight".into(), vec![d], "[n_embd]");
    if norm_bias {
        push("ln_f.bias".into(), vec![d], "[n_embd]");
    }
    if !cfg.tie_embeddings {
        push("lm_head.weight".into(), vec![v, d], "[vocab_size, n_embd]");
    }
    out
}

/// Our config key names as a Hub `config.json` spells them.
fn hub_names(arch: HfArch, dims: &str) -> String {
    let table: &[(&str, &str)] = match arch {
        HfArch::Gpt2 => &[
            ("block_size", "n_positions"),
            ("intermediate_size", "n_inner"),
        ],
        HfArch::Llama | HfArch::Qwen2 | HfArch::Mistral | HfArch::Mixtral => &[
            ("n_experts", "num_local_experts"),
            ("n_kv_heads", "num_key_value_heads"),
            ("n_head", "num_attention_heads"),
            ("n_embd", "hidden_size"),
            ("block_size", "max_position_embeddings"),
            ("n_layer", "num_hidden_layers"),
        ],
    };
    table
        .iter()
        .fold(dims.to_string(), |s, (ours, hub)| s.replace(ours, hub))
}

/// The tensors a folder in `layout` must hold for `cfg`, under the file's own key names.
pub fn expected(
    cfg: &ModelConfig,
    layout: Layout,
    header: &BTreeMap<String, TensorInfo>,
) -> Vec<Expected> {
    let native = native_shapes(cfg);
    let Layout::Hf(arch) = layout else {
        return native;
    };
    let by_name: BTreeMap<&str, &Expected> = native.iter().map(|e| (e.key.as_str(), e)).collect();
    let prefix = if arch == HfArch::Gpt2 && header.keys().any(|k| k.starts_with("transformer.")) {
        "transformer."
    } else {
        ""
    };
    let hs = cfg.head_dim() as i64;
    let mut out = Vec::new();
    for m in hf::key_map(arch, cfg, prefix) {
        let Some(e) = by_name.get(m.ours.as_str()) else {
            continue;
        };
        let dims = hub_names(arch, &e.dims);
        if m.hub.len() == 3 {
            // The fused q/k/v weight [rows, n_embd] or bias [rows], split by rows.
            let rows = [cfg.n_head as i64 * hs, cfg.n_kv_heads as i64 * hs];
            let names = ["n_head", "n_kv_heads", "n_kv_heads"];
            let tail = if e.shape.len() == 2 { ", n_embd" } else { "" };
            for (i, k) in m.hub.iter().enumerate() {
                let mut shape = e.shape.clone();
                shape[0] = rows[i.min(1)];
                out.push(Expected {
                    key: k.clone(),
                    shape,
                    dims: hub_names(arch, &format!("[{}·head_dim{tail}]", names[i])),
                });
            }
        } else if m.transposed {
            let parts: Vec<&str> = e.dims.trim_matches(['[', ']']).split(", ").collect();
            out.push(Expected {
                key: m.hub[0].clone(),
                shape: vec![e.shape[1], e.shape[0]],
                dims: hub_names(arch, &format!("[{}, {}]", parts[1], parts[0])),
            });
        } else {
            out.push(Expected {
                key: m.hub[0].clone(),
                shape: e.shape.clone(),
                dims,
            });
        }
    }
    out
}

/// Upper bounds on the sizes a config may ask for (far above any model here; they keep a
/// hostile `config.json` from asking for terabytes before its weights are even opened).
pub const LIMITS: &[(&str, usize)] = &[
    ("vocab_size", 1 << 22),
    ("block_size", 1 << 22),
    ("n_layer", 1024),
    ("n_head", 1024),
    ("n_kv_heads", 1024),
    ("n_embd", 1 << 16),
    ("intermediate_size", 1 << 18),
    ("n_experts", 1024),
];

/// Check `cfg`'s sizes against [`LIMITS`] and its floats for finiteness; the error names
/// the key as `config.json` in `layout` spells it.
pub fn check_bounds(cfg: &ModelConfig, layout: Layout) -> Result<()> {
    let name = |ours: &str| match layout {
        Layout::Hf(arch) => hub_names(arch, ours),
        Layout::Native => ours.to_string(),
    };
    for &(key, max) in LIMITS {
        let v = match key {
            "vocab_size" => cfg.vocab_size,
            "block_size" => cfg.block_size,
            "n_layer" => cfg.n_layer,
            "n_head" => cfg.n_head,
            "n_kv_heads" => cfg.n_kv_heads,
            "n_embd" => cfg.n_embd,
            "n_experts" => cfg.n_experts.unwrap_or(0),
            _ => cfg.intermediate_size,
        };
        if v > max {
            bail!(
                "key '{}' = {v} is out of range (expected at most {max})",
                name(key)
            );
        }
    }
    let eps = match layout {
        Layout::Hf(HfArch::Gpt2) => "layer_norm_epsilon",
        Layout::Hf(_) => "rms_norm_eps",
        Layout::Native => "norm_eps",
    };
    if !(cfg.norm_eps.is_finite() && cfg.norm_eps < 1.0) {
        bail!(
            "key '{eps}' = {} is out of range (expected a small positive number)",
            cfg.norm_eps
        );
    }
    if !cfg.rope_theta.is_finite() {
        bail!("key 'rope_theta' = {} must be finite", cfg.rope_theta);
    }
    Ok(())
}

/// Memory this process may still take, from `/proc/meminfo` (`None` where unknown).
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Bytes loading `cfg` takes: fp32 variables, the RoPE tables, and the file itself.
pub fn load_bytes(cfg: &ModelConfig, file_bytes: u64) -> u64 {
    let params: u64 = native_shapes(cfg)
        .iter()
        .map(|e| e.shape.iter().map(|&d| d as u64).product::<u64>())
        .sum();
    let rope = if cfg.pos_emb == PosEmb::Rope {
        2 * cfg.block_size as u64 * cfg.head_dim() as u64 * 4
    } else {
        0
    };
    params * 4 + rope + file_bytes
}

/// Check the header of `file` against what `cfg` in `layout` needs, and that loading fits
/// in memory. Errors name the tensor, both shapes and the config keys behind the expected one.
pub fn check_file(file: &Path, layout: Layout, cfg: &ModelConfig) -> Result<()> {
    let header = read_header(file)?;
    let shown = file.display();
    let tied = cfg.tie_embeddings;
    let mut left: BTreeMap<&String, &TensorInfo> = header
        .iter()
        .filter(|(k, _)| match layout {
            Layout::Hf(arch) => !hf::is_ignored_hub_key(arch, k, tied),
            Layout::Native => true,
        })
        .collect();
    if let Some((k, t)) = left
        .iter()
        .find(|(_, t)| !FLOAT_DTYPES.contains(&t.dtype.as_str()))
    {
        bail!(
            "{shown}: tensor '{k}' has dtype {}; weights must be floating point ({})",
            t.dtype,
            FLOAT_DTYPES.join(", ")
        );
    }
    for e in expected(cfg, layout, &header) {
        let Some(t) = left.remove(&e.key) else {
            bail!(
                "{shown}: missing tensor '{}' (expected shape {:?} = {} from config.json)",
                e.key,
                e.shape,
                e.dims
            );
        };
        if t.shape != e.shape {
            bail!(
                "{shown}: tensor '{}' has shape {:?}, expected {:?} = {} from config.json",
                e.key,
                t.shape,
                e.shape,
                e.dims
            );
        }
    }
    if let Some((k, t)) = left.iter().next() {
        bail!(
            "{shown}: unexpected tensor '{k}' with shape {:?} ({} unexpected in all): the file does not match config.json (n_layer? tie_embeddings?)",
            t.shape,
            left.len()
        );
    }
    let file_bytes = std::fs::metadata(file).map_or(0, |m| m.len());
    let need = load_bytes(cfg, file_bytes);
    if let Some(avail) = available_memory().filter(|&a| need > a) {
        bail!(
            "{shown}: loading needs about {:.2} GB but only {:.2} GB of memory is available",
            need as f64 / 1e9,
            avail as f64 / 1e9
        );
    }
    Ok(())
}

/// An error when any value of `t` (tensor `key`) is NaN or infinite.
pub fn check_finite(key: &str, t: &Tensor) -> Result<()> {
    if !t.is_floating_point() {
        bail!(
            "tensor '{key}' has dtype {:?}; weights must be floating point",
            t.kind()
        );
    }
    let bad = t.numel() as i64 - t.isfinite().sum(tch::Kind::Int64).int64_value(&[]);
    if bad > 0 {
        bail!(
            "tensor '{key}' has {bad} non-finite values (NaN or infinite) of {}: the weights are corrupt",
            t.numel()
        );
    }
    Ok(())
}
