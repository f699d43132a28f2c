//! Where the model comes from — a Hugging Face GPT-2 / Llama folder (`--model`), one of our
//! training checkpoints (`--checkpoint`, nanoGPT's `out_dir` with `meta.json`), or a preset
//! with random weights (`--preset`) — plus the tokenizer and the special ids that go with it.
//! (A little over 300 lines: resolving a source, loading it and finding its tokenizer and
//! special ids are one decision each way, kept together.)
use anyhow::{anyhow, bail, Context, Result};
use data::Tokenizer;
use model::io::Layout;
use model::{AttnKernel, Gpt, ModelConfig, PosEmb, RunSettings};
use runtime::DType;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tch::{nn, Device};

/// What the user asked for. At most one of `model`, `checkpoint`, `preset`; none = the
/// default preset ([`DEFAULT_PRESET`]).
#[derive(Debug, Clone)]
pub struct SourceSpec {
    pub model: Option<PathBuf>,
    pub checkpoint: Option<PathBuf>,
    pub preset: Option<String>,
    /// KV heads for a preset; for a folder it must match the file (or be left out).
    pub gqa: Option<usize>,
    pub attention: AttnKernel,
    pub dtype: DType,
    pub device: Device,
    /// Seed of a preset's random weights.
    pub seed: u64,
}

impl SourceSpec {
    /// A preset on the CPU in fp32 with SDPA, seed 1337.
    pub fn preset(name: &str) -> Self {
        Self {
            model: None,
            checkpoint: None,
            preset: Some(name.into()),
            gqa: None,
            attention: AttnKernel::Sdpa,
            dtype: DType::Fp32,
            device: Device::Cpu,
            seed: 1337,
        }
    }

    /// A Hugging Face folder on the CPU in fp32 with SDPA.
    pub fn model(dir: &Path) -> Self {
        Self {
            model: Some(dir.into()),
            preset: None,
            ..Self::preset(DEFAULT_PRESET)
        }
    }

    /// How the model runs: the kernel and dtype asked for, never dropout (inference).
    pub fn settings(&self) -> RunSettings {
        RunSettings {
            kernel: self.attention,
            dtype: self.dtype,
            dropout: 0.0,
        }
    }
}

/// A loaded model, ready to generate (variables frozen, cast to the run's dtype).
pub struct Source {
    /// For reports: "preset gpt2_124m (random weights)", "model ../shared/models/stories260K", …
    pub label: String,
    pub vs: nn::VarStore,
    pub model: Gpt,
    pub tokenizer: Option<Box<dyn Tokenizer>>,
    /// The id a prompt starts from when none is given and there is no tokenizer.
    pub bos: i64,
    /// Stop ids (empty for random weights: a speed run generates every token asked for).
    pub eos: Vec<i64>,
    pub random_weights: bool,
}

/// The default when no source is given: GPT-2 small's shape (124M), random weights.
pub const DEFAULT_PRESET: &str = "gpt2_124m";

/// The default prompt of a model with the GPT-2 tokenizer (as in the HF GPT-2 model card).
pub const GPT2_DEFAULT_PROMPT: &str = "Hello, I'm a language model,";

/// Set `n_kv_heads = g` (GQA-g; 1 = MQA, n_head = MHA), or say why it cannot be.
pub fn apply_gqa(cfg: &mut ModelConfig, g: usize) -> Result<()> {
    cfg.set_kv_heads(g)
        .map_err(|e| anyhow!("--gqa {g}: {}", e.0))
}

/// A model folder named on the command line.
#[derive(Debug, Clone, Copy)]
pub struct Folder<'a> {
    /// "--model" or "--checkpoint".
    pub flag: &'static str,
    pub dir: &'a Path,
    pub layout: Layout,
}

