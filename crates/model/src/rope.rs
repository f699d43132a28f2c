//! Rotary position embedding (Su et al. 2021, "RoFormer"), in the Hugging Face
//! "rotate-half" layout that Llama checkpoints on the Hub use: the first and second
//! halves of each head are the two coordinates of each rotated pair.
//!
//!   q'ᵢ = qᵢ·cos(p·θᵢ) − q_{i+d/2}·sin(p·θᵢ),  θᵢ = base^(−2i/d)
use tch::{Device, Kind, Tensor};

/// Precomputed cos/sin tables, (max_pos, head_dim), f32.
#[derive(Debug)]
pub struct Rope {
    cos: Tensor,
    sin: Tensor,
}

impl Rope {
    pub fn new(head_dim: usize, max_pos: usize, theta: f64, device: Device) -> Self {
        let half = (head_dim / 2) as i64;
        // As HF Llama, all in f32: inv_freq = 1 / base^(2i/d), freqs = p ⊗ inv_freq.
        let exps = Tensor::arange(half, (Kind::Float, device)) * (2.0 / head_dim as f64);
        let inv_freq = Tensor::pow_scalar(theta, &exps).reciprocal();
        let pos = Tensor::arange(max_pos as i64, (Kind::Float, device));
        let emb = pos.outer(&inv_freq).repeat([1, 2]); // (P, d): [freqs, freqs]
        Self {
            cos: emb.cos(),
            sin: emb.sin(),
        }
    }

    /// Rotate `x` (B, h, T, d) whose first position is `start_pos`; returns x's dtype.
    pub fn apply(&self, x: &Tensor, start_pos: usize) -> Tensor {
        let t = x.size()[2];
        let cos = self.cos.narrow(0, start_pos as i64, t); // (T, d)
        let sin = self.sin.narrow(0, start_pos as i64, t);
        let xf = x.to_kind(Kind::Float);
        let d = xf.size()[3];
        let x1 = xf.narrow(-1, 0, d / 2);
        let x2 = xf.narrow(-1, d / 2, d / 2);
        let rotated = Tensor::cat(&[&(-x2), &x1], -1); // rotate_half
        (xf * cos + rotated * sin).to_kind(x.kind())
    }
}
