//! Learning-rate schedule: linear warmup, cosine decay to `min_lr`, then constant —
//! exactly nanoGPT's `get_lr` (Karpathy, `train.py`), after SGDR (Loshchilov & Hutter 2017).
use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// nanoGPT's schedule. Iterations are 0-based.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosineSchedule {
    /// Peak learning rate, reached at `it == warmup_iters`.
    pub lr: f64,
    /// Floor, reached at `it == lr_decay_iters` and kept after.
    pub min_lr: f64,
    pub warmup_iters: usize,
    pub lr_decay_iters: usize,
}

impl CosineSchedule {
    /// Errors name the field: rates must be finite with `0 ≤ min_lr ≤ lr`, and
    /// `warmup_iters ≤ lr_decay_iters`.
    pub fn validate(&self) -> Result<()> {
        let Self {
            lr,
            min_lr,
            warmup_iters,
            lr_decay_iters,
        } = *self;
        ensure!(
            lr.is_finite() && lr >= 0.0,
            "lr = {lr}: expected a finite learning rate ≥ 0"
        );
        ensure!(
            min_lr.is_finite() && min_lr >= 0.0,
            "min_lr = {min_lr}: expected a finite learning rate ≥ 0"
        );
        ensure!(
            min_lr <= lr,
            "min_lr = {min_lr} is above lr = {lr}: the cosine decays from lr down to min_lr"
        );
        ensure!(
            warmup_iters <= lr_decay_iters,
            "warmup_iters = {warmup_iters} is past lr_decay_iters = {lr_decay_iters}: the decay starts when the warmup ends"
        );
        Ok(())
    }

    /// The learning rate at iteration `it`:
    /// - `it < warmup_iters`: `lr · (it + 1) / (warmup_iters + 1)`;
    /// - `it > lr_decay_iters`: `min_lr`;
    /// - otherwise `min_lr + ½(1 + cos(π·ratio))·(lr − min_lr)`, with
    ///   `ratio = (it − warmup_iters) / (lr_decay_iters − warmup_iters)`.
    ///
    /// Where nanoGPT would divide by zero (`it == warmup_iters == lr_decay_iters`), the decay
    /// has no length and this returns `min_lr`.
    pub fn lr(&self, it: usize) -> f64 {
        if it < self.warmup_iters {
            return self.lr * (it + 1) as f64 / (self.warmup_iters + 1) as f64;
        }
        if it > self.lr_decay_iters || self.lr_decay_iters == self.warmup_iters {
            return self.min_lr;
        }
        let ratio =
            (it - self.warmup_iters) as f64 / (self.lr_decay_iters - self.warmup_iters) as f64;
        let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
        self.min_lr + coeff * (self.lr - self.min_lr)
    }
}
