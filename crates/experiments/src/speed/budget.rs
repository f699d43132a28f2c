//! Time budgets: every measured phase stops when its budget is spent, after at least
//! `min_repeats` measured runs, so a ladder finishes in bounded time on any machine — even
//! one where a rung is 60× slower than on the machine the defaults were chosen on.
use anyhow::Result;

/// How long one phase may run and how many runs it makes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    /// Warm-up runs wanted (not measured); at least one runs, and warm-up stops early once
    /// it has used `WARMUP_SHARE` of the budget.
    pub warmup: usize,
    /// Measured runs wanted.
    pub repeats: usize,
    /// Measured runs made whatever the budget (a median needs some spread).
    pub min_repeats: usize,
    /// Seconds for warm-up + measured runs together.
    pub max_seconds: f64,
}

/// The share of the budget warm-up may use before measuring starts.
pub const WARMUP_SHARE: f64 = 1.0 / 3.0;

/// What a budgeted phase did.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub warmups: usize,
    /// Seconds of each measured run.
    pub secs: Vec<f64>,
    /// True when the budget, not `repeats`, ended the phase.
    pub budget_hit: bool,
    /// Warm-up + measured seconds.
    pub spent: f64,
    /// Minor page faults per measured run (mean; 0 where the OS does not count them): memory
    /// the kernel maps and zeroes afresh in the steady state, after the warm-up.
    pub faults_per_run: f64,
}

impl Budget {
    /// Run `f` (which returns the seconds its run took) within the budget.
    pub fn run(&self, mut f: impl FnMut() -> Result<f64>) -> Result<Timed> {
        let mut spent = 0.0;
        let mut warmups = 0;
        while warmups < self.warmup.max(1) {
            let s = f()?;
            tracing::debug!(warmup = warmups, secs = s, "warm-up");
            spent += s;
            warmups += 1;
            if spent >= self.max_seconds * WARMUP_SHARE {
                break;
            }
        }
        let min = self.min_repeats.max(1).min(self.repeats.max(1));
        let mut secs: Vec<f64> = Vec::new();
        let mut budget_hit = false;
        let faults0 = runtime::mem::minor_faults();
        while secs.len() < self.repeats.max(1) {
            if secs.len() >= min {
                // Stop when one more run (at the mean so far) would overrun the budget.
                let mean = secs.iter().sum::<f64>() / secs.len() as f64;
                if spent + mean > self.max_seconds {
                    budget_hit = true;
                    break;
                }
            }
            let s = f()?;
            tracing::debug!(repeat = secs.len(), secs = s, "timed");
            spent += s;
            secs.push(s);
        }
        let faults = runtime::mem::minor_faults()
            .zip(faults0)
            .map_or(0, |(b, a)| b.saturating_sub(a));
        Ok(Timed {
            warmups,
            faults_per_run: faults as f64 / secs.len() as f64,
            secs,
            budget_hit,
            spent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake(durations: &[f64]) -> impl FnMut() -> Result<f64> + '_ {
        let mut i = 0;
        move || {
            let d = durations[i.min(durations.len() - 1)];
            i += 1;
            Ok(d)
        }
    }

    #[test]
    fn fast_runs_make_every_repeat() {
        let b = Budget {
            warmup: 3,
            repeats: 5,
            min_repeats: 2,
            max_seconds: 30.0,
        };
        let t = b.run(fake(&[0.1])).unwrap();
        assert_eq!((t.warmups, t.secs.len(), t.budget_hit), (3, 5, false));
        assert!((t.spent - 0.8).abs() < 1e-9);
    }

    #[test]
    fn slow_runs_stop_at_the_budget_after_the_minimum() {
        // 6 s per run, 30 s budget: warm-up stops after 2 (12 s ≥ 10 s), then 2 measured
        // (24 s); a third would end at 30 s — allowed; a fourth would overrun.
        let b = Budget {
            warmup: 3,
            repeats: 5,
            min_repeats: 2,
            max_seconds: 30.0,
        };
        let t = b.run(fake(&[6.0])).unwrap();
        assert_eq!((t.warmups, t.secs.len(), t.budget_hit), (2, 3, true));
        assert!(t.spent <= 30.0 + 1e-9);
    }

    #[test]
    fn very_slow_runs_still_make_the_minimum() {
        let b = Budget {
            warmup: 3,
            repeats: 5,
            min_repeats: 2,
            max_seconds: 30.0,
        };
        let t = b.run(fake(&[100.0])).unwrap();
        assert_eq!((t.warmups, t.secs.len(), t.budget_hit), (1, 2, true));
    }

    #[test]
    fn zero_warmup_still_warms_up_once() {
        let b = Budget {
            warmup: 0,
            repeats: 1,
            min_repeats: 2,
            max_seconds: 1.0,
        };
        let t = b.run(fake(&[0.1])).unwrap();
        assert_eq!((t.warmups, t.secs.len()), (1, 1));
    }

    #[test]
    fn errors_propagate() {
        let b = Budget {
            warmup: 1,
            repeats: 2,
            min_repeats: 2,
            max_seconds: 1.0,
        };
        assert!(b.run(|| anyhow::bail!("boom")).is_err());
    }
}
