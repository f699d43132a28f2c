//! The rungs of every ablation ladder as types, and the one place their names are spelled.
//!
//! A rung has a name (its binary is `<ladder>_<name>`, its results `<name>.csv` / `.json`),
//! the rung it is compared against, one line saying what it adds, and its change to the
//! typed model config and run settings, applied on top of the rungs before it. Rows and
//! records carry these types and serialise them (as the name) once, here. Adding a rung =
//! one variant below (the compiler then points at every `match` that must handle it) + one
//! binary of a few lines + its paragraph in docs/.
//!
//! Longer than most files on purpose: it is the one place that spells every rung of every
//! ladder, so both ladders (and their tests) stay together.
use model::{AttnKernel, MlpKind, ModelConfig, NormKind, PosEmb, RunSettings};
use runtime::{DType, Precision};

/// What a ladder's command line passes to its rungs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Knobs {
    /// Key/value heads of a GQA rung; `None` = the ladder's default (n_head / 2).
    pub gqa: Option<usize>,
}

/// One rung of a ladder.
pub trait Rung: Copy + Eq + std::fmt::Debug + 'static {
    /// Every rung of the ladder, in ladder order.
    fn all() -> &'static [Self];
    /// The name: `1_original`, `2_bf16`, …
    fn name(self) -> &'static str;
    /// The rung this one adds to (and is compared against); `None` for the first.
    fn previous(self) -> Option<Self>;
    /// One line: what this rung changes.
    fn describe(self) -> &'static str;
    /// This rung's own change, on top of `previous`'s.
    fn change(self, cfg: &mut ModelConfig, run: &mut RunSettings, knobs: &Knobs);

    /// Make this rung from a base: every earlier rung's change, then its own.
    fn apply(self, cfg: &mut ModelConfig, run: &mut RunSettings, knobs: &Knobs) {
        if let Some(p) = self.previous() {
            p.apply(cfg, run, knobs);
        }
        self.change(cfg, run, knobs);
    }

    /// The rung called `name`, if any.
    fn from_name(name: &str) -> Option<Self> {
        Self::all().iter().copied().find(|r| r.name() == name)
    }
}

