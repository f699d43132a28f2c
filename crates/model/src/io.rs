//! Reading and writing model folders: `config.json` + `model.safetensors`.
//!
//! Two layouts share the same two file names. A `config.json` with a `model_type` is a
//! Hugging Face folder (GPT-2, Llama or Qwen2, mapped by `hf.rs`); anything else is our own
//! layout (a `ModelConfig` and tensors under our variable names), which stores every rung,
//! including mixed ones the Hub has no class for. Files are written to a temporary name
//! and renamed, so a crash never leaves a half-written model behind.
//!
//! A folder stores the architecture only; the caller chooses how to run it
//! ([`RunSettings`]). Native `config.json`s written before that split also carry
//! `attention`, `dtype` and `dropout`: they still load (those keys are ignored).
use crate::config::ModelConfig;
use crate::gpt::Gpt;
use crate::hf::{self, HfArch};
use crate::settings::RunSettings;
use crate::validate;
use anyhow::{bail, Context, Result};
use runtime::fsio::write_atomic;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn, Device, Tensor};

/// Which layout a folder is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Hf(HfArch),
    Native,
}

/// A model with its variables.
pub struct Loaded {
    pub vs: nn::VarStore,
    pub model: Gpt,
    pub layout: Layout,
}

/// Read `dir/config.json`: the layout and the model config it describes.
pub fn read_config(dir: &Path) -> Result<(Layout, ModelConfig)> {
    if !dir.is_dir() {
        bail!("model folder {} does not exist (expected a folder with config.json and model.safetensors)", dir.display());
    }
    let path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not valid JSON", path.display()))?;
    let (layout, cfg) = if v.get("model_type").is_some() {
        let (arch, cfg) = hf::config_from_hf(&v).with_context(|| format!("{}", path.display()))?;
        (Layout::Hf(arch), cfg)
    } else {
        let cfg = ModelConfig::from_json(&text).with_context(|| format!("{}", path.display()))?;
        (Layout::Native, cfg)
    };
    validate::check_bounds(&cfg, layout).with_context(|| format!("{}", path.display()))?;
    Ok((layout, cfg))
}

/// Load a folder in either layout onto `device`, to run with `settings`.
pub fn load(dir: &Path, settings: &RunSettings, device: Device) -> Result<Loaded> {
    let (layout, cfg) = read_config(dir)?;
    load_as(dir, layout, &cfg, settings, device)
}

/// Load weights from `dir` (in `layout`, as [`read_config`] found it) into a model built
/// from `cfg` and run with `settings`.
pub fn load_as(
    dir: &Path,
    layout: Layout,
    cfg: &ModelConfig,
    settings: &RunSettings,
    device: Device,
) -> Result<Loaded> {
    let path = dir.join("model.safetensors");
    let file = path.display().to_string();
    if !path.is_file() {
        bail!("{file} not found (expected the model's weights beside config.json)");
    }
    // Header, dtypes, shapes against the config, and memory: before any tensor exists.
    cfg.validate()?;
    validate::check_file(&path, layout, cfg)?;
    let tensors = Tensor::read_safetensors(&path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| {
            format!("{file}: not a readable safetensors file (truncated or corrupt?)")
        })?;
    let mut vs = nn::VarStore::new(device);
    let model = Gpt::new(&vs.root(), cfg, settings)?;
    let mut file_map: HashMap<String, Tensor> = tensors.into_iter().collect();
    for (k, t) in &file_map {
        if !matches!(layout, Layout::Hf(a) if hf::is_ignored_hub_key(a, k, cfg.tie_embeddings)) {
            validate::check_finite(k, t).with_context(|| format!("loading {file}"))?;
        }
    }
    match layout {
        Layout::Native => copy_native(&mut vs, &mut file_map),
        Layout::Hf(arch) => copy_hf(&mut vs, arch, cfg, &mut file_map),
    }
    .with_context(|| format!("loading {file}"))?;
    Ok(Loaded { vs, model, layout })
}

fn shape_str(s: &[i64]) -> String {
    format!("{s:?}")
}

pub(crate) fn take_checked(
    file: &mut HashMap<String, Tensor>,
    key: &str,
    expected: &[i64],
) -> Result<Tensor> {
    let t = file.remove(key).with_context(|| {
        format!(
            "missing tensor '{key}' (expected shape {})",
            shape_str(expected)
        )
    })?;
    if t.size() != expected {
        bail!(
            "tensor '{key}' has shape {}, expected {}",
            shape_str(&t.size()),
            shape_str(expected)
        );
    }
    Ok(t)
}

pub(crate) fn extra_error(file: &HashMap<String, Tensor>) -> Result<()> {
    if let Some((k, t)) = file.iter().min_by(|a, b| a.0.cmp(b.0)) {
        bail!(
            "unexpected tensor '{k}' with shape {} ({} unexpected in all): the file does not match the config",
            shape_str(&t.size()),
            file.len()
        );
    }
    Ok(())
}

