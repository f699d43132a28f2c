//! One CSV row per sweep point (measured, skipped or failed), and the CSV files.
use super::plan::Point;
use crate::speed::Phase;
use anyhow::Result;
use model::{AttnKernel, ModelConfig};
use runtime::DType;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which curve family a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Training step and prefill vs sequence length, naive vs SDPA.
    Attention,
    /// KV-cache decode vs context and batch, MHA vs GQA-4 vs MQA.
    Decode,
    /// GPT-2 small decode at batch 1, fp32 and the fast precision.
    RealSize,
}

/// The line a point is drawn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Naive,
    Sdpa,
    Mha,
    Gqa4,
    Mqa,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Naive => "naive",
            Variant::Sdpa => "sdpa",
            Variant::Mha => "mha",
            Variant::Gqa4 => "gqa4",
            Variant::Mqa => "mqa",
        }
    }

    /// Attention kernel: naive for `Naive`, SDPA for everything else.
    pub fn kernel(self) -> AttnKernel {
        if self == Variant::Naive {
            AttnKernel::Naive
        } else {
            AttnKernel::Sdpa
        }
    }

    /// KV heads for `n_head` query heads (MHA: all, GQA-4: 4, MQA: 1; attention rows: all).
    pub fn kv_heads(self, n_head: usize) -> usize {
        match self {
            Variant::Gqa4 => 4,
            Variant::Mqa => 1,
            _ => n_head,
        }
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.name())
    }
}

/// Whether a point ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not run: over the memory limit, past block_size or past the total budget (see note).
    Skipped,
    /// The measuring process failed (see note).
    Failed,
}

/// One point of a sweep. `seq_len` is T for attention rows and the context (positions in
/// the cache when decoding starts) for decode rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub section: Section,
    pub preset: String,
    pub phase: Phase,
    pub variant: Variant,
    pub dtype: DType,
    pub attention: AttnKernel,
    pub n_kv_heads: usize,
    pub batch: usize,
    pub seq_len: usize,
    pub new_tokens: usize,
    pub status: Status,
    pub tokens_per_sec: f64,
    pub tokens_per_sec_min: f64,
    pub tokens_per_sec_max: f64,
    pub ms_per_step: f64,
    /// Peak resident set of the process that measured this point alone (host memory).
    pub peak_rss_bytes: u64,
    /// Naive attention's (B·H·T·T) f32 score tensor of one layer; 0 for other rows.
    pub score_bytes: u64,
    /// K and V held at the end of the point (decode rows).
    pub kv_cache_bytes: u64,
    /// Bytes a decode step must read: the matmul weights + the KV cache at the mean context.
    pub bytes_per_step: u64,
    /// Read bandwidth measured by the point's own process right before its timed repeats
    /// (median; decode rows; 0 in older CSVs: then the machine record's is used).
    #[serde(default)]
    pub bandwidth_bytes_per_s: f64,
    /// batch · bandwidth ÷ bytes_per_step: the memory-bandwidth roofline (decode rows).
    pub roofline_tokens_per_sec: f64,
    /// tokens_per_sec ÷ roofline_tokens_per_sec.
    pub roofline_fraction: f64,
    pub repeats: usize,
    /// Seconds the point took, warm-up included.
    pub point_s: f64,
    pub budget_hit: bool,
    pub note: String,
    pub threads: usize,
    pub device: String,
    pub git_rev: String,
    pub timestamp: String,
}

impl Row {
    /// A row for `p` on `cfg` with nothing measured yet.
    pub fn blank(p: &Point, cfg: &ModelConfig, status: Status, note: String) -> Row {
        Row {
            section: p.section,
            preset: p.preset.clone(),
            phase: p.phase,
            variant: p.variant,
            dtype: p.dtype,
            attention: p.variant.kernel(),
            n_kv_heads: p.variant.kv_heads(cfg.n_head),
            batch: p.batch,
            seq_len: p.seq_len,
            new_tokens: p.new_tokens,
            status,
            tokens_per_sec: 0.0,
            tokens_per_sec_min: 0.0,
            tokens_per_sec_max: 0.0,
            ms_per_step: 0.0,
            peak_rss_bytes: 0,
            score_bytes: super::plan::score_bytes(cfg, p),
            kv_cache_bytes: 0,
            bytes_per_step: 0,
            bandwidth_bytes_per_s: 0.0,
            roofline_tokens_per_sec: 0.0,
            roofline_fraction: 0.0,
            repeats: 0,
            point_s: 0.0,
            budget_hit: false,
            note,
            threads: tch::get_num_threads().max(1) as usize,
            device: String::new(),
            git_rev: runtime::facts::git_rev(),
            timestamp: runtime::facts::timestamp_utc(),
        }
    }

    pub fn ok(&self) -> bool {
        self.status == Status::Ok
    }

    /// Fill tokens/sec (median, min, max) and ms/step from measured seconds per run of
    /// `tokens` tokens in `steps` steps.
    pub fn set_rates(&mut self, timed: &crate::speed::budget::Timed, tokens: usize, steps: usize) {
        let rates: Vec<f64> = timed.secs.iter().map(|s| tokens as f64 / s).collect();
        let st = crate::speed::Stats::of(&rates);
        self.tokens_per_sec = st.median;
        self.tokens_per_sec_min = st.min;
        self.tokens_per_sec_max = st.max;
        self.ms_per_step = 1e3 * tokens as f64 / st.median / steps.max(1) as f64;
        self.repeats = timed.secs.len();
        self.point_s = timed.spent;
        self.budget_hit = timed.budget_hit;
    }
}

/// Write `rows` to `path` (replacing it) through a temporary file.
pub fn write_rows(path: &Path, rows: &[Row]) -> Result<()> {
    crate::csvio::write_rows(path, rows)
}

pub fn read_rows(path: &Path) -> Result<Vec<Row>> {
    crate::csvio::read_rows(path)
}
