//! The training loop every experiment runs on (after nanoGPT's `train.py`, Karpathy 2022):
//! AdamW with decay groups, warmup + cosine, gradient clipping and accumulation, fp32 or
//! bf16 mixed precision (fp32 master weights), periodic eval on train and val, CSV/JSONL
//! metrics, checkpoints (temp + rename) and bit-identical `--resume`.
//!
//! [`train`] runs named steps: [`prepare_data`], [`build`] (model and optimizer from the
//! seed), [`resume_or_init`], then the step loop (`steps.rs`: eval + checkpoint, one
//! optimizer step, the NaN guard) and the closing sample.
pub mod attn_auto;
mod steps;

use crate::checkpoint;
use crate::config::TrainConfig;
use crate::ddp::{DataRngs, Ddp};
use crate::metrics::{EvalRow, Metrics};
use anyhow::{bail, Context, Result};
use model::accounting::{param_count, train_flops_per_token};
use model::{Gpt, ModelConfig, RunSettings};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{nn, Device, Tensor};

/// Run-time options that are not part of the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Continue from `<out_dir>/ckpt`.
    pub resume: bool,
    /// Stop (after checkpointing) once this iteration is reached: an interruption, for tests.
    pub stop_at: Option<usize>,
    /// Hide the progress bar.
    pub quiet: bool,
}

/// What a finished run reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub out_dir: PathBuf,
    pub model: ModelConfig,
    pub settings: RunSettings,
    pub params: usize,
    /// Parameters used per token (`params` less the experts a token is not routed to).
    pub active_params: usize,
    pub final_step: usize,
    pub final_train_loss: f64,
    pub final_val_loss: f64,
    pub evals: Vec<EvalRow>,
    pub tokens_per_sec: f64,
    pub wall_s: f64,
    pub sample: String,
}

/// The run's corpus as token files (tokenised once, reused while the corpus is unchanged).
pub(crate) struct Data {
    pub corpus: PathBuf,
    pub meta: data::Meta,
    /// The dataset's `meta.json`, copied into every checkpoint (the tokenizer).
    pub meta_json: PathBuf,
    pub train: data::TokenFile,
    pub val: data::TokenFile,
}

/// Tokenise (or reuse) the corpus of `cfg` and open its splits.
fn prepare_data(cfg: &TrainConfig) -> Result<Data> {
    let corpus = data::resolve_corpus_as(
        (!cfg.data.corpus.is_empty()).then(|| Path::new(&cfg.data.corpus)),
        "--set data.corpus=PATH",
    )?;
    let stem = corpus
        .file_stem()
        .map_or("corpus".into(), |s| s.to_string_lossy().to_string());
    let data_dir = cfg
        .data
        .cache_dir
        .join(format!("{stem}_{}", cfg.data.tokenizer));
    let meta = data::prepare(&corpus, &data_dir, cfg.data.tokenizer)?;
    let train = data::TokenFile::open(&data_dir.join("train.bin"), &meta)?;
    let val = data::TokenFile::open(&data_dir.join("val.bin"), &meta)?;
    Ok(Data {
        corpus,
        meta,
        meta_json: data_dir.join("meta.json"),
        train,
        val,
    })
}

impl Data {
    /// Both splits must hold more than one block (inputs and their shifted targets).
    fn check_block(&self, block: usize) -> Result<()> {
        for (name, f) in [("train", &self.train), ("val", &self.val)] {
            if f.len() <= block {
                bail!(
                    "{}: the {name} split has {} tokens, fewer than one block of {} + 1: use a longer corpus or a smaller model.block_size",
                    self.corpus.display(),
                    f.len(),
                    block
                );
            }
        }
        Ok(())
    }
}

/// The model, its optimizer and the learning-rate schedule.
pub(crate) struct Setup {
    pub vs: nn::VarStore,
    pub model: Gpt,
    pub params: Vec<Tensor>,
    pub opt: optim::AdamW,
    pub schedule: optim::CosineSchedule,
}

/// Build the model and optimizer: the init is a function of the seed only.
fn build(
    cfg: &TrainConfig,
    mcfg: &ModelConfig,
    run: &RunSettings,
    device: Device,
) -> Result<Setup> {
    let tc = &cfg.train;
    tch::manual_seed(cfg.run.seed as i64);
    let vs = nn::VarStore::new(device);
    let model = Gpt::new(&vs.root(), mcfg, run)?;
    let params: Vec<Tensor> = vs.trainable_variables();
    let opt = optim::AdamW::new(
        optim::groups_by_dim(&vs, tc.weight_decay),
        optim::AdamWConfig {
            beta1: tc.beta1,
            beta2: tc.beta2,
            eps: tc.eps,
        },
    );
    let schedule = optim::CosineSchedule {
        lr: tc.lr,
        min_lr: tc.min_lr,
        warmup_iters: tc.warmup_iters,
        lr_decay_iters: tc.lr_decay_iters,
    };
    Ok(Setup {
        vs,
        model,
        params,
        opt,
        schedule,
    })
}

/// Where the step loop starts.
pub(crate) struct Start {
    /// The first iteration to run.
    pub step: usize,
    /// The training batch samplers (this rank's).
    pub rng: DataRngs,
    pub best_val: Option<f64>,
    /// With `--resume`: the checkpoint and the settings that changed.
    pub resumed: Option<crate::resume::Resumed>,
}