fn copy_native(vs: &mut nn::VarStore, file: &mut HashMap<String, Tensor>) -> Result<()> {
    let vars: BTreeMap<String, Tensor> = vs.variables().into_iter().collect();
    tch::no_grad(|| -> Result<()> {
        for (name, mut var) in vars {
            let t = take_checked(file, &name, &var.size())?;
            var.copy_(&t);
        }
        Ok(())
    })?;
    extra_error(file)
}

fn copy_hf(
    vs: &mut nn::VarStore,
    arch: HfArch,
    cfg: &ModelConfig,
    file: &mut HashMap<String, Tensor>,
) -> Result<()> {
    let prefix = if arch == HfArch::Gpt2 && file.keys().any(|k| k.starts_with("transformer.")) {
        "transformer."
    } else {
        ""
    };
    file.retain(|k, _| !hf::is_ignored_hub_key(arch, k, cfg.tie_embeddings));
    let vars: HashMap<String, Tensor> = vs.variables().into_iter().collect();
    tch::no_grad(|| -> Result<()> {
        for m in hf::key_map(arch, cfg, prefix) {
            let mut var = vars
                .get(&m.ours)
                .with_context(|| format!("internal: no variable {}", m.ours))?
                .shallow_clone();
            let shape = var.size();
            let t = if m.hub.len() == 3 {
                // q, k, v rows of the fused weight [rows, n_embd] or bias [rows].
                let hs = cfg.head_dim() as i64;
                let (q, kv) = (cfg.n_head as i64 * hs, cfg.n_kv_heads as i64 * hs);
                let part = |rows: i64| {
                    let mut s = shape.clone();
                    s[0] = rows;
                    s
                };
                let parts = [
                    take_checked(file, &m.hub[0], &part(q))?,
                    take_checked(file, &m.hub[1], &part(kv))?,
                    take_checked(file, &m.hub[2], &part(kv))?,
                ];
                Tensor::cat(&parts, 0)
            } else if m.transposed {
                // GPT-2 Conv1D stores [in, out].
                take_checked(file, &m.hub[0], &[shape[1], shape[0]])?.tr()
            } else {
                take_checked(file, &m.hub[0], &shape)?
            };
            var.copy_(&t);
        }
        Ok(())
    })?;
    extra_error(file)
}

fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    // Row-major bytes whatever the in-memory layout (decode tuning may store a weight
    // column-major: `gemv.rs`); a no-op for contiguous tensors.
    let tensors: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.contiguous()))
        .collect();
    write_atomic(path, |tmp| {
        Tensor::write_safetensors(&tensors, tmp).map_err(|e| anyhow::anyhow!("{e}"))
    })
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    write_atomic(path, |tmp| {
        Ok(std::fs::write(
            tmp,
            serde_json::to_string_pretty(v)? + "\n",
        )?)
    })
}

/// Save in our own layout (any config).
pub fn save_native(vs: &nn::VarStore, cfg: &ModelConfig, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let vars: Vec<(String, Tensor)> = vars
        .into_iter()
        .map(|(k, t)| (k, t.detach().contiguous()))
        .collect();
    write_safetensors(&dir.join("model.safetensors"), &vars)?;
    write_json(&dir.join("config.json"), &serde_json::to_value(cfg)?)
}

/// Save in the Hugging Face layout of the config's architecture (GPT-2, Llama or Qwen2).
pub fn save_hf(vs: &nn::VarStore, cfg: &ModelConfig, dir: &Path) -> Result<()> {
    let Some(arch) = HfArch::for_config(cfg) else {
        bail!("this config has no Hugging Face layout (GPT-2 needs learned positions, LayerNorm, GELU, biases and MHA; Llama needs RoPE, RMSNorm, SwiGLU and no biases, Qwen2 the same with qkv_bias): save it in the native layout");
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let vars: HashMap<String, Tensor> = vs.variables().into_iter().collect();
    let prefix = if arch == HfArch::Gpt2 {
        "transformer."
    } else {
        ""
    };
    let mut out = Vec::new();
    for m in hf::key_map(arch, cfg, prefix) {
        let var = vars
            .get(&m.ours)
            .with_context(|| format!("internal: no variable {}", m.ours))?
            .detach();
        if m.hub.len() == 3 {
            for (k, t) in m.hub.iter().zip(hf::split_qkv(cfg, &var)) {
                out.push((k.clone(), t.contiguous()));
            }
        } else if m.transposed {
            out.push((m.hub[0].clone(), var.tr().contiguous()));
        } else {
            out.push((m.hub[0].clone(), var.contiguous()));
        }
    }
    write_safetensors(&dir.join("model.safetensors"), &out)?;
    write_json(&dir.join("config.json"), &hf::config_to_hf(arch, cfg))
}
