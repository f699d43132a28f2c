//! Where the model comes from: a Hugging Face folder (`--model`), one of our training
//! checkpoints (`--checkpoint`), or a preset with random weights (`--preset`), plus the
//! tokenizer and special ids that go with it.
use anyhow::{bail, Context, Result};
use data::Tokenizer;
use model::io::Layout;
use model::{Attention, DType, Gpt, ModelConfig};
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind};

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub model: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
    pub preset: Option<String>,
    pub gqa: Option<usize>,
    pub attention: Attention,
    pub dtype: DType,
    pub device: Device,
    pub seed: i64,
}

pub struct Source {
    /// For reports: "preset gpt2_124m (random weights)", "model ../shared/models/stories260K", ...
    pub label: String,
    pub vs: nn::VarStore,
    pub model: Gpt,
    pub tokenizer: Option<Box<dyn Tokenizer>>,
    pub bos: Option<i64>,
    pub eos: Option<i64>,
    pub random_weights: bool,
}

/// The default when no source is given: GPT-2 small's shape, random weights.
pub const DEFAULT_PRESET: &str = "gpt2_124m";

fn check_gqa(gqa: Option<usize>, cfg: &ModelConfig, origin: &str) -> Result<()> {
    if let Some(g) = gqa {
        if g != cfg.n_kv_heads {
            bail!(
                "--gqa {g} conflicts with {origin}, which has n_kv_heads = {} (the number of key/value heads is fixed by the weights; drop --gqa)",
                cfg.n_kv_heads
            );
        }
    }
    Ok(())
}

/// `bos_token_id` / `eos_token_id` from a Hub config.json, if present.
fn special_ids(dir: &Path) -> (Option<i64>, Option<i64>) {
    let v: serde_json::Value = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    (
        v.get("bos_token_id").and_then(|x| x.as_i64()),
        v.get("eos_token_id").and_then(|x| x.as_i64()),
    )
}

/// Cast every floating variable to `kind` in place (weights for bf16 inference).
fn cast_vars(vs: &nn::VarStore, kind: Kind) {
    tch::no_grad(|| {
        for (_, mut v) in vs.variables() {
            if v.is_floating_point() && v.kind() != kind {
                v.set_data(&v.to_kind(kind));
            }
        }
    });
}

pub fn load(spec: &SourceSpec) -> Result<Source> {
    let run_time = |cfg: &mut ModelConfig| {
        cfg.attention = spec.attention;
        cfg.dtype = spec.dtype;
        cfg.dropout = 0.0;
    };
    let mut src = if let Some(dir) = &spec.model {
        let (layout, mut cfg) =
            model::io::read_config(dir).with_context(|| format!("--model {}", dir.display()))?;
        check_gqa(spec.gqa, &cfg, &format!("--model {}", dir.display()))?;
        run_time(&mut cfg);
        let loaded = model::io::load_as(dir, layout, &cfg, spec.device)
            .with_context(|| format!("--model {}", dir.display()))?;
        let gpt2 =
            layout == Layout::Hf(model::hf::HfArch::Gpt2) && cfg.vocab_size >= data::GPT2_VOCAB;
        let (bos, eos) = special_ids(dir);
        Source {
            label: format!("model {}", dir.display()),
            vs: loaded.vs,
            model: loaded.model,
            tokenizer: gpt2.then(|| Box::new(data::Gpt2Tokenizer) as Box<dyn Tokenizer>),
            bos,
            eos: eos.or(gpt2.then_some(data::GPT2_EOT as i64)),
            random_weights: false,
        }
    } else if let Some(dir) = &spec.checkpoint {
        let (layout, mut cfg) = model::io::read_config(dir)
            .with_context(|| format!("--checkpoint {}", dir.display()))?;
        check_gqa(spec.gqa, &cfg, &format!("--checkpoint {}", dir.display()))?;
        run_time(&mut cfg);
        let loaded = model::io::load_as(dir, layout, &cfg, spec.device)
            .with_context(|| format!("--checkpoint {}", dir.display()))?;
        let meta_path = dir.join("meta.json");
        let tokenizer = match data::Meta::read(&meta_path) {
            Ok(meta) => Some(meta.tokenizer()?),
            Err(_) => None,
        };
        let eos = tokenizer.as_ref().and_then(|t| t.eot()).map(i64::from);
        Source {
            label: format!("checkpoint {}", dir.display()),
            vs: loaded.vs,
            model: loaded.model,
            tokenizer,
            bos: None,
            eos,
            random_weights: false,
        }
    } else {
        let name = spec.preset.as_deref().unwrap_or(DEFAULT_PRESET);
        let mut cfg = ModelConfig::preset(name).map_err(|e| anyhow::anyhow!("--preset: {e}"))?;
        if let Some(g) = spec.gqa {
            if g == 0 || !cfg.n_head.is_multiple_of(g) {
                bail!("--gqa {g}: must divide the number of query heads, n_head = {} (e.g. 1 = MQA, {} = MHA)", cfg.n_head, cfg.n_head);
            }
            cfg.n_kv_heads = g;
        }
        run_time(&mut cfg);
        tch::manual_seed(spec.seed);
        let vs = nn::VarStore::new(spec.device);
        let model = Gpt::new(&vs.root(), &cfg)?;
        let gpt2 = cfg.vocab_size >= data::GPT2_VOCAB;
        Source {
            label: format!("preset {name} (random weights)"),
            vs,
            model,
            tokenizer: gpt2.then(|| Box::new(data::Gpt2Tokenizer) as Box<dyn Tokenizer>),
            bos: None,
            eos: None, // random weights: run the full --max-new-tokens
            random_weights: true,
        }
    };
    if spec.dtype == DType::Bf16 {
        cast_vars(&src.vs, Kind::BFloat16);
    }
    src.vs.freeze();
    Ok(src)
}
