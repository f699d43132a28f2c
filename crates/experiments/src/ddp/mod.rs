//! Data-parallel training (DDP) on libtorch's c10d through the `dist` crate, after PyTorch
//! DDP (Li et al. 2020, "PyTorch Distributed: Experiences on Accelerating Data Parallel
//! Training") as nanoGPT's `train.py` uses it under torchrun: parameters broadcast from rank 0
//! at start and on resume, gradients averaged in flat buckets (one contiguous buffer per
//! bucket) once per optimizer step (after the last micro-step of accumulation), each rank
//! drawing its own batches (seed + rank), eval losses averaged, rank 0 alone writing.
//!
//! Without `RANK`/`WORLD_SIZE` in the environment every method is a no-op and the training
//! loop is exactly the single-process one.
mod bucket;

use anyhow::{bail, Context, Result};
use bucket::{flatten, for_buckets, unflatten};
use dist::ProcessGroup;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tch::{nn, Tensor};

pub use bucket::BUCKET_BYTES;

/// Lets one process draw its micro-batches from W per-rank streams, exactly as W DDP ranks
/// would (micro-steps `[k·A/W, (k+1)·A/W)` from rank k's stream): one process with
/// `grad_accum = W·A` then computes what W ranks with `grad_accum = A` do. For checking DDP.
pub const STREAMS_VAR: &str = "LADDER_DATA_STREAMS";

/// Default collective timeout; `LADDER_DIST_TIMEOUT_S` overrides it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Whether this process is rank 0 of a DDP run (or not a DDP run), from `RANK`.
pub fn is_main_process() -> bool {
    std::env::var("RANK").map_or(true, |r| r.trim() == "0")
}

pub struct Ddp {
    pg: Option<ProcessGroup>,
    scratch: Option<PathBuf>,
}

/// The training batch samplers of this rank (one, or W when emulating W ranks).
pub struct DataRngs {
    rngs: Vec<runtime::Rng>,
    per: usize,
}

impl DataRngs {
    /// The sampler for micro-step `m` of an optimizer step.
    pub fn micro(&mut self, m: usize) -> &mut runtime::Rng {
        let i = (m / self.per).min(self.rngs.len() - 1);
        &mut self.rngs[i]
    }

    /// The state a checkpoint records (the first stream's, i.e. rank 0's).
    pub fn state(&self) -> u64 {
        self.rngs[0].state()
    }
}

impl Ddp {
    /// A plain single-process run.
    pub fn single() -> Self {
        Self {
            pg: None,
            scratch: None,
        }
    }

    /// Joins the group torchrun's variables describe, or [`Ddp::single`] without them.
    pub fn from_env() -> Result<Self> {
        if dist::DistEnv::from_env()?.is_none() {
            return Ok(Self::single());
        }
        let timeout = dist::timeout_from_env(DEFAULT_TIMEOUT)?;
        let pg = ProcessGroup::from_env(timeout)?;
        tracing::info!(
            "DDP: rank {} of {} ({}, timeout {:.0} s)",
            pg.rank(),
            pg.world_size(),
            if pg.has_nccl() {
                "Gloo for CPU tensors, NCCL for CUDA ones"
            } else {
                "Gloo"
            },
            timeout.as_secs_f64()
        );
        Ok(Self {
            pg: Some(pg),
            scratch: None,
        })
    }

    pub fn rank(&self) -> usize {
        self.pg.as_ref().map_or(0, ProcessGroup::rank)
    }

    /// This rank's device for the config's `device` (`given`, as written): a bare `cuda` (or
    /// `auto` that chose a GPU) becomes `cuda:LOCAL_RANK` under a group (one GPU per
    /// process), as torchrun users expect.
    pub fn device_for(&self, device: tch::Device, given: &str) -> tch::Device {
        self.pg
            .as_ref()
            .map_or(device, |pg| pg.device_for(device, given))
    }

    pub fn world_size(&self) -> usize {
        self.pg.as_ref().map_or(1, ProcessGroup::world_size)
    }

    /// Rank 0: the one that logs, writes metrics and checkpoints.
    pub fn is_main(&self) -> bool {
        self.rank() == 0
    }

