//! The sweep's grid (full and `--quick`), one [`Point`] per measurement, and the memory
//! estimate that skips a point before it is tried (Korthikanti et al. 2022, "Reducing
//! Activation Recomputation in Large Transformer Models", §4: the ~34·s·b·h bytes of
//! activations per layer, plus naive attention's 5·a·s²·b — here counted as the score
//! tensors it materialises).
use super::row::{Section, Variant};
use crate::speed::Phase;
use model::accounting::{kv_cache_bytes_per_token, param_count};
use model::ModelConfig;
use runtime::DType;
use serde::{Deserialize, Serialize};

/// One measurement, as the parent hands it to a child process (JSON on the command line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub section: Section,
    pub preset: String,
    pub phase: Phase,
    pub variant: Variant,
    pub dtype: DType,
    pub batch: usize,
    /// T (attention), or the context before decoding starts (decode, real size: the prompt).
    pub seq_len: usize,
    /// New tokens per sequence (decode, real size).
    pub new_tokens: usize,
}

impl Point {
    /// One line for logs and the progress bar.
    pub fn label(&self) -> String {
        match self.section {
            Section::Attention => format!(
                "{} {} T={} B={} {}",
                self.phase, self.variant, self.seq_len, self.batch, self.dtype
            ),
            Section::Decode => format!(
                "decode {} ctx={} B={} {}",
                self.variant, self.seq_len, self.batch, self.dtype
            ),
            Section::RealSize => format!(
                "real size {} decode {} + {} {}",
                self.preset, self.seq_len, self.new_tokens, self.dtype
            ),
        }
    }

    /// The model shape this point runs.
    pub fn config(&self, base: &ModelConfig) -> ModelConfig {
        ModelConfig {
            n_kv_heads: self.variant.kv_heads(base.n_head),
            ..base.clone()
        }
    }

    /// Positions the point needs within the model's context.
    pub fn positions(&self) -> usize {
        self.seq_len + self.new_tokens
    }
}

/// The sizes a sweep runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    pub attention_t: Vec<usize>,
    /// Tokens per training/prefill step: batch = max(1, tokens / T), so every T does about
    /// the same work per token of the non-attention part.
    pub attention_tokens: usize,
    pub decode_context: Vec<usize>,
    pub decode_batch: Vec<usize>,
    pub decode_new_tokens: usize,
}

impl Grid {
    /// The grid, plus T = 4096 and 8192 where the preset's context allows.
    pub fn full() -> Self {
        Self {
            attention_t: vec![128, 256, 512, 1024, 2048, 4096, 8192],
            attention_tokens: 2048,
            decode_context: vec![256, 1024, 4096, 8192],
            decode_batch: vec![1, 8, 32],
            decode_new_tokens: 16,
        }
    }

    /// Seconds on a toy preset: for tests and CI.
    pub fn quick() -> Self {
        Self {
            attention_t: vec![32, 64, 128],
            attention_tokens: 128,
            decode_context: vec![16, 64],
            decode_batch: vec![1, 4],
            decode_new_tokens: 4,
        }
    }

    pub fn attention_points(&self, preset: &str, dtype: DType) -> Vec<Point> {
        let mut out = Vec::new();
        for phase in [Phase::Train, Phase::Prefill] {
            for &t in &self.attention_t {
                for variant in [Variant::Naive, Variant::Sdpa] {
                    out.push(Point {
                        section: Section::Attention,
                        preset: preset.into(),
                        phase,
                        variant,
                        dtype,
                        batch: (self.attention_tokens / t).max(1),
                        seq_len: t,
                        new_tokens: 0,
                    });
                }
            }
        }
        out
    }

    pub fn decode_points(&self, preset: &str, dtype: DType) -> Vec<Point> {
        let mut out = Vec::new();
        for &batch in &self.decode_batch {
            for &ctx in &self.decode_context {
                for variant in [Variant::Mha, Variant::Gqa4, Variant::Mqa] {
                    out.push(Point {
                        section: Section::Decode,
                        preset: preset.into(),
                        phase: Phase::Decode,
                        variant,
                        dtype,
                        batch,
                        seq_len: ctx,
                        new_tokens: self.decode_new_tokens,
                    });
                }
            }
        }
        out
    }
}

/// GPT-2 small decode at batch 1, prompt 64 + 128 new tokens, in fp32 and in `fast` (once
/// when they are the same).
pub fn real_size_points(fast: DType) -> Vec<Point> {
    let mut dtypes = vec![DType::Fp32];
    if fast != DType::Fp32 {
        dtypes.push(fast);
    }
    dtypes
        .into_iter()
        .map(|dtype| Point {
            section: Section::RealSize,
            preset: "gpt2_124m".into(),
            phase: Phase::Decode,
            variant: Variant::Mha,
            dtype,
            batch: 1,
            seq_len: 64,
            new_tokens: 128,
        })
        .collect()
}

