//! What a run reports: time to first token, prefill and decode throughput, KV-cache bytes
//! and peak memory (peak RSS, `VmHWM` in `/proc/self/status`, see proc(5)) — as a short
//! text block for stderr or as one JSON object.
use crate::generation::Generation;
use serde::Serialize;
use std::fmt::Write;

/// The settings a run used (the `settings` object of the JSON report).
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// "preset gpt2_124m (random weights)", "model ../shared/models/stories260K", …
    pub source: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub block_size: usize,
    pub dtype: String,
    /// Bytes per weight / cache element in `dtype`.
    pub dtype_bytes: usize,
    pub attention: String,
    pub kv_cache: bool,
    pub batch: usize,
    pub threads: i32,
    pub device: String,
    pub temperature: f64,
    pub top_k: usize,
    pub top_p: f64,
    pub seed: u64,
    pub max_new_tokens: usize,
    pub eos: Vec<i64>,
}

/// The JSON report (`--format json`): one object on stdout.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// New ids, one list per sequence (so `ids[0]` for a batch of one).
    pub ids: Vec<Vec<i64>>,
    /// The decoded new text per sequence (EOS left out), or null without a tokenizer.
    pub text: Option<Vec<String>>,
    pub prompt_ids: Vec<i64>,
    pub ttft_ms: f64,
    pub prefill_tokens_per_sec: f64,
    pub decode_tokens_per_sec: f64,
    pub decode_steps: usize,
    pub kv_cache_bytes: usize,
    pub kv_cache_capacity_bytes: usize,
    /// Peak resident set of the process (bytes), null where /proc is not available.
    pub peak_rss_bytes: Option<u64>,
    pub settings: Settings,
}

impl Report {
    pub fn new(
        gen: &Generation,
        text: Option<Vec<String>>,
        prompt_ids: Vec<i64>,
        settings: Settings,
    ) -> Self {
        Self {
            ids: gen.ids.clone(),
            text,
            prompt_ids,
            ttft_ms: gen.ttft_s * 1e3,
            prefill_tokens_per_sec: gen.prefill_tokens_per_sec(),
            decode_tokens_per_sec: gen.decode_tokens_per_sec(),
            decode_steps: gen.decode_steps,
            kv_cache_bytes: gen.kv_cache_bytes,
            kv_cache_capacity_bytes: gen.kv_cache_capacity_bytes,
            peak_rss_bytes: runtime::mem::peak_rss_bytes(),
            settings,
        }
    }

    /// The human-readable summary (for stderr).
    pub fn text(&self) -> String {
        let s = &self.settings;
        let new = self.ids.first().map_or(0, Vec::len);
        let fed = self.prompt_ids.len() + self.decode_steps;
        let mut o = String::new();
        let _ = writeln!(
            o,
            "--- {new} new token(s) × {} sequence(s) | {} | {}, {} attention, KV cache {}, {} of {} heads for K/V | {} thread(s), {}",
            s.batch,
            s.source,
            s.dtype,
            s.attention,
            if s.kv_cache { "on" } else { "off" },
            s.n_kv_heads,
            s.n_head,
            s.threads,
            s.device
        );
        let _ = writeln!(o, "time to first token  {:>10.1} ms", self.ttft_ms);
        let _ = writeln!(
            o,
            "prefill              {:>10.1} tokens/s ({} prompt token(s) × {})",
            self.prefill_tokens_per_sec,
            self.prompt_ids.len(),
            s.batch
        );
        let _ = writeln!(
            o,
            "decode               {:>10.1} tokens/s ({} step(s) × {})",
            self.decode_tokens_per_sec, self.decode_steps, s.batch
        );
        if s.kv_cache {
            let _ = writeln!(
                o,
                "KV cache             {:>10.2} MB (2 · {} layers · {} KV heads · {} dims · {} bytes · {fed} tokens{})",
                self.kv_cache_bytes as f64 / 1e6,
                s.n_layer,
                s.n_kv_heads,
                s.head_dim,
                s.dtype_bytes,
                if s.batch > 1 { format!(" · {} sequences", s.batch) } else { String::new() }
            );
        } else {
            let _ = writeln!(
                o,
                "KV cache                    off (every step recomputes the whole context)"
            );
        }
        match self.peak_rss_bytes {
            Some(b) => {
                let _ = writeln!(
                    o,
                    "peak memory          {:>10.1} MB (peak RSS)",
                    b as f64 / 1e6
                );
            }
            None => {
                let _ = writeln!(o, "peak memory                 n/a (no /proc/self/status)");
            }
        }
        o
    }
}
