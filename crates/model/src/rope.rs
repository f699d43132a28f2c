//! Rotary position embedding (Su et al. 2021, "RoFormer"), in the Hugging Face
//! "rotate-half" layout that Llama checkpoints on the Hub use: the first and second
//! halves of each head are the two coordinates of each rotated pair.
//!
//!   q'ᵢ = qᵢ·cos(p·θᵢ) − q_{i+d/2}·sin(p·θᵢ),  θᵢ = base^(−2i/d)
use tch::{Device, Kind, Tensor};

/// Precomputed cos/sin tables, (max_pos, 1, head_dim), f32 (the 1 broadcasts over heads).
/// `sin` carries rotate-half's sign
/// (−sin on the first half), so a rotation is `x·cos + swap_halves(x)·sin`: four ops.
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
        let freqs = pos.outer(&inv_freq); // (P, d/2)
        let emb = freqs.repeat([1, 2]); // (P, d): [freqs, freqs]
        let sin = freqs.sin();
        Self {
            cos: emb.cos().unsqueeze(1),                          // (P, 1, d)
            sin: Tensor::cat(&[&(-&sin), &sin], -1).unsqueeze(1), // (P, 1, d): [−sin, sin]
        }
    }

    /// Rotate `x` (B, h, T, d) whose first position is `start_pos`; returns x's dtype.
    pub fn apply(&self, x: &Tensor, start_pos: usize) -> Tensor {
        let t = x.size()[2];
        self.rotate(x, start_pos, t, false)
    }

    /// Rotate `x` (B, T, h, d) — the layout a fused q/k projection comes out in, so q and k
    /// heads turn in one pass — whose first position is `start_pos`; returns x's dtype.
    pub fn apply_bthd(&self, x: &Tensor, start_pos: usize) -> Tensor {
        let t = x.size()[1];
        self.rotate(x, start_pos, t, true)
    }

    /// `x·cos + rotate_half(x)·sin` for a 4-d `x` of T positions; `cos`/`sin` broadcast as
    /// (T, d) over (B, h, T, d), or as (T, 1, d) over (B, T, h, d) when `heads_after_t`.
    fn rotate(&self, x: &Tensor, start_pos: usize, t: i64, heads_after_t: bool) -> Tensor {
        let mut cos = self.cos.narrow(0, start_pos as i64, t); // (T, 1, d)
        let mut sin = self.sin.narrow(0, start_pos as i64, t);
        if !heads_after_t {
            (cos, sin) = (cos.squeeze_dim(1), sin.squeeze_dim(1)); // (T, d)
        }
        let xf = crate::layers::as_kind(x, Kind::Float);
        let mut shape = xf.size();
        let d = shape[3];
        // rotate_half without the minus (it is in `sin`): the two halves swapped (cheaper
        // than `roll` by half, measured in instructions).
        shape.splice(3.., [2, d / 2]);
        let swapped = xf
            .view(shape.as_slice())
            .flip([3])
            .reshape(xf.size().as_slice()); // (…, d)
        let y = (&xf * cos).addcmul(&swapped, &sin);
        crate::layers::as_kind(&y, x.kind())
    }
}
