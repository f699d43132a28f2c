//! The step loop of [`super::train`]: at every eval interval the loss on both splits and a
//! checkpoint, then one optimizer step (gradient accumulation, clipping, the NaN guard),
//! with metrics rows and a progress bar.
use super::{Data, RunOptions, Setup, Start};
use crate::checkpoint::{self, State};
use crate::config::TrainConfig;
use crate::ddp::{DataRngs, Ddp};
use crate::metrics::{EvalRow, Metrics, MoeRow, StepRow};
use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use model::Gpt;
use runtime::Rng;
use std::path::Path;
use std::time::Instant;
use tch::Device;

/// Everything the loop reads but does not change.
pub(super) struct Loop<'a> {
    pub cfg: &'a TrainConfig,
    pub opts: &'a RunOptions,
    pub out_dir: &'a Path,
    pub data: &'a Data,
    pub block: usize,
    pub device: Device,
    /// This rank of a data-parallel group (a no-op in a single process).
    pub ddp: &'a Ddp,
    /// Dropout on (the run settings ask for some).
    pub train_mode: bool,
    pub flops_per_iter: f64,
    pub peak_flops: f64,
}

/// Where the loop stopped and what it last measured.
pub(super) struct End {
    pub step: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    /// Mean over the timed steps (the first two after the start are warm-up).
    pub tokens_per_sec: f64,
}

