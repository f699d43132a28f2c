//! Saving and loading a quantized model, so it is quantized once: a folder with
//! `config.json` (our native `ModelConfig`), `quant.json` (the scheme and every quantized
//! layer's shape) and `model.safetensors` holding the dense variables that remain plus, per
//! quantized layer `NAME`: `NAME.qweight` (int8 (N, K), or int4 nibbles uint8 (N, Kp/2),
//! even column in the high nibble) and `NAME.scales` (N,) or `NAME.scales_and_zeros`
//! (Kp/G, N, 2). The saved codes are device-independent; loading repacks them for the
//! device's kernel. Files are written through a temporary name, then renamed.
use super::{linears_mut, QLinear, QWeight, Scheme, HEAD};
use crate::config::ModelConfig;
use crate::gpt::Gpt;
use crate::io::{self, Layout, Loaded};
use crate::settings::RunSettings;
use anyhow::{bail, Context, Result};
use runtime::fsio::write_atomic;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

pub const QUANT_JSON: &str = "quant.json";
const FORMAT: &str = "ladder-quant/1";

/// `quant.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantFile {
    pub format: String,
    #[serde(flatten)]
    pub scheme: Scheme,
    /// Every quantized layer (`h.0.attn.c_attn`, …, `lm_head`) and its shape.
    pub layers: BTreeMap<String, LayerShape>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerShape {
    pub out_features: i64,
    pub in_features: i64,
    pub padded_in: i64,
}

fn shape(q: &QLinear) -> LayerShape {
    LayerShape {
        out_features: q.out_features,
        in_features: q.in_features,
        padded_in: q.padded_in,
    }
}

fn saved_tensors(name: &str, q: &QLinear) -> Result<Vec<(String, Tensor)>> {
    let codes = q.saved_codes()?.to_device(Device::Cpu);
    let scales = match &q.weight {
        QWeight::Int8 { scales, .. } => (format!("{name}.scales"), scales),
        QWeight::Int4 {
            scales_and_zeros, ..
        } => (format!("{name}.scales_and_zeros"), scales_and_zeros),
    };
    Ok(vec![
        (format!("{name}.qweight"), codes.contiguous()),
        (scales.0, scales.1.to_device(Device::Cpu).contiguous()),
    ])
}

