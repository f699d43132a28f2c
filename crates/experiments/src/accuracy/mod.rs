//! The accuracy ladder: the original GPT-2 recipe (with every speed-up on) → +RoPE (Su et
//! al. 2021) → +RMSNorm (Zhang & Sennrich 2019) → +SwiGLU (Shazeer 2020), and an optional
//! +GQA (Ainslie et al. 2023) rung, then the extension past Llama 3 (issue #14: untied
//! head, q/k/v biases, a mixture of experts at the dense rung's active parameters). Each
//! rung trains from scratch on the same data, config and seeds, changing one thing;
//! `report` compares final val losses against seed noise.
pub mod report;

use crate::config::TrainConfig;
use crate::rung::{AccuracyRung, Knobs, Rung};
use crate::train::{train, RunOptions};
use anyhow::{Context, Result};
use clap::Parser;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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
    /// Continue a seed whose run was interrupted from its last checkpoint (`<runs-dir>/<rung>/
    /// seed<N>/ckpt`; bit-identical to an uninterrupted run) instead of starting it afresh.
    /// The rung's record is written after every finished seed, so with `--append` an
    /// interrupted multi-seed run loses at most the seed in progress, and with this not even that.
    #[arg(long)]
    pub resume: bool,
}

/// What one rung measured, over its seeds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RungRecord {
    pub rung: AccuracyRung,
    pub describe: String,
    pub params: usize,
    /// Parameters used per token (a mixture of experts uses k of its experts); absent from
    /// records made before it existed (= `params`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_params: Option<usize>,
    /// Bytes one sequence's KV cache holds at full context in the run's dtype, as
    /// `infer --plan` counts them (a sliding window caps the positions at W); absent from
    /// records made before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_cache_bytes_per_sequence: Option<usize>,
    pub seeds: Vec<u64>,
    pub final_val_loss: Vec<f64>,
    pub final_train_loss: Vec<f64>,
    pub wall_s: f64,
    pub tokens_per_sec: f64,
    pub sample: String,
    /// What the rung set on the base config, as `model.key=value` lines
    /// ([`AccuracyRung::record`]).
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
pub fn main(rung: AccuracyRung) -> Result<()> {
    runtime::logging::init();
    let args = AccuracyArgs::parse();
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    let base = TrainConfig::load(&args.config, &args.sets)?;
    let knobs = Knobs::default();
    let mut rung_cfg = base.clone();
    rung_cfg.edit_model(|cfg, run| rung.apply(cfg, run, &knobs))?;
    let rung_sets = rung.record(&base.architecture(1)?, &knobs);
    tracing::info!("rung {}: {}", rung.name(), rung.describe());
    let mut rec = RungRecord {
        rung,
        describe: rung.describe().into(),
        params: 0,
        active_params: None,
        kv_cache_bytes_per_sequence: None,
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
        let mut cfg = rung_cfg.clone();
        cfg.run.seed += k as u64;
        if rec.seeds.contains(&cfg.run.seed) {
            continue;
        }
        cfg.run.name = format!("{}_seed{}", rung.name(), cfg.run.seed);
        cfg.run.out_dir = args
            .runs_dir
            .join(rung.name())
            .join(format!("seed{}", cfg.run.seed));
        let resume = args.resume && cfg.run.out_dir.join("ckpt").exists();
        let out = train(
            &cfg,
            &RunOptions {
                quiet: args.quiet,
                resume,
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
        rec.active_params = (out.active_params != out.params).then_some(out.active_params);
        rec.kv_cache_bytes_per_sequence = Some(
            infer::planner::kv_positions_per_sequence(&out.model)
                * model::accounting::kv_cache_bytes_per_token(
                    &out.model,
                    out.settings.dtype.bytes(),
                ),
        );
        rec.seeds.push(cfg.run.seed);
        rec.final_val_loss.push(out.final_val_loss);
        rec.final_train_loss.push(out.final_train_loss);
        rec.wall_s += out.wall_s;
        rec.tokens_per_sec += out.tokens_per_sec;
        if rec.sample.is_empty() {
            rec.sample = out.sample.clone();
        }
        save_record(&path, &rec)?; // after every seed: an interruption keeps the finished ones
    }
    save_record(&path, &rec)?;
    eprintln!("  record written to {}", path.display());
    Ok(())
}

/// Write `rec` (whose `tokens_per_sec` is still the sum over seeds) with the mean.
fn save_record(path: &std::path::Path, rec: &RungRecord) -> Result<()> {
    let mut out = rec.clone();
    out.tokens_per_sec /= out.seeds.len().max(1) as f64; // mean over seeds
    std::fs::create_dir_all(path.parent().unwrap_or(std::path::Path::new(".")))?;
    runtime::fsio::write_atomic(path, |tmp| {
        Ok(std::fs::write(
            tmp,
            serde_json::to_string_pretty(&out)? + "\n",
        )?)
    })
}