/// The model a spec describes: its architecture and, for a folder, where it is. Reads
/// `config.json` only, never the weights.
pub fn resolve(spec: &SourceSpec) -> Result<(ModelConfig, Option<Folder<'_>>)> {
    let folder = match (&spec.model, &spec.checkpoint) {
        (Some(_), Some(_)) => bail!("give either --model or --checkpoint, not both"),
        (Some(d), None) => Some(("--model", d.as_path())),
        (None, Some(d)) => Some(("--checkpoint", d.as_path())),
        (None, None) => None,
    };
    if folder.is_some() && spec.preset.is_some() {
        bail!("--preset builds a model with random weights; it cannot be combined with --model or --checkpoint");
    }
    let (cfg, folder) = match folder {
        Some((flag, dir)) => {
            let (layout, cfg) =
                model::io::read_config(dir).with_context(|| format!("{flag} {}", dir.display()))?;
            if let Some(g) = spec.gqa.filter(|&g| g != cfg.n_kv_heads) {
                bail!(
                    "--gqa {g} conflicts with {flag} {}, which has n_kv_heads = {} (the number of key/value heads is fixed by the weights; drop --gqa)",
                    dir.display(),
                    cfg.n_kv_heads
                );
            }
            (cfg, Some(Folder { flag, dir, layout }))
        }
        None => {
            let name = spec.preset.as_deref().unwrap_or(DEFAULT_PRESET);
            let mut cfg = ModelConfig::preset(name).map_err(|e| anyhow!("--preset: {e}"))?;
            if let Some(g) = spec.gqa {
                apply_gqa(&mut cfg, g)?;
            }
            (cfg, None)
        }
    };
    Ok((cfg, folder))
}

/// libtorch's generator is process-wide: every model is built under one lock, so a seeded
/// preset draws the same weights even while other threads (e.g. tests) build models.
static RANDOM_INIT: Mutex<()> = Mutex::new(());

/// Load the model (and its tokenizer) a spec describes.
pub fn load(spec: &SourceSpec) -> Result<Source> {
    let (cfg, folder) = resolve(spec)?;
    let settings = spec.settings();
    let mut src = match folder {
        Some(Folder { flag, dir, layout }) => {
            let ctx = || format!("{flag} {}", dir.display());
            let loaded = {
                // Building the model draws its (then overwritten) initial weights.
                let _lock = RANDOM_INIT.lock().unwrap_or_else(|e| e.into_inner());
                if model::quant::store::read_quant_json(dir)?.is_some() {
                    // Saved by `--save-quant`: codes and scales, repacked for the device.
                    model::quant::store::load_as(dir, &cfg, &settings, spec.device)
                        .with_context(ctx)?
                        .0
                } else {
                    model::io::load_as(dir, layout, &cfg, &settings, spec.device)
                        .with_context(ctx)?
                }
            };
            let tokenizer = folder_tokenizer(dir, layout, &cfg).with_context(ctx)?;
            let (bos, eos) = hub_special_ids(dir);
            let eos = match (eos.is_empty(), &tokenizer) {
                (false, _) => eos,
                (true, Some(t)) => t.eot().map(i64::from).into_iter().collect(),
                (true, None) => Vec::new(),
            };
            Source {
                label: format!("{} {}", &flag[2..], dir.display()),
                vs: loaded.vs,
                model: loaded.model,
                tokenizer,
                bos: bos.unwrap_or_else(|| default_bos(&cfg)),
                eos,
                random_weights: false,
            }
        }
        None => {
            let name = spec.preset.as_deref().unwrap_or(DEFAULT_PRESET);
            let vs = nn::VarStore::new(spec.device);
            let model = {
                let _lock = RANDOM_INIT.lock().unwrap_or_else(|e| e.into_inner());
                tch::manual_seed(spec.seed as i64);
                Gpt::new(&vs.root(), &cfg, &settings)?
            };
            Source {
                label: format!("preset {name} (random weights)"),
                vs,
                model,
                tokenizer: gpt2_vocab(cfg.vocab_size).then(gpt2),
                bos: default_bos(&cfg),
                eos: Vec::new(),
                random_weights: true,
            }
        }
    };
    if spec.dtype == DType::Bf16 {
        // Once, here, so the per-use casts inside the model are no-ops and the weights take
        // half the memory. As HF's `model.to(torch.bfloat16)`, the residual stream and the
        // cache are bf16 too; norms, RoPE and the naive softmax still compute in f32.
        src.vs.bfloat16();
    }
    src.vs.freeze();
    let (c, run) = (&src.model.cfg, &src.model.settings);
    tracing::info!(
        "{}: {} parameters, {} layers, {} heads ({} for K/V), context {}, {:?}, {:?} attention, tokenizer {}",
        src.label,
        model::accounting::param_count(c).total,
        c.n_layer,
        c.n_head,
        c.n_kv_heads,
        c.block_size,
        run.dtype,
        run.kernel,
        src.tokenizer.as_ref().map_or("none", |t| t.name())
    );
    Ok(src)
}

