//! The memory planner: weight bytes, KV-cache bytes per token (2 · layers · n_kv_heads ·
//! head_dim · bytes, the accounting of Pope et al. 2022 and the GQA paper, Ainslie et al.
//! 2023), and how many context tokens fit in a memory budget once the weights are loaded —
//! for MHA, the chosen GQA and MQA side by side. With a sliding window W (Mistral) the cache
//! is a rolling buffer: a sequence holds at most W positions however long it runs.
use model::accounting::{kv_cache_bytes_per_token, weight_bytes};
use model::quant::Scheme;
use model::ModelConfig;
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanRow {
    pub n_kv_heads: usize,
    /// "MHA", "GQA" or "MQA".
    pub kind: &'static str,
    /// The row of the chosen config.
    pub chosen: bool,
    pub weight_bytes: usize,
    pub kv_bytes_per_token: usize,
    /// Context tokens that fit after the weights (all sequences together): ⌊(M − W) / kv⌋.
    pub tokens_that_fit: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub memory_gb: f64,
    pub bytes_per_elem: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub head_dim: usize,
    pub block_size: usize,
    /// The config's sliding window W, if any (null = full attention).
    pub sliding_window: Option<usize>,
    /// Positions one sequence at full context keeps in the KV cache: block_size, or
    /// min(block_size, W) with a sliding window (the rolling buffer).
    pub kv_positions_per_sequence: usize,
    /// Weight quantization (`--quant`): "int8", "int4_g32", …; null = dense.
    pub quant: Option<String>,
    pub rows: Vec<PlanRow>,
}

fn kind(cfg: &ModelConfig, n_kv: usize) -> &'static str {
    match n_kv {
        k if k == cfg.n_head => "MHA",
        1 => "MQA",
        _ => "GQA",
    }
}

/// One row: `cfg` as it is, in `bytes_per_elem` bytes per number, in `memory_bytes`.
pub fn plan_row(cfg: &ModelConfig, bytes_per_elem: usize, memory_bytes: f64) -> PlanRow {
    plan_row_quant(cfg, bytes_per_elem, memory_bytes, None)
}

/// [`plan_row`] with the Linears and the head quantized by `quant` (`--quant`).
pub fn plan_row_quant(
    cfg: &ModelConfig,
    bytes_per_elem: usize,
    memory_bytes: f64,
    quant: Option<Scheme>,
) -> PlanRow {
    let weights = match quant {
        Some(q) => model::quant::planned_weight_bytes(cfg, q, bytes_per_elem),
        None => weight_bytes(cfg, bytes_per_elem),
    };
    let kv = kv_cache_bytes_per_token(cfg, bytes_per_elem);
    let left = (memory_bytes - weights as f64).max(0.0);
    PlanRow {
        n_kv_heads: cfg.n_kv_heads,
        kind: kind(cfg, cfg.n_kv_heads),
        chosen: true,
        weight_bytes: weights,
        kv_bytes_per_token: kv,
        tokens_that_fit: (left / kv as f64).floor() as usize,
    }
}

/// Positions one sequence at full context keeps cached: block_size, or at most W.
pub fn kv_positions_per_sequence(cfg: &ModelConfig) -> usize {
    cfg.sliding_window
        .map_or(cfg.block_size, |w| w.min(cfg.block_size))
}

/// MHA, the chosen `n_kv_heads` and MQA (each once), for a budget of `memory_gb` (10⁹ bytes).
pub fn plan(cfg: &ModelConfig, bytes_per_elem: usize, memory_gb: f64) -> Plan {
    plan_quant(cfg, bytes_per_elem, memory_gb, None)
}

/// [`plan`] with weights quantized by `quant` (the KV cache stays in `bytes_per_elem`).
pub fn plan_quant(
    cfg: &ModelConfig,
    bytes_per_elem: usize,
    memory_gb: f64,
    quant: Option<Scheme>,
) -> Plan {
    let mut kvs = vec![cfg.n_head, cfg.n_kv_heads, 1];
    kvs.dedup();
    let rows = kvs
        .into_iter()
        .map(|k| {
            let c = ModelConfig {
                n_kv_heads: k,
                ..cfg.clone()
            };
            PlanRow {
                chosen: k == cfg.n_kv_heads,
                ..plan_row_quant(&c, bytes_per_elem, memory_gb * 1e9, quant)
            }
        })
        .collect();
    Plan {
        memory_gb,
        bytes_per_elem,
        n_layer: cfg.n_layer,
        n_head: cfg.n_head,
        head_dim: cfg.head_dim(),
        block_size: cfg.block_size,
        sliding_window: cfg.sliding_window,
        kv_positions_per_sequence: kv_positions_per_sequence(cfg),
        quant: quant.map(|q| q.label()),
        rows,
    }
}

impl Plan {
    /// The plan as a small table.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "memory plan: {} layers, {} query heads of {} dims, {} bytes per number, weights {}, budget {} GB",
            self.n_layer,
            self.n_head,
            self.head_dim,
            self.bytes_per_elem,
            self.quant.as_deref().unwrap_or("dense"),
            self.memory_gb
        );
        let _ = writeln!(
            s,
            "  {:<10}  {:>12}  {:>14}  {:>19}  {:>18}",
            "KV heads", "weights (MB)", "KV bytes/token", "tokens that fit", "batch at full ctx"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "  {:<10}  {:>12.1}  {:>14}  {:>19}  {:>18}{}",
                format!("{} ({})", r.n_kv_heads, r.kind),
                r.weight_bytes as f64 / 1e6,
                r.kv_bytes_per_token,
                r.tokens_that_fit,
                r.tokens_that_fit / self.kv_positions_per_sequence.max(1),
                if r.chosen { "  <- chosen" } else { "" }
            );
        }
        let _ = writeln!(
            s,
            "  (tokens that fit = (budget − weights) / KV bytes per token, shared by all sequences; batch at full ctx = sequences of {} tokens, the full block_size)",
            self.block_size
        );
        if let Some(w) = self.sliding_window {
            let _ = writeln!(
                s,
                "  (sliding window {w}: the KV cache is a rolling buffer, so a sequence of any length caches at most {} positions)",
                self.kv_positions_per_sequence
            );
        }
        if self.rows.iter().all(|r| r.tokens_that_fit == 0) {
            let _ = writeln!(s, "  the weights alone exceed the budget");
        }
        s
    }
}
