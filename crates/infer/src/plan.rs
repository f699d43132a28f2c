//! The memory planner: weights, KV-cache bytes per token, and how many context tokens fit
//! in a memory budget after the weights — for MHA and the chosen GQA, in the chosen dtype.
use model::accounting::{kv_cache_bytes_per_token, param_count};
use model::ModelConfig;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct PlanRow {
    pub n_kv_heads: usize,
    pub weight_bytes: usize,
    pub kv_bytes_per_token: usize,
    /// Context tokens that fit in the budget after the weights (all sequences together).
    pub tokens_that_fit: usize,
}

pub fn plan_row(cfg: &ModelConfig, bytes_per_elem: usize, memory_bytes: f64) -> PlanRow {
    let weight_bytes = param_count(cfg).total * bytes_per_elem;
    let kv = kv_cache_bytes_per_token(cfg, bytes_per_elem);
    let left = (memory_bytes - weight_bytes as f64).max(0.0);
    PlanRow {
        n_kv_heads: cfg.n_kv_heads,
        weight_bytes,
        kv_bytes_per_token: kv,
        tokens_that_fit: (left / kv as f64) as usize,
    }
}

/// Rows for MHA, the chosen config, and MQA (deduplicated), as a text table.
pub fn plan_table(
    cfg: &ModelConfig,
    bytes_per_elem: usize,
    memory_gb: f64,
) -> (Vec<PlanRow>, String) {
    let mem = memory_gb * 1e9;
    let mut kvs = vec![cfg.n_head, cfg.n_kv_heads, 1];
    kvs.dedup();
    let rows: Vec<PlanRow> = kvs
        .iter()
        .map(|&k| {
            plan_row(
                &ModelConfig {
                    n_kv_heads: k,
                    ..cfg.clone()
                },
                bytes_per_elem,
                mem,
            )
        })
        .collect();
    let mut s = format!(
        "memory plan: {} layers, {} query heads, head_dim {}, {} bytes/element, budget {memory_gb} GB\n",
        cfg.n_layer,
        cfg.n_head,
        cfg.head_dim(),
        bytes_per_elem
    );
    s.push_str("  n_kv_heads   weights (MB)   KV bytes/token   context tokens that fit\n");
    for r in &rows {
        let tag = match r.n_kv_heads {
            k if k == cfg.n_head => "MHA",
            1 => "MQA",
            _ => "GQA",
        };
        let mark = if r.n_kv_heads == cfg.n_kv_heads {
            " <- chosen"
        } else {
            ""
        };
        s.push_str(&format!(
            "  {:>4} ({tag})   {:>12.1}   {:>14}   {:>23}{mark}\n",
            r.n_kv_heads,
            r.weight_bytes as f64 / 1e6,
            r.kv_bytes_per_token,
            r.tokens_that_fit
        ));
    }
    (rows, s)
}