    /// Runs `f` on rank 0 first, then on the others (e.g. tokenising into a shared cache).
    pub fn main_first<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let Some(pg) = &self.pg else { return f() };
        if pg.rank() == 0 {
            let out = f();
            pg.barrier()?;
            out
        } else {
            pg.barrier()?;
            f()
        }
    }

    /// Where this rank writes metrics: `out_dir` on rank 0, a scratch folder (removed when
    /// the run ends) elsewhere.
    pub fn metrics_dir(&mut self, out_dir: &Path) -> Result<PathBuf> {
        if self.is_main() {
            return Ok(out_dir.to_path_buf());
        }
        let d =
            std::env::temp_dir().join(format!("ladder-rank{}-{}", self.rank(), std::process::id()));
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        self.scratch = Some(d.clone());
        Ok(d)
    }

    /// This rank's training samplers. Fresh: stream `seed + rank` (rank 0 is the
    /// single-process stream). Resumed at `step` from a checkpoint's `state`: that state in
    /// a single process, else `seed + rank` re-mixed with the step (any world size).
    pub fn data_rngs(
        &self,
        seed: u64,
        grad_accum: usize,
        resumed: Option<(u64, usize)>,
    ) -> Result<DataRngs> {
        let streams = match std::env::var(STREAMS_VAR) {
            Ok(v) => v
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&w| w >= 1 && grad_accum.is_multiple_of(w))
                .with_context(|| {
                    format!("{STREAMS_VAR}={v:?}: expected a count that divides train.grad_accum={grad_accum}")
                })?,
            Err(_) => 1,
        };
        if streams > 1 && self.pg.is_some() {
            bail!("{STREAMS_VAR} emulates ranks in one process; unset it under torchrun");
        }
        let first = (self.rank() * streams) as u64;
        let rngs = (0..streams as u64)
            .map(|s| match resumed {
                Some((state, _)) if streams == 1 && self.pg.is_none() => {
                    runtime::Rng::from_state(state)
                }
                Some((_, step)) => runtime::Rng::new(
                    seed.wrapping_add(first + s)
                        ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                ),
                None => runtime::Rng::new(seed.wrapping_add(first + s)),
            })
            .collect();
        Ok(DataRngs {
            rngs,
            per: grad_accum / streams,
        })
    }

    /// The eval sampler's seed on this rank (rank 0: `seed`), so ranks evaluate different
    /// batches and their average covers `world_size` times as many.
    pub fn eval_seed(&self, seed: u64) -> u64 {
        seed.wrapping_add((self.rank() as u64).wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    /// Copies rank 0's parameters and buffers (all variables, by name) into every rank.
    pub fn broadcast_params(&self, vs: &nn::VarStore) -> Result<()> {
        let Some(pg) = &self.pg else { return Ok(()) };
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let ts: Vec<Tensor> = vars.into_iter().map(|(_, t)| t).collect();
        let _g = tch::no_grad_guard();
        for_buckets(&ts, |bucket| {
            let mut flat = flatten(bucket);
            pg.broadcast(&mut flat, 0)
                .context("broadcasting parameters")?;
            unflatten(&flat, bucket);
            Ok(())
        })
    }

    /// Copies rank 0's AdamW moments into every rank (after a resume).
    pub fn broadcast_optimizer(&self, opt: &optim::AdamW) -> Result<()> {
        let Some(pg) = &self.pg else { return Ok(()) };
        // The moments are views of the optimizer's own state (detached, same storage).
        let ts: Vec<Tensor> = opt
            .state_tensors()
            .into_iter()
            .filter(|(n, _)| n.starts_with("exp_avg"))
            .map(|(_, t)| t)
            .collect();
        let _g = tch::no_grad_guard();
        for_buckets(&ts, |bucket| {
            let mut flat = flatten(bucket);
            pg.broadcast(&mut flat, 0)
                .context("broadcasting optimizer state")?;
            unflatten(&flat, bucket);
            Ok(())
        })
    }

    /// Averages the gradients of `params` over ranks, one flat all-reduce per bucket.
    pub fn all_reduce_grads(&self, params: &[Tensor]) -> Result<()> {
        let Some(pg) = &self.pg else { return Ok(()) };
        let mut grads = Vec::with_capacity(params.len());
        for (i, p) in params.iter().enumerate() {
            let g = p.grad();
            if !g.defined() {
                bail!(
                    "parameter {i} (shape {:?}) has no gradient to all-reduce",
                    p.size()
                );
            }
            grads.push(g);
        }
        let _g = tch::no_grad_guard();
        for_buckets(&grads, |bucket| {
            let mut flat = flatten(bucket);
            pg.all_reduce_avg(&mut flat)
                .context("all-reducing gradients")?;
            unflatten(&flat, bucket);
            Ok(())
        })
    }

    /// Errors unless every rank has the same `what` (e.g. the resolved config and model:
    /// `dtype = "auto"` is decided per machine, and ranks must agree on it).
    pub fn check_same(&self, label: &str, what: &str) -> Result<()> {
        let Some(pg) = &self.pg else { return Ok(()) };
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        what.hash(&mut h);
        // 52 bits: exact in an f64, so equal fingerprints average to themselves.
        let mine = (h.finish() >> 12) as f64;
        let differs = self.average(&[mine])?[0] != mine;
        if self.average(&[f64::from(u8::from(differs))])?[0] > 0.0 {
            bail!(
                "the {label} differs between ranks (rank {} disagrees with the mean): start every rank with the same config and --set flags, and set model.dtype explicitly rather than \"auto\" on mixed machines",
                pg.rank()
            );
        }
        Ok(())
    }

    /// Errors unless every rank holds exactly rank 0's parameters (run at the end).
    pub fn check_in_sync(&self, vs: &nn::VarStore) -> Result<()> {
        let Some(pg) = &self.pg else { return Ok(()) };
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let ts: Vec<Tensor> = vars.into_iter().map(|(_, t)| t).collect();
        let _g = tch::no_grad_guard();
        let mut worst = 0f64;
        for_buckets(&ts, |bucket| {
            let mine = flatten(bucket);
            let mut theirs = mine.copy();
            pg.broadcast(&mut theirs, 0)
                .context("comparing parameters")?;
            let d = (theirs - mine).abs().max().double_value(&[]);
            worst = worst.max(d);
            Ok(())
        })?;
        let mean = self.average(&[worst])?[0];
        if mean != 0.0 {
            bail!("after training the parameters differ across ranks (rank {} by up to {worst:e}): the replicas diverged", pg.rank());
        }
        tracing::info!("DDP: parameters identical on all {} ranks", pg.world_size());
        Ok(())
    }

    /// The mean of `xs` (elementwise) over ranks.
    pub fn average(&self, xs: &[f64]) -> Result<Vec<f64>> {
        let Some(pg) = &self.pg else {
            return Ok(xs.to_vec());
        };
        let mut t = Tensor::from_slice(xs);
        pg.all_reduce_avg(&mut t).context("averaging metrics")?;
        Ok(Vec::<f64>::try_from(&t)?)
    }
}

impl Drop for Ddp {
    fn drop(&mut self) {
        if let Some(d) = self.scratch.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