/// A fresh start (step 0, the sampler seeded by `run.seed`), or with `--resume` the
/// newest verified checkpoint's weights, optimizer state, step, sampler and best val loss,
/// after checking its corpus and architecture against this run's (`resume.rs`). Under DDP
/// each rank gets its own samplers and rank 0's optimizer state.
fn resume_or_init(
    cfg: &TrainConfig,
    opts: &RunOptions,
    (out_dir, ddp): (&Path, &Ddp),
    setup: &mut Setup,
    mcfg: &ModelConfig,
    meta: &data::Meta,
) -> Result<Start> {
    let (seed, accum) = (cfg.run.seed, cfg.train.grad_accum);
    if !opts.resume {
        if let Some(old) = checkpoint::latest(out_dir).filter(|_| ddp.is_main()) {
            tracing::warn!(
                "{} holds a checkpoint at step {} ({}); without --resume this run starts afresh and replaces it at its first checkpoint",
                out_dir.display(),
                old.step(),
                old.dir.display()
            );
        }
        return Ok(Start {
            step: 0,
            rng: ddp.data_rngs(seed, accum, None)?,
            best_val: None,
            resumed: None,
        });
    }
    let r = crate::resume::resume(
        out_dir,
        &mut setup.vs,
        &mut setup.opt,
        mcfg,
        meta,
        &cfg.to_toml(),
    )?;
    ddp.broadcast_optimizer(&setup.opt)?;
    Ok(Start {
        step: r.state.step,
        rng: ddp.data_rngs(seed, accum, Some((r.state.data_rng, r.state.step)))?,
        best_val: r.state.best_val_loss,
        resumed: Some(r),
    })
}

/// Train with `cfg`; everything goes to `cfg.run.out_dir`.
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<Outcome> {
    let t_start = Instant::now();
    let tc = &cfg.train;
    let device = runtime::device::parse_device(&tc.device).context("train.device")?;
    let threads = runtime::device::set_threads(tc.threads);
    // Under torchrun's variables: this rank of a data-parallel group (a no-op without).
    let mut ddp = Ddp::from_env()?;
    let device = ddp.device_for(device, &tc.device);
    let out_dir = cfg.run.out_dir.clone();
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    // One run per out_dir, for the life of this one (released on exit or crash); under DDP
    // rank 0 holds it for the group (it alone writes there).
    let _lock = if ddp.is_main() {
        Some(crate::lock::acquire(&out_dir)?)
    } else {
        None
    };

    let data = ddp.main_first(|| prepare_data(cfg))?;
    // The machine's measured facts decide `dtype = "auto"` and are the MFU's peak.
    let machine = ddp.main_first(|| runtime::hardware::machine(device))?;
    let (mcfg, mut run) = cfg.model_config(data.meta.vocab_size, &machine)?;
    if cfg.attention_auto() {
        run.kernel = attn_auto::resolve(&mcfg, &run, tc.batch_size, device, &ddp)?;
    }
    ddp.check_same("config", &format!("{}{mcfg:?}{run:?}", cfg.to_toml()))?;
    let block = mcfg.block_size;
    data.check_block(block)?;
    let mut setup = build(cfg, &mcfg, &run, device)?;
    let start = resume_or_init(cfg, opts, (&out_dir, &ddp), &mut setup, &mcfg, &data.meta)?;
    ddp.broadcast_params(&setup.vs)?;

    let pc = param_count(&mcfg);
    let tokens_per_iter = tc.batch_size * tc.grad_accum * block * ddp.world_size();
    let mut metrics = Metrics::open(&ddp.metrics_dir(&out_dir)?, start.step, opts.resume)?;
    if let Some(r) = &start.resumed {
        metrics.resume_event(&r.dir, start.step, &r.changed)?;
    }
    let dev = runtime::device::device_name(device);
    metrics.start_event(cfg, &mcfg, pc, &dev, threads, &machine)?;
    tracing::info!(
        "{}: {:.2}M parameters, {} tokens/iter, {} iterations, {} on {} ({} threads)",
        cfg.run.name,
        pc.total as f64 / 1e6,
        tokens_per_iter,
        tc.max_iters,
        run.dtype,
        dev,
        threads
    );
    let end = steps::Loop {
        cfg,
        opts,
        out_dir: &out_dir,
        data: &data,
        block,
        device,
        ddp: &ddp,
        train_mode: run.dropout > 0.0,
        flops_per_iter: train_flops_per_token(&mcfg, block) * tokens_per_iter as f64,
        peak_flops: machine.flops(run.dtype.kind()),
    }
    .run(&mut setup, start, &mut metrics)?;

    let sample = if tc.sample_tokens > 0 && end.step >= tc.max_iters && ddp.is_main() {
        crate::sample::sample_text(&setup.model, &data.meta, tc.sample_tokens, cfg.run.seed)?
    } else {
        String::new()
    };
    if !sample.is_empty() {
        runtime::fsio::write_atomic(&out_dir.join("sample.txt"), |t| {
            Ok(std::fs::write(t, &sample)?)
        })?;
    }
    let outcome = Outcome {
        out_dir: out_dir.clone(),
        model: mcfg,
        settings: run,
        params: pc.total,
        active_params: pc.active,
        final_step: end.step,
        final_train_loss: end.train_loss,
        final_val_loss: end.val_loss,
        evals: metrics.evals().to_vec(),
        tokens_per_sec: end.tokens_per_sec,
        wall_s: t_start.elapsed().as_secs_f64(),
        sample,
    };
    ddp.check_in_sync(&setup.vs)?;
    metrics.finish(&outcome)?;
    Ok(outcome)
}