/// An enum of rungs with their names, `ALL`, `Display`, `FromStr` and serde (as the name).
macro_rules! rungs {
    ($(#[$doc:meta])* $T:ident { $($(#[$vdoc:meta])* $V:ident => $name:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $T {
            $($(#[$vdoc])* $V),+
        }

        impl $T {
            pub const ALL: &'static [$T] = &[$($T::$V),+];

            pub fn name(self) -> &'static str {
                match self {
                    $($T::$V => $name),+
                }
            }
        }

        impl std::fmt::Display for $T {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $T {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$T as Rung>::from_name(s).ok_or_else(|| {
                    let names: Vec<&str> = $T::ALL.iter().map(|r| r.name()).collect();
                    format!("unknown rung '{s}' (expected one of: {})", names.join(", "))
                })
            }
        }

        impl serde::Serialize for $T {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> serde::Deserialize<'de> for $T {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

rungs! {
    /// The speed ladder: original → +bf16 → +SDPA (flash) → +KV cache → +GQA, and a side
    /// row (rung 1 with the unpadded vocabulary).
    SpeedRung {
        Original => "1_original",
        OriginalUnpadded => "1_original_unpadded",
        Bf16 => "2_bf16",
        Flash => "3_flash",
        KvCache => "4_kv_cache",
        Gqa => "5_gqa",
    }
}

rungs! {
    /// The accuracy ladder: GPT-2's parts → +RoPE → +RMSNorm → +SwiGLU, an optional +GQA,
    /// and the extension past Llama 3 (issue #14): +untied head → +q/k/v biases (Qwen) →
    /// +mixture of experts (Mixtral) at the same active parameters per token → +sliding-window
    /// attention (Mistral) with a window of a quarter of the context.
    AccuracyRung {
        Original => "1_original",
        Rope => "2_rope",
        RmsNorm => "3_rmsnorm",
        SwiGlu => "4_swiglu",
        Gqa => "5_gqa",
        Untied => "6_untied",
        QkvBias => "7_qkv_bias",
        Moe => "8_moe",
        SlidingWindow => "9_sliding_window",
    }
}

/// The mixture-of-experts rung: 4 experts, top-2 (Mixtral's k; 8 experts in Mixtral).
const MOE_EXPERTS: usize = 4;
const MOE_EXPERTS_PER_TOKEN: usize = 2;

/// GPT-2's vocabulary before padding to a multiple of 64.
const GPT2_VOCAB_UNPADDED: usize = 50257;

impl SpeedRung {
    /// The precision this rung asks for: rung 1 is fp32 and rung 2 is bf16 by definition
    /// (on a CPU that emulates bf16 it is measured anyway, on a reduced workload, to show
    /// the truth); the rungs after it run in the machine's fast precision. The speed
    /// harness resolves it on the machine and sets `RunSettings::dtype` from it.
    pub fn precision(self) -> Precision {
        use SpeedRung::*;
        match self {
            Original | OriginalUnpadded => Precision::Fp32,
            Bf16 => Precision::Bf16,
            Flash | KvCache | Gqa => Precision::Auto,
        }
    }

    /// Whether inference (prefill, decode) uses the KV cache.
    pub fn kv_cache(self) -> bool {
        matches!(self, SpeedRung::KvCache | SpeedRung::Gqa)
    }
}

impl Rung for SpeedRung {
    fn all() -> &'static [Self] {
        Self::ALL
    }
    fn name(self) -> &'static str {
        SpeedRung::name(self)
    }
    fn previous(self) -> Option<Self> {
        use SpeedRung::*;
        match self {
            Original => None,
            OriginalUnpadded | Bf16 => Some(Original),
            Flash => Some(Bf16),
            KvCache => Some(Flash),
            Gqa => Some(KvCache),
        }
    }
    fn describe(self) -> &'static str {
        use SpeedRung::*;
        match self {
            Original => "fp32, naive attention, vocabulary padded to a multiple of 64",
            OriginalUnpadded => "side row: rung 1 with the unpadded GPT-2 vocabulary (50257)",
            Bf16 => "+ bf16 mixed precision (fp32 master weights)",
            Flash => "+ SDPA (flash) attention",
            KvCache => "+ KV cache at inference",
            Gqa => "+ GQA: --gqa key/value heads (4 by default; 3 query heads share each of 12)",
        }
    }
    fn change(self, cfg: &mut ModelConfig, run: &mut RunSettings, knobs: &Knobs) {
        use SpeedRung::*;
        match self {
            Original => {
                *run = RunSettings {
                    kernel: AttnKernel::Naive,
                    dtype: DType::Fp32,
                    dropout: 0.0,
                }
            }
            OriginalUnpadded => cfg.vocab_size = GPT2_VOCAB_UNPADDED,
            Bf16 => run.dtype = DType::Bf16,
            Flash => run.kernel = AttnKernel::Sdpa,
            KvCache => {} // an inference-time choice: see `kv_cache`
            // `--gqa` was checked against the preset by `speed::main`.
            Gqa => cfg.n_kv_heads = knobs.gqa.unwrap_or((cfg.n_head / 2).max(1)),
        }
    }
}

impl AccuracyRung {
    /// The `[model]` keys this rung's own change sets (for the record of what it ran).
    fn keys(self) -> &'static [&'static str] {
        use AccuracyRung::*;
        match self {
            Original => &["pos_emb", "norm", "mlp"],
            Rope => &["pos_emb"],
            RmsNorm => &["norm"],
            SwiGlu => &["mlp", "intermediate_size"],
            Gqa => &["n_kv_heads"],
            Untied => &["tie_embeddings"],
            QkvBias => &["qkv_bias"],
            Moe => &[
                "n_experts",
                "experts_per_token",
                "intermediate_size",
                "router_aux_loss_coef",
            ],
            SlidingWindow => &["sliding_window"],
        }
    }

    /// Rungs 1-4, the default ladder (`just accuracy-ablation`); the rest are optional.
    pub fn is_default(self) -> bool {
        use AccuracyRung::*;
        matches!(self, Original | Rope | RmsNorm | SwiGlu)
    }

    /// What the rung set, as `model.key=value` lines (TOML values), rung by rung from the
    /// first: recorded with its results, so a later `--append` can check it ran the same.
    pub fn record(self, base: &ModelConfig, knobs: &Knobs) -> Vec<String> {
        let mut chain = vec![self];
        while let Some(p) = chain.last().and_then(|r| r.previous()) {
            chain.push(p);
        }
        let (mut cfg, mut run) = (base.clone(), RunSettings::default());
        let mut out = Vec::new();
        for r in chain.into_iter().rev() {
            r.change(&mut cfg, &mut run, knobs);
            let table = toml::Table::try_from(&cfg).unwrap_or_default();
            for k in r.keys() {
                if let Some(v) = table.get(*k) {
                    out.push(format!("model.{k}={v}"));
                }
            }
        }
        out
    }
}