/// Naive attention's f32 score tensor of one layer: B·H·T·T·4 bytes.
pub fn score_bytes(cfg: &ModelConfig, p: &Point) -> u64 {
    if p.variant != Variant::Naive {
        return 0;
    }
    (p.batch * cfg.n_head) as u64 * (p.seq_len as u64).pow(2) * 4
}

/// Bytes one decode step reads: every matmul weight once (the LM head included) and the
/// KV cache at the point's mean context.
pub fn decode_bytes_per_step(cfg: &ModelConfig, p: &Point) -> u64 {
    let weights = param_count(cfg).matmul * p.dtype.bytes();
    let mean_ctx = p.seq_len + p.new_tokens / 2;
    let kv = kv_cache_bytes_per_token(cfg, p.dtype.bytes()) * p.batch * mean_ctx;
    (weights + kv) as u64
}

/// A rough upper estimate of the peak memory of a point, to skip what cannot fit.
pub fn estimate_bytes(cfg: &ModelConfig, p: &Point) -> u64 {
    let params = param_count(cfg).total as u64;
    let (b, t) = (p.batch as u64, p.seq_len as u64);
    let (l, d, v) = (cfg.n_layer as u64, cfg.n_embd as u64, cfg.vocab_size as u64);
    let e = p.dtype.bytes() as u64;
    // The scores, their f32 copy, the masked and softmaxed ones (and the cast back).
    let scores = score_bytes(cfg, p) * 4;
    match p.phase {
        // fp32 weights, grads, AdamW m and v; activations per layer; the logits in f32
        // with their gradient; naive keeps every layer's scores for the backward.
        Phase::Train => 16 * params + l * 34 * b * t * d * e + 12 * b * t * v + l * scores,
        // Weights in the compute dtype; one layer's activations and scores at a time.
        Phase::Prefill => e * params + 34 * b * t * d * e + l * b * t * d * 2 * e + scores,
        Phase::Decode => {
            let kv = kv_cache_bytes_per_token(cfg, p.dtype.bytes()) * p.batch * p.positions();
            e * params + kv as u64 + 4 * b * v
        }
    }
}

/// Memory a point may use: `MemAvailable` of /proc/meminfo × `share`; `None` where unknown.
pub fn available_bytes(share: f64) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kb as f64 * 1024.0 * share) as u64)
}

/// Why a point cannot run, or `None` when it can.
pub fn skip_reason(cfg: &ModelConfig, p: &Point, limit: Option<u64>) -> Option<String> {
    if p.positions() > cfg.block_size {
        return Some(format!(
            "needs {} positions, beyond the preset's block_size {}",
            p.positions(),
            cfg.block_size
        ));
    }
    if !cfg.n_head.is_multiple_of(p.variant.kv_heads(cfg.n_head)) {
        return Some(format!(
            "{} KV heads do not divide n_head = {}",
            p.variant.kv_heads(cfg.n_head),
            cfg.n_head
        ));
    }
    let need = estimate_bytes(cfg, p);
    match limit {
        Some(limit) if need > limit => Some(format!(
            "would not fit memory: estimated {:.1} GB > {:.1} GB allowed",
            need as f64 / 1e9,
            limit as f64 / 1e9
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_sizes_and_skips() {
        let cfg = ModelConfig::gpt2_long_cpu();
        let g = Grid::full();
        let att = g.attention_points("gpt2_long_cpu", DType::Bf16);
        assert_eq!(att.len(), 2 * 7 * 2);
        assert_eq!((att[0].batch, att[12].batch), (16, 1));
        assert_eq!(g.decode_points("x", DType::Bf16).len(), 3 * 4 * 3);
        // Naive training at T = 8192 needs its scores for every layer: far beyond 24 GB.
        let naive = att
            .iter()
            .find(|p| p.phase == Phase::Train && p.seq_len == 8192 && p.variant == Variant::Naive)
            .unwrap();
        let why = skip_reason(&cfg, naive, Some(20_000_000_000)).unwrap();
        assert!(why.contains("would not fit memory"), "{why}");
        let small = &att[1];
        assert_eq!(skip_reason(&cfg, small, Some(20_000_000_000)), None);
        let tiny = ModelConfig::gpt2_tiny_sweep();
        let past = Point {
            seq_len: 1024,
            ..small.clone()
        };
        assert!(skip_reason(&tiny, &past, None)
            .unwrap()
            .contains("block_size 512"));
    }

    #[test]
    fn decode_bytes_grow_with_context_and_shrink_with_kv_heads() {
        let cfg = ModelConfig::gpt2_long_cpu();
        let p = Grid::full().decode_points("x", DType::Bf16);
        let mha = Point {
            seq_len: 4096,
            batch: 8,
            ..p[0].clone()
        };
        let mqa = Point {
            variant: Variant::Mqa,
            ..mha.clone()
        };
        let (a, b) = (
            decode_bytes_per_step(&mha.config(&cfg), &mha),
            decode_bytes_per_step(&mqa.config(&cfg), &mqa),
        );
        assert!(a > 3 * b, "{a} vs {b}");
    }
}
