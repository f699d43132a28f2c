//! The accuracy ladder: the original GPT-2 recipe (with every speed-up on) → +RoPE (Su et
//! al. 2021) → +RMSNorm (Zhang & Sennrich 2019) → +SwiGLU (Shazeer 2020), and an optional
//! +GQA (Ainslie et al. 2023) rung. Each rung trains from scratch on the same data, config
//! and seeds, changing one thing; `report` compares final val losses against seed noise.
pub mod report;

use crate::config::TrainConfig;
use crate::train::{train, RunOptions};
use anyhow::{Context, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rung {
    Original,
    Rope,
    RmsNorm,
    SwiGlu,
    Gqa,
}

impl Rung {
    pub const ALL: [Rung; 5] = [
        Rung::Original,
        Rung::Rope,
        Rung::RmsNorm,
        Rung::SwiGlu,
        Rung::Gqa,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Rung::Original => "1_original",
            Rung::Rope => "2_rope",
            Rung::RmsNorm => "3_rmsnorm",
            Rung::SwiGlu => "4_swiglu",
            Rung::Gqa => "5_gqa",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Rung::Original => "learned positions, LayerNorm, GELU MLP (bf16 + SDPA on)",
            Rung::Rope => "+ rotary position embeddings instead of learned positions",
            Rung::RmsNorm => "+ RMSNorm instead of LayerNorm",
            Rung::SwiGlu => "+ SwiGLU MLP, hidden size matched to the GELU MLP's parameters",
            Rung::Gqa => "+ GQA with n_kv_heads = n_head / 2",
        }
    }

    /// The `--set` overrides that make this rung from the base config (cumulative).
    pub fn overrides(self, base: &TrainConfig) -> Result<Vec<String>> {
        let get = |k: &str| {
            base.model
                .get(k)
                .and_then(toml::Value::as_integer)
                .with_context(|| format!("[model] needs an integer '{k}' for the accuracy ladder"))
        };
        let mut sets = vec![
            "model.pos_emb=\"learned\"".to_string(),
            "model.norm=\"layernorm\"".into(),
            "model.mlp=\"gelu\"".into(),
        ];
        let idx = Rung::ALL.iter().position(|&r| r == self).unwrap_or(0);
        if idx >= 1 {
            sets.push("model.pos_emb=\"rope\"".into());
        }
        if idx >= 2 {
            sets.push("model.norm=\"rmsnorm\"".into());
        }
        if idx >= 3 {
            let hidden = model::config::swiglu_matched_hidden(get("intermediate_size")? as usize);
            sets.push("model.mlp=\"swiglu\"".into());
            sets.push(format!("model.intermediate_size={hidden}"));
        }
        if idx >= 4 {
            sets.push(format!("model.n_kv_heads={}", (get("n_head")? / 2).max(1)));
        }
        Ok(sets)
    }
}

#[derive(Debug, Clone, Parser)]
#[command(
    about = "Train one rung of the accuracy ladder from scratch (N seeds) and record its losses."
)]
pub struct AccuracyArgs {
    /// The base training config.
    #[arg(long, default_value = "experiments/shakespeare_char_cpu.toml")]
    pub config: PathBuf,
    /// Seeds to run (run.seed, run.seed + 1, ...); the committed results use 3.
    #[arg(long, default_value_t = 1)]
    pub seeds: usize,
    /// Extra overrides on the base config (before the rung's own), e.g. --set train.max_iters=300.
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    pub sets: Vec<String>,
    /// Results folder: per-run CSV in <out>/runs/, the rung's record in <out>/rungs/.
    #[arg(long, default_value = "results/accuracy")]
    pub out: PathBuf,
    /// Where the runs' checkpoints and logs go.
    #[arg(long, default_value = "runs/accuracy")]
    pub runs_dir: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Keep the seeds already recorded for this rung and run only the missing ones
    /// (e.g. `--seeds 3 --append` after a 1-seed run).
    #[arg(long)]
    pub append: bool,
}

/// What one rung measured, over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RungRecord {
    pub rung: String,
    pub describe: String,
    pub params: usize,
    pub seeds: Vec<u64>,
    pub final_val_loss: Vec<f64>,
    pub final_train_loss: Vec<f64>,
    pub wall_s: f64,
    pub tokens_per_sec: f64,
    pub sample: String,
    pub overrides: Vec<String>,
    pub command: String,
    pub git_rev: String,
    pub timestamp: String,
    pub machine: String,
}