/// Save a model quantized by `quantize_model` to `dir`.
pub fn save(vs: &nn::VarStore, model: &mut Gpt, dir: &Path) -> Result<QuantFile> {
    let Some(head) = &model.head_q else {
        bail!("save: the model is not quantized (call quant::quantize_model first)");
    };
    let scheme = head.scheme();
    let mut layers = BTreeMap::from([(HEAD.to_string(), shape(head))]);
    let mut out = saved_tensors(HEAD, head)?;
    for (name, lin) in linears_mut(model) {
        let q = lin
            .quant
            .as_ref()
            .with_context(|| format!("save: {name} is not quantized"))?;
        layers.insert(name.clone(), shape(q));
        out.extend(saved_tensors(&name, q)?);
    }
    let freed = |k: &str| {
        k.strip_suffix(".weight")
            .is_some_and(|l| layers.contains_key(l))
    };
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(k, _)| !freed(k))
        .map(|(k, t)| (k, t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(vars);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let qf = QuantFile {
        format: FORMAT.into(),
        scheme,
        layers,
    };
    write_atomic(&dir.join("model.safetensors"), |tmp| {
        Tensor::write_safetensors(&out, tmp).map_err(|e| anyhow::anyhow!("{e}"))
    })?;
    let json = |v: serde_json::Value| serde_json::to_string_pretty(&v).map(|s| s + "\n");
    let cfg = json(serde_json::to_value(&model.cfg)?)?;
    write_atomic(&dir.join("config.json"), |tmp| {
        Ok(std::fs::write(tmp, cfg)?)
    })?;
    let q = json(serde_json::to_value(&qf)?)?;
    write_atomic(&dir.join(QUANT_JSON), |tmp| Ok(std::fs::write(tmp, q)?))?;
    Ok(qf)
}

/// Read `dir/quant.json`, if the folder has one.
pub fn read_quant_json(dir: &Path) -> Result<Option<QuantFile>> {
    let path = dir.join(QUANT_JSON);
    if !path.is_file() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let qf: QuantFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a quant.json of this project", path.display()))?;
    if qf.format != FORMAT {
        bail!(
            "{}: format '{}', expected '{FORMAT}'",
            path.display(),
            qf.format
        );
    }
    Ok(Some(qf))
}

/// Load a quantized folder onto `device`.
pub fn load(dir: &Path, settings: &RunSettings, device: Device) -> Result<(Loaded, QuantFile)> {
    let (layout, cfg) = io::read_config(dir)?;
    if layout != Layout::Native {
        bail!(
            "{}: a quantized folder has our native config.json, not a Hugging Face one",
            dir.display()
        );
    }
    load_as(dir, &cfg, settings, device)
}

/// Load a quantized folder into a model built from `cfg` and run with `settings` (scales
/// are cast to `settings.dtype`).
pub fn load_as(
    dir: &Path,
    cfg: &ModelConfig,
    settings: &RunSettings,
    device: Device,
) -> Result<(Loaded, QuantFile)> {
    let qf = read_quant_json(dir)?.with_context(|| {
        format!(
            "{}: no {QUANT_JSON} (not a quantized model folder)",
            dir.display()
        )
    })?;
    let path = dir.join("model.safetensors");
    let file = path.display().to_string();
    let tensors = Tensor::read_safetensors(&path)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("{file}: not a readable safetensors file"))?;
    let mut map: HashMap<String, Tensor> = tensors.into_iter().collect();
    let vs = nn::VarStore::new(device);
    let mut model = Gpt::new(&vs.root(), cfg, settings)?;
    let kind = settings.dtype.kind();
    tch::no_grad(|| -> Result<()> {
        for (name, lin) in linears_mut(&mut model) {
            let (n, k) = lin.weight.size2()?;
            let q = take_layer(&mut map, &qf, &name, n, k, kind, device)?;
            lin.weight
                .set_data(&lin.weight.empty_like().narrow(0, 0, 0));
            lin.quant = Some(q);
        }
        let (v, d) = (cfg.vocab_size as i64, cfg.n_embd as i64);
        model.head_q = Some(take_layer(&mut map, &qf, HEAD, v, d, kind, device)?);
        if let Some(w) = &mut model.lm_head {
            w.set_data(&w.empty_like().narrow(0, 0, 0));
        }
        for (name, mut var) in vs.variables() {
            if var.numel() == 0 {
                continue; // a freed quantized weight
            }
            let t = io::take_checked(&mut map, &name, &var.size())?;
            var.copy_(&t);
        }
        io::extra_error(&map)
    })
    .with_context(|| format!("loading {file}"))?;
    if qf.layers.len() != linears_mut(&mut model).len() + 1 {
        bail!(
            "{}: {QUANT_JSON} lists {} layers, the model has {}",
            dir.display(),
            qf.layers.len(),
            linears_mut(&mut model).len() + 1
        );
    }
    let loaded = Loaded {
        vs,
        model,
        layout: Layout::Native,
    };
    Ok((loaded, qf))
}

fn take_layer(
    map: &mut HashMap<String, Tensor>,
    qf: &QuantFile,
    name: &str,
    n: i64,
    k: i64,
    kind: Kind,
    device: Device,
) -> Result<QLinear> {
    let s = qf
        .layers
        .get(name)
        .with_context(|| format!("{QUANT_JSON}: no entry for layer '{name}'"))?;
    if (s.out_features, s.in_features) != (n, k) {
        bail!(
            "{QUANT_JSON}: layer '{name}' is ({}, {}), the config says ({n}, {k})",
            s.out_features,
            s.in_features
        );
    }
    let mut take = |suffix: &str| {
        map.remove(&format!("{name}.{suffix}"))
            .with_context(|| format!("missing tensor '{name}.{suffix}'"))
    };
    let codes = take("qweight")?.to_device(device);
    let q = match qf.scheme {
        Scheme::Int8 => {
            QLinear::from_int8(codes, take("scales")?.to_kind(kind).to_device(device), k)?
        }
        Scheme::Int4 { group_size } => {
            if codes.kind() != Kind::Uint8 {
                bail!(
                    "tensor '{name}.qweight' is {:?}, expected uint8 nibbles",
                    codes.kind()
                );
            }
            let sz = take("scales_and_zeros")?.to_kind(kind).to_device(device);
            QLinear::from_int4_nibbles(&codes, sz, group_size, k, n)?
        }
    };
    if (q.out_features, q.in_features, q.padded_in) != (n, k, s.padded_in) {
        bail!("tensor '{name}.qweight' has shape {:?}, which does not fit layer ({n}, {k}) padded to {}", q.saved_codes()?.size(), s.padded_in);
    }
    Ok(q)
}