impl Source {
    /// Tokenise `text` with the model's tokenizer; an error when it has none.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>> {
        let Some(tok) = &self.tokenizer else {
            bail!(
                "--prompt: {} has no tokenizer (vocabulary of {} ids): use --prompt-ids instead, e.g. --prompt-ids {}",
                self.label,
                self.model.cfg.vocab_size,
                self.bos
            );
        };
        let ids = tok.encode(text).with_context(|| {
            format!(
                "--prompt: the text cannot be encoded with the {} tokenizer of {}",
                tok.name(),
                self.label
            )
        })?;
        Ok(ids.into_iter().map(i64::from).collect())
    }

    /// Ids to text, skipping stop ids; `None` without a tokenizer.
    pub fn decode(&self, ids: &[i64]) -> Option<String> {
        let tok = self.tokenizer.as_ref()?;
        let ids: Vec<u32> = ids
            .iter()
            .filter(|i| !self.eos.contains(i))
            .map(|&i| i as u32)
            .collect();
        Some(tok.decode(&ids))
    }

    /// The prompt used when none is given: GPT-2's [`GPT2_DEFAULT_PROMPT`], a newline for a
    /// character vocabulary that has one, else `[bos]` (the config's `bos_token_id`, or 1
    /// for Llama-style RoPE models and 0 otherwise).
    pub fn default_prompt(&self) -> Vec<i64> {
        let text = match self.tokenizer.as_ref().map(|t| t.name()) {
            Some("gpt2") => GPT2_DEFAULT_PROMPT,
            Some(_) => "\n",
            None => return vec![self.bos],
        };
        self.encode(text)
            .ok()
            .filter(|ids| !ids.is_empty())
            .unwrap_or_else(|| vec![self.bos])
    }
}

fn gpt2() -> Box<dyn Tokenizer> {
    Box::new(data::Gpt2Tokenizer)
}

/// GPT-2's 50257 ids, possibly padded up to a multiple of 64 (50304).
fn gpt2_vocab(v: usize) -> bool {
    (data::GPT2_VOCAB..=data::GPT2_VOCAB.next_multiple_of(64)).contains(&v)
}

/// Llama's `<s>` is 1; GPT-style vocabularies have no BOS, so start from id 0.
fn default_bos(cfg: &ModelConfig) -> i64 {
    if cfg.pos_emb == PosEmb::Rope {
        1
    } else {
        0
    }
}

/// A folder's tokenizer: its `meta.json` (our checkpoints), else GPT-2 BPE for a GPT-2
/// vocabulary that is not a Llama model's, else none.
fn folder_tokenizer(
    dir: &Path,
    layout: Layout,
    cfg: &ModelConfig,
) -> Result<Option<Box<dyn Tokenizer>>> {
    let meta = dir.join("meta.json");
    if meta.exists() {
        let tok = data::Meta::read(&meta)?.tokenizer()?;
        if tok.vocab_size() > cfg.vocab_size {
            bail!(
                "{}: the tokenizer has {} ids but the model only {}",
                meta.display(),
                tok.vocab_size(),
                cfg.vocab_size
            );
        }
        return Ok(Some(tok));
    }
    if layout == Layout::Native {
        tracing::warn!("{}: no meta.json, so no tokenizer", dir.display());
    }
    let llama = matches!(layout, Layout::Hf(a) if a.is_llama_family());
    Ok((gpt2_vocab(cfg.vocab_size) && !llama).then(gpt2))
}

/// `bos_token_id` and `eos_token_id` (a number or a list) from a Hub `config.json`.
fn hub_special_ids(dir: &Path) -> (Option<i64>, Vec<i64>) {
    let v: serde_json::Value = std::fs::read_to_string(dir.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let bos = v.get("bos_token_id").and_then(|x| x.as_i64());
    let eos = match v.get("eos_token_id") {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|x| x.as_i64()).collect(),
        Some(x) => x.as_i64().into_iter().collect(),
        None => Vec::new(),
    };
    (bos, eos)
}
