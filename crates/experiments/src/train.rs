//! The training loop every experiment runs on (after nanoGPT's `train.py`, Karpathy 2022):
//! AdamW with decay groups, warmup + cosine, gradient clipping and accumulation, fp32 or
//! bf16 mixed precision (fp32 master weights), periodic eval on train and val, CSV/JSONL
//! metrics, checkpoints (temp + rename) and bit-identical `--resume`.
use crate::checkpoint::{self, State};
use crate::config::TrainConfig;
use crate::metrics::{EvalRow, Metrics, StepRow};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use model::accounting::{param_count, train_flops_per_token};
use model::{Gpt, ModelConfig};
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
    pub params: usize,
    pub final_step: usize,
    pub final_train_loss: f64,
    pub final_val_loss: f64,
    pub evals: Vec<EvalRow>,
    pub tokens_per_sec: f64,
    pub wall_s: f64,
    pub sample: String,
}

struct Ctx<'a> {
    model: &'a Gpt,
    train: data::TokenFile,
    val: data::TokenFile,
    block: usize,
    device: Device,
}

impl Ctx<'_> {
    /// Mean loss over `iters` batches of each split, without gradients or dropout. The
    /// batches come from their own RNG (seeded by the step) so eval never shifts training.
    fn evaluate(&self, iters: usize, batch: usize, seed: u64, step: usize) -> Result<(f64, f64)> {
        let _g = tch::no_grad_guard();
        let mut out = [0.0; 2];
        for (i, split) in [&self.train, &self.val].into_iter().enumerate() {
            let mut rng = runtime::Rng::new(seed ^ 0x5EED_E7A1 ^ ((step as u64) << 8) ^ i as u64);
            let mut sum = 0.0;
            for _ in 0..iters {
                let (x, y) = split.get_batch(&mut rng, batch, self.block, self.device)?;
                sum += self.model.loss(&x, &y, false)?.double_value(&[]);
            }
            out[i] = sum / iters as f64;
        }
        Ok((out[0], out[1]))
    }
}

