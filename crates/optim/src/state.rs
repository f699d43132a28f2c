//! AdamW checkpointing: the moments and step counts as named tensors (the layout of
//! PyTorch's `optimizer.state_dict()["state"]`, keyed by parameter name instead of index),
//! restored by exact copies so that a resumed run is bit-identical to an uninterrupted one.
use anyhow::{bail, ensure, Context, Result};
use tch::{Kind, Tensor};

use crate::AdamW;

fn step_tensor(step: u64) -> Tensor {
    Tensor::from_slice(&[step as i64])
}

/// Read a step count saved by [`step_tensor`]: one non-negative int64.
fn read_step(key: &str, t: &Tensor) -> Result<u64> {
    ensure!(
        t.kind() == Kind::Int64 && t.numel() == 1,
        "optimizer state: '{key}' should be one int64, found {:?} of shape {:?}",
        t.kind(),
        t.size()
    );
    let v = t
        .reshape([1])
        .f_int64_value(&[0])
        .with_context(|| format!("optimizer state: reading '{key}'"))?;
    u64::try_from(v).with_context(|| format!("optimizer state: '{key}' is negative ({v})"))
}

impl AdamW {
    /// The state to checkpoint: `step` (calls to [`AdamW::step`]) and, per parameter,
    /// `step.<name>` (its update count), `exp_avg.<name>` and `exp_avg_sq.<name>`.
    ///
    /// Like PyTorch's `state_dict()`, the moment tensors share storage with the live state:
    /// write them out before the next [`AdamW::step`] (or deep-copy them).
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::with_capacity(1 + 3 * self.slots.len());
        out.push(("step".to_string(), step_tensor(self.steps)));
        for s in &self.slots {
            out.push((format!("step.{}", s.name), step_tensor(s.step)));
            out.push((format!("exp_avg.{}", s.name), s.exp_avg.detach()));
            out.push((format!("exp_avg_sq.{}", s.name), s.exp_avg_sq.detach()));
        }
        out
    }

    /// Restore what [`AdamW::state_tensors`] saved (from any device). A missing key, a
    /// shape or a dtype mismatch is an error naming the key; nothing is changed then.
    /// Checkpoints written before per-parameter counts existed (no `step.<name>`) give each
    /// parameter the global `step`. Unknown keys are logged and ignored.
    pub fn load_state_tensors(&mut self, named: &[(String, Tensor)]) -> Result<()> {
        let find = |k: &str| named.iter().find(|(n, _)| n == k).map(|(_, t)| t);
        let steps = read_step(
            "step",
            find("step").context("optimizer state: missing key 'step'")?,
        )?;

        // Validate everything before touching any state.
        let mut plan = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let key = format!("step.{}", s.name);
            let step = match find(&key) {
                Some(t) => read_step(&key, t)?,
                None => steps,
            };
            let mut moments = Vec::with_capacity(2);
            for (prefix, buf) in [("exp_avg", &s.exp_avg), ("exp_avg_sq", &s.exp_avg_sq)] {
                let key = format!("{prefix}.{}", s.name);
                let t =
                    find(&key).with_context(|| format!("optimizer state: missing key '{key}'"))?;
                if t.size() != buf.size() {
                    bail!(
                        "optimizer state: '{key}' has shape {:?}, expected {:?}",
                        t.size(),
                        buf.size()
                    );
                }
                if t.kind() != buf.kind() {
                    bail!(
                        "optimizer state: '{key}' has dtype {:?}, expected {:?} (a conversion would not resume bit-identically)",
                        t.kind(),
                        buf.kind()
                    );
                }
                moments.push(t);
            }
            plan.push((step, moments));
        }

        let known = |n: &str| {
            n == "step"
                || ["step.", "exp_avg.", "exp_avg_sq."].iter().any(|p| {
                    n.strip_prefix(p)
                        .is_some_and(|rest| self.slots.iter().any(|s| s.name == rest))
                })
        };
        let unknown: Vec<&str> = named
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|n| !known(n))
            .collect();
        if let Some(first) = unknown.first() {
            tracing::warn!(
                "optimizer state: ignoring {} unknown keys (e.g. '{first}')",
                unknown.len()
            );
        }

        tch::no_grad(|| -> Result<()> {
            for (s, (step, moments)) in self.slots.iter_mut().zip(plan) {
                s.exp_avg
                    .f_copy_(moments[0])
                    .with_context(|| format!("optimizer state: copying exp_avg.{}", s.name))?;
                s.exp_avg_sq
                    .f_copy_(moments[1])
                    .with_context(|| format!("optimizer state: copying exp_avg_sq.{}", s.name))?;
                s.step = step;
            }
            Ok(())
        })?;
        self.steps = steps;
        Ok(())
    }
}
