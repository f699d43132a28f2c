//! Learning-rate schedule: linear warmup, then cosine decay to `min_lr`, then constant —
//! nanoGPT's `get_lr` (Karpathy, `train.py`), after Loshchilov & Hutter 2017 (SGDR).
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CosineSchedule {
    pub lr: f64,
    pub min_lr: f64,
    pub warmup_iters: usize,
    pub lr_decay_iters: usize,
}

impl CosineSchedule {
    /// The learning rate at iteration `it` (0-based).
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