impl Rung for AccuracyRung {
    fn all() -> &'static [Self] {
        Self::ALL
    }
    fn name(self) -> &'static str {
        AccuracyRung::name(self)
    }
    fn previous(self) -> Option<Self> {
        use AccuracyRung::*;
        match self {
            Original => None,
            Rope => Some(Original),
            RmsNorm => Some(Rope),
            SwiGlu => Some(RmsNorm),
            Gqa => Some(SwiGlu),
            Untied => Some(Gqa),
            QkvBias => Some(Untied),
            Moe => Some(QkvBias),
            SlidingWindow => Some(Moe),
        }
    }
    fn describe(self) -> &'static str {
        use AccuracyRung::*;
        match self {
            Original => {
                "learned positions, LayerNorm, GELU MLP (SDPA, the machine's fast precision)"
            }
            Rope => "+ rotary position embeddings instead of learned positions",
            RmsNorm => "+ RMSNorm instead of LayerNorm",
            SwiGlu => "+ SwiGLU MLP, hidden size matched to the GELU MLP's parameters",
            Gqa => "+ GQA with n_kv_heads = n_head / 2",
            Untied => "+ untied LM head (its own vocab × n_embd matrix, as Llama 3 and Qwen2)",
            QkvBias => "+ biases on the q, k, v projections only (Qwen)",
            Moe => "+ mixture of 4 SwiGLU experts, top-2 (Mixtral), each half as wide: the same active parameters per token",
            SlidingWindow => "+ sliding-window attention (Mistral), W = block_size / 4: each query sees the last W positions",
        }
    }
    fn change(self, cfg: &mut ModelConfig, _run: &mut RunSettings, knobs: &Knobs) {
        use AccuracyRung::*;
        match self {
            Original => {
                cfg.pos_emb = PosEmb::Learned;
                cfg.norm = NormKind::LayerNorm;
                cfg.mlp = MlpKind::Gelu;
            }
            Rope => cfg.pos_emb = PosEmb::Rope,
            RmsNorm => cfg.norm = NormKind::RmsNorm,
            SwiGlu => {
                cfg.mlp = MlpKind::SwiGlu;
                cfg.intermediate_size = model::config::swiglu_matched_hidden(cfg.intermediate_size);
            }
            Gqa => cfg.n_kv_heads = knobs.gqa.unwrap_or((cfg.n_head / 2).max(1)),
            Untied => cfg.tie_embeddings = false,
            QkvBias => cfg.qkv_bias = true,
            Moe => {
                let k = MOE_EXPERTS_PER_TOKEN;
                cfg.intermediate_size = model::config::moe_matched_hidden(cfg.intermediate_size, k);
                cfg.n_experts = Some(MOE_EXPERTS);
                cfg.experts_per_token = Some(k);
                cfg.router_aux_loss_coef = Some(model::config::DEFAULT_ROUTER_AUX_LOSS_COEF);
            }
            SlidingWindow => cfg.sliding_window = Some((cfg.block_size / 4).max(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrainConfig;
    use std::path::Path;

    fn names_round_trip<R>()
    where
        R: Rung + std::str::FromStr + serde::Serialize + serde::de::DeserializeOwned,
    {
        for &r in R::all() {
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.name()));
            assert_eq!(serde_json::from_str::<R>(&json).unwrap(), r);
            assert!(r.name().parse::<R>().is_ok_and(|p| p == r));
            // Every chain of `previous` ends at the first rung.
            let mut first = r;
            while let Some(p) = first.previous() {
                first = p;
            }
            assert_eq!(first, R::all()[0]);
        }
        assert!("0_nothing".parse::<R>().is_err());
    }

    #[test]
    fn names_serialise_as_themselves() {
        names_round_trip::<SpeedRung>();
        names_round_trip::<AccuracyRung>();
    }

    #[test]
    fn speed_rungs_add_one_thing_each() {
        let base = ModelConfig::gpt2_speed_cpu();
        let knobs = Knobs { gqa: Some(4) };
        let at = |r: SpeedRung| {
            let (mut cfg, mut run) = (base.clone(), RunSettings::default());
            r.apply(&mut cfg, &mut run, &knobs);
            (cfg, run)
        };
        use SpeedRung::*;
        assert_eq!(at(Original).1.kernel, AttnKernel::Naive);
        assert_eq!(at(Original).1.dtype, DType::Fp32);
        assert_eq!(at(OriginalUnpadded).0.vocab_size, 50257);
        assert_eq!(at(Bf16).1.dtype, DType::Bf16);
        assert_eq!(at(Bf16).1.kernel, AttnKernel::Naive);
        assert_eq!(at(Flash).1.kernel, AttnKernel::Sdpa);
        assert_eq!(at(KvCache), at(Flash));
        assert_eq!(at(Gqa).0.n_kv_heads, 4);
        assert_eq!(at(Gqa).0.vocab_size, base.vocab_size);
        assert!(KvCache.kv_cache() && Gqa.kv_cache() && !Flash.kv_cache());
    }

    /// The records of what each accuracy rung set are the ones committed with the results
    /// (made when rungs were `--set` strings), so `--append` still accepts them.
    #[test]
    fn accuracy_records_match_the_committed_results() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let base =
            TrainConfig::load(&root.join("experiments/shakespeare_char_cpu.toml"), &[]).unwrap();
        let cfg = base.architecture(65).unwrap();
        let mut checked = 0;
        for &r in AccuracyRung::ALL {
            let p = root.join(format!("results/accuracy/rungs/{r}.json"));
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            let want: Vec<String> = serde_json::from_value(v["overrides"].clone()).unwrap();
            assert_eq!(r.record(&cfg, &Knobs::default()), want, "{r}");
            checked += 1;
        }
        eprintln!("{checked} committed records checked");
        // And applying a rung edits the config it trains with.
        let mut swiglu = base.clone();
        swiglu
            .edit_model(|c, run| AccuracyRung::SwiGlu.apply(c, run, &Knobs::default()))
            .unwrap();
        let c = swiglu.architecture(65).unwrap();
        assert_eq!(
            (c.pos_emb, c.norm, c.mlp),
            (PosEmb::Rope, NormKind::RmsNorm, MlpKind::SwiGlu)
        );
        assert_eq!(c.intermediate_size, 344);
        for k in RunSettings::KEYS {
            assert_eq!(
                swiglu.model.get(k),
                base.model.get(k),
                "run setting {k} untouched"
            );
        }
        assert!(!swiglu.model.contains_key("vocab_size"));
    }

    /// The accuracy ladder's base config (`experiments/shakespeare_char_cpu.toml`).
    fn char_base() -> TrainConfig {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        TrainConfig::load(&root.join("experiments/shakespeare_char_cpu.toml"), &[]).unwrap()
    }

    /// The architecture rung `r` makes of `base` (65 characters).
    fn rung_arch(base: &TrainConfig, r: AccuracyRung) -> ModelConfig {
        let mut c = base.clone();
        c.edit_model(|m, run| r.apply(m, run, &Knobs::default()))
            .unwrap();
        c.architecture(65).unwrap()
    }

    /// The extension rungs (issue #14) each change one key on top of 5_gqa, and the
    /// training config carries it into the model it builds.
    #[test]
    fn extension_rungs_untie_the_head_then_add_qkv_biases() {
        let base = char_base();
        let arch = |r: AccuracyRung| rung_arch(&base, r);
        let (gqa, untied, qkv) = (
            arch(AccuracyRung::Gqa),
            arch(AccuracyRung::Untied),
            arch(AccuracyRung::QkvBias),
        );
        assert!(gqa.tie_embeddings && !gqa.qkv_bias);
        assert_eq!(
            untied,
            ModelConfig {
                tie_embeddings: false,
                ..gqa.clone()
            }
        );
        assert_eq!(
            qkv,
            ModelConfig {
                qkv_bias: true,
                ..untied.clone()
            }
        );
        let cfg = base.architecture(65).unwrap();
        let rec = AccuracyRung::QkvBias.record(&cfg, &Knobs::default());
        let tail: Vec<&str> = rec.iter().rev().take(2).map(String::as_str).collect();
        assert_eq!(tail, ["model.qkv_bias=true", "model.tie_embeddings=false"]);
        assert!(!AccuracyRung::Untied.is_default() && AccuracyRung::SwiGlu.is_default());
    }

    /// 8_moe: 4 experts top-2, each half as wide as 7_qkv_bias's MLP, so a token uses the
    /// dense rung's parameters (plus the router's n_embd × 4 per layer) while the model
    /// holds about twice the MLP parameters.
    #[test]
    fn moe_rung_matches_the_dense_rungs_active_parameters() {
        use model::accounting::param_count;
        let base = char_base();
        let arch = |r: AccuracyRung| rung_arch(&base, r);
        let (dense, moe) = (arch(AccuracyRung::QkvBias), arch(AccuracyRung::Moe));
        assert_eq!((moe.n_experts, moe.experts_per_token), (Some(4), Some(2)));
        assert_eq!(moe.intermediate_size, dense.intermediate_size / 2);
        assert!(moe.qkv_bias && !moe.tie_embeddings);
        let (d, m) = (param_count(&dense), param_count(&moe));
        let router = moe.n_layer * moe.n_embd * 4;
        assert_eq!(m.active, d.total + router);
        assert!(m.total > d.total + d.total / 4, "{m:?} vs {d:?}");
        let rec = AccuracyRung::Moe.record(&base.architecture(65).unwrap(), &Knobs::default());
        let tail: Vec<&str> = rec.iter().rev().take(4).map(String::as_str).collect();
        assert_eq!(
            tail,
            [
                "model.router_aux_loss_coef=0.01",
                "model.intermediate_size=172",
                "model.experts_per_token=2",
                "model.n_experts=4"
            ]
        );
        // 9_sliding_window: the same model (parameters and all) with a window of 128 / 4.
        let w = arch(AccuracyRung::SlidingWindow);
        assert_eq!(w.sliding_window, Some(32));
        assert_eq!(
            ModelConfig {
                sliding_window: None,
                ..w.clone()
            },
            moe
        );
    }
}