#[derive(Serialize)]
struct CurveRow {
    step: usize,
    train_loss: f64,
    val_loss: f64,
    lr: f64,
    tokens_per_sec: f64,
}

/// Entry point of an accuracy binary.
pub fn main(rung: Rung) -> Result<()> {
    runtime::logging::init();
    let args = AccuracyArgs::parse();
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let base = TrainConfig::load(&args.config, &args.sets)?;
    let mut sets = args.sets.clone();
    let rung_sets = rung.overrides(&base)?;
    sets.extend(rung_sets.iter().cloned());
    tracing::info!("rung {}: {}", rung.name(), rung.describe());
    let mut rec = RungRecord {
        rung: rung.name().into(),
        describe: rung.describe().into(),
        params: 0,
        seeds: Vec::new(),
        final_val_loss: Vec::new(),
        final_train_loss: Vec::new(),
        wall_s: 0.0,
        tokens_per_sec: 0.0,
        sample: String::new(),
        overrides: rung_sets,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        git_rev: runtime::facts::git_rev(),
        timestamp: runtime::facts::timestamp_utc(),
        machine: crate::sys::cpu_name(),
    };
    let path = args.out.join("rungs").join(format!("{}.json", rung.name()));
    if args.append && path.exists() {
        let old: RungRecord = serde_json::from_str(&std::fs::read_to_string(&path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        anyhow::ensure!(
            old.overrides == rec.overrides,
            "--append: {} was made with other overrides ({:?}); rerun without --append",
            path.display(),
            old.overrides
        );
        rec = RungRecord {
            command: format!("{} + {}", old.command, rec.command),
            ..old
        };
        rec.tokens_per_sec *= rec.seeds.len() as f64; // a sum again, divided at the end
    }
    for k in 0..args.seeds {
        let mut cfg = TrainConfig::load(&args.config, &sets)?;
        cfg.run.seed += k as u64;
        if rec.seeds.contains(&cfg.run.seed) {
            continue;
        }
        cfg.run.name = format!("{}_seed{}", rung.name(), cfg.run.seed);
        cfg.run.out_dir = args
            .runs_dir
            .join(rung.name())
            .join(format!("seed{}", cfg.run.seed));
        let out = train(
            &cfg,
            &RunOptions {
                quiet: args.quiet,
                ..Default::default()
            },
        )?;
        eprintln!(
            "  {} seed {}: val loss {:.4} ({:.0} s)",
            rung.name(),
            cfg.run.seed,
            out.final_val_loss,
            out.wall_s
        );
        let curve = args
            .out
            .join("runs")
            .join(format!("{}_seed{}.csv", rung.name(), cfg.run.seed));
        std::fs::create_dir_all(curve.parent().unwrap_or(&args.out))?;
        let mut w = csv::Writer::from_path(&curve)
            .with_context(|| format!("writing {}", curve.display()))?;
        for e in &out.evals {
            w.serialize(CurveRow {
                step: e.step,
                train_loss: e.train_loss,
                val_loss: e.val_loss,
                lr: e.lr,
                tokens_per_sec: out.tokens_per_sec,
            })?;
        }
        w.flush()?;
        rec.params = out.params;
        rec.seeds.push(cfg.run.seed);
        rec.final_val_loss.push(out.final_val_loss);
        rec.final_train_loss.push(out.final_train_loss);
        rec.wall_s += out.wall_s;
        rec.tokens_per_sec += out.tokens_per_sec;
        if rec.sample.is_empty() {
            rec.sample = out.sample.clone();
        }
    }
    rec.tokens_per_sec /= rec.seeds.len().max(1) as f64; // mean over seeds
    std::fs::create_dir_all(path.parent().unwrap_or(&args.out))?;
    runtime::fsio::write_atomic(&path, |tmp| {
        Ok(std::fs::write(
            tmp,
            serde_json::to_string_pretty(&rec)? + "\n",
        )?)
    })?;
    eprintln!("  record written to {}", path.display());
    Ok(())
}
