//! Next-token choice from logits: greedy, temperature, top-k (Fan et al. 2018) and nucleus
//! / top-p (Holtzman et al. 2020, "The Curious Case of Neural Text Degeneration").
//!
//! The filtering runs where the logits are (CPU or GPU); the draw itself is an inverse-CDF
//! lookup on the host with the caller's own seeded [`Rng`], not libtorch's global generator,
//! so a seed reproduces the same sample whatever other threads do and on any device.
use anyhow::{bail, Result};
use runtime::Rng;
use tch::{Device, Kind, Tensor};

/// How to pick the next token. `temperature == 0` is greedy (argmax); the filters apply in
/// the order temperature → top-k → top-p, as in Hugging Face `generate`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// 0 = greedy; otherwise logits are divided by it before the softmax.
    pub temperature: f64,
    /// Keep only the k most likely ids (0 = no limit).
    pub top_k: usize,
    /// Keep the smallest set of most likely ids whose probability reaches p (1.0 = all).
    pub top_p: f64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::greedy()
    }
}

impl Sampler {
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Reject settings that cannot describe a distribution; the message names the flag.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            bail!(
                "--temperature must be a finite number ≥ 0 (0 = greedy), got {}",
                self.temperature
            );
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            bail!("--top-p must be in (0, 1], got {}", self.top_p);
        }
        Ok(())
    }

    /// Logits (B, V) → the sampling distribution (B, V), f32, zero outside the kept ids.
    pub fn probs(&self, logits: &Tensor) -> Tensor {
        let t = if self.is_greedy() {
            1.0
        } else {
            self.temperature
        };
        let mut l = logits.to_kind(Kind::Float) / t;
        if self.top_k > 0 {
            l = top_k_filter(&l, self.top_k);
        }
        if self.top_p < 1.0 {
            l = top_p_filter(&l, self.top_p);
        }
        l.softmax(-1, Kind::Float)
    }

    /// Logits (B, V) → one id per row, drawing uniforms from `rng` (greedy draws none).
    pub fn sample(&self, logits: &Tensor, rng: &mut Rng) -> Result<Vec<i64>> {
        if self.is_greedy() {
            // argmax of NaN logits would "succeed" with a meaningless id; `max` propagates a
            // NaN, so checking the B maxima (read back with the ids) catches NaN and +inf
            // without a pass over all B × V logits.
            let (best, ids) = logits.max_dim(-1, false); // (B,), (B,)
            let host = |t: Tensor| match t.device() {
                Device::Cpu => t,
                _ => t.to(Device::Cpu),
            };
            let best = match best.kind() {
                Kind::Float => best,
                _ => best.to_kind(Kind::Float),
            };
            if Vec::<f32>::try_from(host(best))?
                .iter()
                .any(|x| !x.is_finite())
            {
                bail!("cannot decode: the logits hold NaN or infinite values (the weights overflow in float arithmetic)");
            }
            return Ok(Vec::<i64>::try_from(host(ids))?);
        }
        let probs = self.probs(logits).to(Device::Cpu).contiguous(); // (B, V)
        let v = probs.size()[1] as usize;
        let flat = Vec::<f32>::try_from(probs.view([-1]))?;
        flat.chunks(v)
            .map(|row| match draw(row, uniform(rng)) {
                Some(i) => Ok(i as i64),
                None => bail!("cannot sample: the logits hold NaN or infinite values"),
            })
            .collect()
    }
}

/// A uniform draw in [0, 1) with 53 random bits.
pub fn uniform(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// Inverse CDF: the first id whose cumulative weight exceeds `u · Σw`, for non-negative
/// weights that need not sum to 1. Ids of weight 0 are never chosen; `None` when the
/// weights have no finite positive mass.
pub fn draw(weights: &[f32], u: f64) -> Option<usize> {
    let total: f64 = weights.iter().map(|&w| w as f64).sum();
    if !total.is_finite() || total <= 0.0 || weights.iter().any(|w| *w < 0.0) {
        return None;
    }
    let x = u * total;
    let mut acc = 0.0;
    for (i, &w) in weights.iter().enumerate() {
        acc += w as f64;
        if w > 0.0 && acc > x {
            return Some(i);
        }
    }
    // Rounding left x at the very top: the last id with mass.
    weights.iter().rposition(|&w| w > 0.0)
}

/// Mask (to −∞) every id below the k-th largest logit of its row (ties at the k-th kept).
pub fn top_k_filter(logits: &Tensor, k: usize) -> Tensor {
    let v = logits.size()[logits.dim() - 1];
    if k as i64 >= v {
        return logits.shallow_clone();
    }
    let (top, _) = logits.topk(k as i64, -1, true, true); // (B, k), descending
    let kth = top.narrow(-1, k as i64 - 1, 1); // (B, 1)
    logits.masked_fill(&logits.lt_tensor(&kth), f64::NEG_INFINITY)
}

/// Mask (to −∞) every id outside the nucleus: the most likely ids whose cumulative
/// probability first reaches `p`. The most likely id is always kept.
pub fn top_p_filter(logits: &Tensor, p: f64) -> Tensor {
    let (sorted, idx) = logits.sort(-1, true); // (B, V), descending
    let probs = sorted.softmax(-1, Kind::Float);
    let cum = probs.cumsum(-1, Kind::Float);
    // Drop an id when the mass of the ids before it already reaches p.
    let drop_sorted = (cum - &probs).ge(p);
    let drop = drop_sorted.zeros_like().scatter(-1, &idx, &drop_sorted); // back to id order
    logits.masked_fill(&drop, f64::NEG_INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draw_follows_the_cdf_and_skips_zero_mass() {
        let w = [0.0, 0.25, 0.0, 0.75];
        assert_eq!(draw(&w, 0.0), Some(1));
        assert_eq!(draw(&w, 0.2499), Some(1));
        assert_eq!(draw(&w, 0.25), Some(3));
        assert_eq!(draw(&w, 0.999_999), Some(3));
        // Unnormalised weights behave the same.
        assert_eq!(draw(&[0.0, 1.0, 0.0, 3.0], 0.3), Some(3));
        assert_eq!(draw(&[0.0, 0.0], 0.5), None);
        assert_eq!(draw(&[f32::NAN, 1.0], 0.5), None);
    }

    #[test]
    fn validate_names_the_flag() {
        let bad = |s: Sampler| s.validate().unwrap_err().to_string();
        let base = Sampler::greedy();
        assert!(bad(Sampler {
            temperature: -1.0,
            ..base
        })
        .contains("--temperature"));
        assert!(bad(Sampler { top_p: 0.0, ..base }).contains("--top-p"));
        assert!(bad(Sampler { top_p: 1.5, ..base }).contains("--top-p"));
        assert!(base.validate().is_ok());
    }
}