/// Train with `cfg`; everything goes to `cfg.run.out_dir`.
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<Outcome> {
    let t_start = Instant::now();
    let tc = &cfg.train;
    let device = runtime::device::parse_device(&tc.device).context("train.device")?;
    let threads = runtime::device::set_threads(tc.threads);
    let mut ddp = crate::ddp::Ddp::from_env()?;
    let out_dir = cfg.run.out_dir.clone();
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;

    // Data: tokenise once, reuse while the corpus is unchanged.
    let corpus =
        data::resolve_corpus((!cfg.data.corpus.is_empty()).then(|| Path::new(&cfg.data.corpus)))?;
    let kind: data::TokenizerKind = cfg.data.tokenizer.parse().context("data.tokenizer")?;
    let stem = corpus
        .file_stem()
        .map_or("corpus".into(), |s| s.to_string_lossy().to_string());
    let data_dir = cfg
        .data
        .cache_dir
        .join(format!("{stem}_{}", cfg.data.tokenizer));
    let meta = ddp.main_first(|| data::prepare(&corpus, &data_dir, kind))?;
    // The machine's measured facts decide `dtype = "auto"` and are the MFU's peak.
    let machine = ddp.main_first(|| runtime::hardware::machine(device))?;
    let mcfg = cfg.model_config(meta.vocab_size, &machine)?;
    ddp.check_same("config", &format!("{}{mcfg:?}", cfg.to_toml()))?;
    let block = mcfg.block_size;
    let train_file = data::TokenFile::open(&data_dir.join("train.bin"), &meta)?;
    let val_file = data::TokenFile::open(&data_dir.join("val.bin"), &meta)?;
    for (name, f) in [("train", &train_file), ("val", &val_file)] {
        if f.len() <= block {
            bail!(
                "{}: the {name} split has {} tokens, fewer than one block of {} + 1: use a longer corpus or a smaller model.block_size",
                corpus.display(),
                f.len(),
                block
            );
        }
    }

    // Model and optimizer: the init is a function of the seed only.
    tch::manual_seed(cfg.run.seed as i64);
    let mut vs = nn::VarStore::new(device);
    let model = Gpt::new(&vs.root(), &mcfg)?;
    let params: Vec<Tensor> = vs.trainable_variables();
    let mut opt = optim::AdamW::new(
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
    let mut rng = ddp.data_rngs(cfg.run.seed, tc.grad_accum, None)?;
    let mut start = 0;
    let mut best_val: Option<f64> = None;
    if opts.resume {
        let st = checkpoint::load(&out_dir, &mut vs, &mut opt)?;
        if st.config != cfg.to_toml() {
            tracing::warn!("the config differs from the checkpoint's; continuing with the new one");
        }
        start = st.step;
        rng = ddp.data_rngs(cfg.run.seed, tc.grad_accum, Some((st.data_rng, st.step)))?;
        ddp.broadcast_optimizer(&opt)?;
        best_val = st.best_val_loss;
        tracing::info!(
            "resumed from {} at step {start}",
            checkpoint::dir(&out_dir).display()
        );
    }

    ddp.broadcast_params(&vs)?;
    let pc = param_count(&mcfg);
    let flops_per_iter =
        train_flops_per_token(&mcfg, block) * (tc.batch_size * tc.grad_accum * block) as f64;
    let mut metrics = Metrics::open(&ddp.metrics_dir(&out_dir)?, start, opts.resume)?;
    metrics.start_event(
        cfg,
        &mcfg,
        pc.total,
        &runtime::device::device_name(device),
        threads,
        &machine,
    )?;
    tracing::info!(
        "{}: {:.2}M parameters, {} tokens/iter, {} iterations, {} on {} ({} threads)",
        cfg.run.name,
        pc.total as f64 / 1e6,
        tc.batch_size * tc.grad_accum * block,
        tc.max_iters,
        format!("{:?}", mcfg.dtype).to_lowercase(),
        runtime::device::device_name(device),
        threads
    );
    let ctx = Ctx {
        model: &model,
        train: train_file,
        val: val_file,
        block,
        device,
    };
    let pb = if opts.quiet || !ddp.is_main() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(tc.max_iters as u64)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} {prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    pb.set_prefix(cfg.run.name.clone());
    pb.set_position(start as u64);

    let meta_json = data_dir.join("meta.json");
    let train_mode = mcfg.dropout > 0.0;
    let (mut last_train, mut last_val) = (f64::NAN, f64::NAN);
    let (mut tok_sum, mut time_sum) = (0.0, 0.0);
    let mut last_tps = 0.0;
    let mut it = start;
    loop {
        let lr = schedule.lr(it);
        if it % tc.eval_interval == 0 || it == tc.max_iters {
            let seed = ddp.eval_seed(cfg.run.seed);
            let (tl, vl) = ctx.evaluate(tc.eval_iters, tc.batch_size, seed, it)?;
            let avg = ddp.average(&[tl, vl])?;
            let (tl, vl) = (avg[0], avg[1]);
            (last_train, last_val) = (tl, vl);
            best_val = Some(best_val.map_or(vl, |b: f64| b.min(vl)));
            metrics.eval(&EvalRow {
                step: it,
                train_loss: tl,
                val_loss: vl,
                lr,
            })?;
            pb.println(format!(
                "step {it:>5}: train loss {tl:.4}, val loss {vl:.4}"
            ));
            if ddp.is_main() && (it > start || it == tc.max_iters) {
                let st = State {
                    step: it,
                    data_rng: rng.state(),
                    best_val_loss: best_val,
                    config: cfg.to_toml(),
                };
                checkpoint::save(&out_dir, &vs, &mcfg, &meta_json, &opt, &st)?;
            }
        }
        if it >= tc.max_iters || opts.stop_at.is_some_and(|s| it >= s) {
            break;
        }
        let t0 = Instant::now();
        // Dropout masks depend on (seed, step) only, so a resumed run draws the same ones.
        tch::manual_seed(
            (cfg.run.seed as i64)
                .wrapping_mul(1_000_003)
                .wrapping_add(it as i64),
        );
        let mut loss_sum = 0.0;
        for m in 0..tc.grad_accum {
            let (x, y) = ctx
                .train
                .get_batch(rng.micro(m), tc.batch_size, block, device)?;
            let loss = model.loss(&x, &y, train_mode)? / tc.grad_accum as f64;
            loss.backward();
            loss_sum += loss.double_value(&[]);
        }
        ddp.all_reduce_grads(&params)?;
        loss_sum = ddp.average(&[loss_sum])?[0];
        let norm = if tc.grad_clip > 0.0 {
            optim::clip_grad_norm(&params, tc.grad_clip)
        } else {
            optim::clip_grad_norm(&params, f64::INFINITY)
        };
        if !loss_sum.is_finite() || !norm.is_finite() {
            pb.abandon();
            let ck = checkpoint::dir(&out_dir);
            let kept = if ck.exists() {
                format!("the last good checkpoint is kept at {}", ck.display())
            } else {
                "no checkpoint had been written yet".to_string()
            };
            bail!(
                "step {it}: the loss is {loss_sum} and the gradient norm {norm} (not finite); the run stopped and {kept}. Try a lower train.lr or a train.grad_clip"
            );
        }
        opt.step(lr);
        opt.zero_grad();
        let dt = t0.elapsed().as_secs_f64();
        let tokens = (tc.batch_size * tc.grad_accum * block * ddp.world_size()) as f64;
        if it > start + 1 {
            tok_sum += tokens;
            time_sum += dt;
        }
        it += 1;
        if it % tc.log_interval == 0 || it == tc.max_iters {
            last_tps = tokens / dt;
            let mfu = flops_per_iter / dt / machine.flops(mcfg.dtype.kind());
            metrics.step(&StepRow {
                step: it,
                lr,
                train_loss: loss_sum,
                grad_norm: norm,
                tokens_per_sec: last_tps,
                ms_per_step: dt * 1e3,
                mfu,
            })?;
            pb.set_message(format!("loss {loss_sum:.4}, {last_tps:.0} tok/s"));
        }
        pb.set_position(it as u64);
    }
    pb.finish_and_clear();
    let tokens_per_sec = if time_sum > 0.0 {
        tok_sum / time_sum
    } else {
        last_tps
    };
    let sample = if tc.sample_tokens > 0 && it >= tc.max_iters && ddp.is_main() {
        crate::sample::sample_text(&model, &meta, tc.sample_tokens, cfg.run.seed)?
    } else {
        String::new()
    };
    if !sample.is_empty() {
        std::fs::write(out_dir.join("sample.txt"), &sample)?;
    }
    let outcome = Outcome {
        out_dir: out_dir.clone(),
        model: mcfg,
        params: pc.total,
        final_step: it,
        final_train_loss: last_train,
        final_val_loss: last_val,
        evals: metrics.evals().to_vec(),
        tokens_per_sec,
        wall_s: t_start.elapsed().as_secs_f64(),
        sample,
    };
    ddp.check_in_sync(&vs)?;
    metrics.finish(&outcome)?;
    Ok(outcome)
}