fn progress_bar(opts: &RunOptions, cfg: &TrainConfig, start: usize, main: bool) -> ProgressBar {
    let pb = if opts.quiet || !main {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(cfg.train.max_iters as u64)
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
    pb
}

impl Loop<'_> {
    /// Mean loss over `eval_iters` batches of each split, without gradients or dropout.
    /// The batches come from their own RNG (seeded by the step) so eval never shifts training.
    /// Under DDP each rank draws other batches and the losses are averaged over ranks.
    fn evaluate(&self, model: &Gpt, step: usize) -> Result<(f64, f64)> {
        let (iters, batch, seed) = (
            self.cfg.train.eval_iters,
            self.cfg.train.batch_size,
            self.ddp.eval_seed(self.cfg.run.seed),
        );
        let _g = tch::no_grad_guard();
        let mut out = [0.0; 2];
        for (i, split) in [&self.data.train, &self.data.val].into_iter().enumerate() {
            let mut rng = Rng::new(seed ^ 0x5EED_E7A1 ^ ((step as u64) << 8) ^ i as u64);
            let mut sum = 0.0;
            for _ in 0..iters {
                let (x, y) = split.get_batch(&mut rng, batch, self.block, self.device)?;
                sum += model.loss(&x, &y, false)?.double_value(&[]);
            }
            out[i] = sum / iters as f64;
        }
        let avg = self.ddp.average(&out)?;
        Ok((avg[0], avg[1]))
    }

    /// One optimizer step over `grad_accum` micro-batches: (mean loss, gradient norm, and
    /// for a mixture of experts its cross-entropy, load-balancing loss and per-layer expert
    /// token counts, this rank's, summed over the micro-batches).
    /// Under DDP the gradients are averaged over ranks once, after the last micro-step.
    fn step(
        &self,
        setup: &mut Setup,
        rng: &mut DataRngs,
        it: usize,
        lr: f64,
    ) -> Result<(f64, f64, Option<MoeRow>)> {
        let tc = &self.cfg.train;
        // Dropout masks depend on (seed, step) only, so a resumed run draws the same ones.
        tch::manual_seed(
            (self.cfg.run.seed as i64)
                .wrapping_mul(1_000_003)
                .wrapping_add(it as i64),
        );
        let mut loss_sum = 0.0;
        let mut moe = setup.model.cfg.is_moe().then(|| MoeRow::new(it + 1));
        let accum = tc.grad_accum as f64;
        for m in 0..tc.grad_accum {
            let (x, y) =
                self.data
                    .train
                    .get_batch(rng.micro(m), tc.batch_size, self.block, self.device)?;
            let out = setup.model.train_loss(&x, &y, self.train_mode)?;
            let loss = out.loss / accum;
            loss.backward();
            loss_sum += loss.double_value(&[]);
            if let Some(r) = &mut moe {
                r.add(
                    out.ce.double_value(&[]) / accum,
                    out.aux.double_value(&[]) / accum,
                    &out.expert_tokens,
                );
            }
        }
        self.ddp.all_reduce_grads(&setup.params)?;
        let loss_sum = self.ddp.average(&[loss_sum])?[0];
        let clip = if tc.grad_clip > 0.0 {
            tc.grad_clip
        } else {
            f64::INFINITY
        };
        let norm = optim::clip_grad_norm(&setup.params, clip);
        if !loss_sum.is_finite() || !norm.is_finite() {
            // Only a checkpoint that verifies (and was finite when saved) is named as good.
            let kept = if let Some(ck) = checkpoint::latest(self.out_dir) {
                format!(
                    "the last good checkpoint (step {}) is kept at {}",
                    ck.step(),
                    ck.dir.display()
                )
            } else {
                "no checkpoint had been written yet".to_string()
            };
            bail!(
                "step {it}: the loss is {loss_sum} and the gradient norm {norm} (not finite); the run stopped and {kept}. Try a lower train.lr or a train.grad_clip"
            );
        }
        setup.opt.step(lr);
        setup.opt.zero_grad();
        Ok((loss_sum, norm, moe))
    }

    /// Run from `start` to `train.max_iters` (or `--stop-at`).
    pub fn run(&self, setup: &mut Setup, start: Start, metrics: &mut Metrics) -> Result<End> {
        let (cfg, tc) = (self.cfg, &self.cfg.train);
        let pb = progress_bar(self.opts, cfg, start.step, self.ddp.is_main());
        let Start {
            step: first,
            mut rng,
            mut best_val,
            ..
        } = start;
        let (mut last_train, mut last_val) = (f64::NAN, f64::NAN);
        let (mut tok_sum, mut time_sum) = (0.0, 0.0);
        let mut last_tps = 0.0;
        let tokens = (tc.batch_size * tc.grad_accum * self.block * self.ddp.world_size()) as f64;
        let mut it = first;
        loop {
            let lr = setup.schedule.lr(it);
            if it % tc.eval_interval == 0 || it == tc.max_iters {
                let (tl, vl) = self.evaluate(&setup.model, it)?;
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
                if self.ddp.is_main() && (it > first || it == tc.max_iters) {
                    let st = State {
                        step: it,
                        data_rng: rng.state(),
                        best_val_loss: best_val,
                        config: cfg.to_toml(),
                    };
                    let (vs, mcfg) = (&setup.vs, &setup.model.cfg);
                    checkpoint::save(
                        self.out_dir,
                        vs,
                        mcfg,
                        &self.data.meta_json,
                        &setup.opt,
                        &st,
                    )?;
                }
            }
            if it >= tc.max_iters || self.opts.stop_at.is_some_and(|s| it >= s) {
                break;
            }
            let t0 = Instant::now();
            let (loss, norm, moe) = match self.step(setup, &mut rng, it, lr) {
                Ok(x) => x,
                Err(e) => {
                    pb.abandon();
                    return Err(e);
                }
            };
            let dt = t0.elapsed().as_secs_f64();
            if it > first + 1 {
                tok_sum += tokens;
                time_sum += dt;
            }
            it += 1;
            if it % tc.log_interval == 0 || it == tc.max_iters {
                last_tps = tokens / dt;
                metrics.step(&StepRow {
                    step: it,
                    lr,
                    train_loss: loss,
                    grad_norm: norm,
                    tokens_per_sec: last_tps,
                    ms_per_step: dt * 1e3,
                    mfu: self.flops_per_iter / dt / self.peak_flops,
                })?;
                let experts = match &moe {
                    Some(r) => {
                        metrics.moe(r)?;
                        format!(", aux {:.3}, experts {}", r.aux, r.shares())
                    }
                    None => String::new(),
                };
                pb.set_message(format!("loss {loss:.4}{experts}, {last_tps:.0} tok/s"));
            }
            pb.set_position(it as u64);
        }
        pb.finish_and_clear();
        Ok(End {
            step: it,
            train_loss: last_train,
            val_loss: last_val,
            tokens_per_sec: if time_sum > 0.0 {
                tok_sum / time_sum
            } else {
                last_tps
            },
        })
    }
}
