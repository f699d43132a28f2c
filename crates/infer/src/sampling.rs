//! Next-token choice from logits: greedy, temperature, top-k, and nucleus (top-p, Holtzman
//! et al. 2020). Random draws come from libtorch's generator, seeded by the caller.
use tch::{Kind, Tensor};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// 0 = greedy (argmax).
    pub temperature: f64,
    /// Keep the k most likely ids (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of ids whose probability reaches p (1.0 = all).
    pub top_p: f64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        }
    }
}

impl Sampler {
    pub fn greedy() -> Self {
        Self::default()
    }

    /// Logits (B, V) → ids (B, 1).
    pub fn sample(&self, logits: &Tensor) -> Tensor {
        if self.temperature <= 0.0 {
            return logits.argmax(-1, true);
        }
        let mut l = logits.to_kind(Kind::Float) / self.temperature;
        let v = l.size()[1];
        if self.top_k > 0 && (self.top_k as i64) < v {
            let (top, _) = l.topk(self.top_k as i64, -1, true, true);
            let kth = top.narrow(-1, self.top_k as i64 - 1, 1); // (B, 1)
            l = l.masked_fill(&l.lt_tensor(&kth), f64::NEG_INFINITY);
        }
        if self.top_p < 1.0 {
            l = top_p_filter(&l, self.top_p);
        }
        l.softmax(-1, Kind::Float).multinomial(1, false)
    }
}

/// Mask (to −∞) every id outside the nucleus: the most likely ids whose cumulative
/// probability first reaches `p` (the top id is always kept).
pub fn top_p_filter(logits: &Tensor, p: f64) -> Tensor {
    let (sorted, idx) = logits.sort(-1, true);
    let probs = sorted.softmax(-1, Kind::Float);
    let cum = probs.cumsum(-1, Kind::Float);
    // Drop an id when the mass before it already reaches p.
    let drop_sorted = (cum - &probs).ge(p);
    let drop = drop_sorted.zeros_like().scatter(-1, &idx, &drop_sorted);
    logits.masked_fill(&drop, f64::NEG_INFINITY)
}
