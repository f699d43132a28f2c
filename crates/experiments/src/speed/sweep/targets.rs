//! The sweep's targets (benchmarks, not timed tests) and, for each one missed, by how much
//! and why — from the measured rows and the arithmetic of `model::accounting` (attention's
//! share of the training FLOPs for SDPA, Amdahl's law; bytes per decode step for GQA/MQA
//! and the roofline).
use super::row::{Row, Section, Variant};
use super::summary::{find, gb, ratios};
use crate::speed::Phase;
use model::accounting::param_count;
use model::ModelConfig;
use std::fmt::Write as _;

/// One target and its verdict; `met` is `None` when the rows cannot decide it.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub what: String,
    pub measured: String,
    pub met: Option<bool>,
    /// For a miss: by how much and why, with the numbers.
    pub why: String,
}

fn unmeasured(what: &str, why: &str) -> Verdict {
    Verdict {
        what: what.into(),
        measured: "not measured".into(),
        met: None,
        why: why.into(),
    }
}

/// A ratio to two decimals, rounded down: a miss never reads as the threshold itself
/// (1.497× shows as 1.49×, not 1.50×).
fn floor2(x: f64) -> String {
    format!("{:.2}", (x * 100.0 + 1e-9).floor() / 100.0)
}

fn cfg_of(r: &Row) -> Option<ModelConfig> {
    let c = ModelConfig::preset(&r.preset).ok()?;
    Some(ModelConfig {
        n_kv_heads: r.n_kv_heads,
        ..c
    })
}

/// Every target, in the order.
pub fn verdicts(rows: &[Row]) -> Vec<Verdict> {
    let mut v = vec![sdpa_speed(rows), sdpa_memory(rows)];
    v.extend(gqa(rows));
    v.push(roofline(rows));
    v
}

fn sdpa_speed(rows: &[Row]) -> Verdict {
    let what = "SDPA training ≥ 1.5× naive at the largest T measured";
    let tps = ratios(
        rows,
        Section::Attention,
        Phase::Train,
        (Variant::Sdpa, Variant::Naive),
        None,
        |r| r.tokens_per_sec,
    );
    let Some(&(t, x)) = tps.last() else {
        return unmeasured(what, "no T with both kernels measured in training");
    };
    let mut why = String::new();
    if x < 1.5 {
        let r = find(
            rows,
            Section::Attention,
            Phase::Train,
            Variant::Sdpa,
            None,
            t,
        )
        .unwrap();
        if let Some(cfg) = cfg_of(r) {
            let n = param_count(&cfg).matmul as f64;
            let (l, h, q) = (cfg.n_layer as f64, cfg.n_head as f64, cfg.head_dim() as f64);
            let att = 12.0 * l * h * q * t as f64;
            let share = att / (6.0 * n + att);
            let _ = write!(why, "short by {:.1} % ({}× vs 1.5×). At T = {t} attention is {:.0} % of the training FLOPs (12·L·H·Q·T = {:.2} MFLOP of 6·N + 12·L·H·Q·T = {:.2} MFLOP per token, N = {:.1} M matmul parameters, the {}-wide LM head included), so even free attention would make the step at most {:.2}× faster (Amdahl); SDPA removes the score tensors' memory traffic, not the matmul FLOPs.", 100.0 * (1.5 - x) / 1.5, floor2(x), 100.0 * share, att / 1e6, (6.0 * n + att) / 1e6, n / 1e6, cfg.vocab_size, 1.0 / (1.0 - share));
        }
    }
    let bigger: Vec<usize> = rows
        .iter()
        .filter(|r| {
            r.section == Section::Attention
                && r.phase == Phase::Train
                && r.variant == Variant::Naive
                && !r.ok()
                && r.seq_len > t
        })
        .map(|r| r.seq_len)
        .collect();
    if !bigger.is_empty() {
        let _ = write!(why, " Naive training was not run at T = {bigger:?} (memory or budget; see the table), where SDPA was.");
    }
    Verdict {
        what: what.into(),
        measured: format!("{}× at T = {t}", floor2(x)),
        met: Some(x >= 1.5),
        why: why.trim().into(),
    }
}

fn sdpa_memory(rows: &[Row]) -> Verdict {
    let what = "SDPA training peak memory < naive's at every T ≥ 1024";
    let mem: Vec<(usize, f64)> = ratios(
        rows,
        Section::Attention,
        Phase::Train,
        (Variant::Sdpa, Variant::Naive),
        None,
        |r| r.peak_rss_bytes as f64,
    )
    .into_iter()
    .filter(|&(t, _)| t >= 1024)
    .collect();
    if mem.is_empty() {
        return unmeasured(what, "no T ≥ 1024 with both kernels measured in training");
    }
    let measured = mem
        .iter()
        .map(|(t, r)| format!("T {t}: {r:.2}×"))
        .collect::<Vec<_>>()
        .join(", ");
    let missed: Vec<usize> = mem
        .iter()
        .filter(|(_, r)| *r >= 1.0)
        .map(|(t, _)| *t)
        .collect();
    let mut why = String::new();
    for &t in &missed {
        let n = find(
            rows,
            Section::Attention,
            Phase::Train,
            Variant::Naive,
            None,
            t,
        )
        .unwrap();
        let s = find(
            rows,
            Section::Attention,
            Phase::Train,
            Variant::Sdpa,
            None,
            t,
        )
        .unwrap();
        let _ = write!(why, "At T = {t} SDPA peaked at {} vs naive's {}: naive's scores (one layer: {}) are small next to the rest of the step (weights, AdamW state, activations, the logits), and the allocator's high-water mark hides the difference. ", gb(s.peak_rss_bytes as f64), gb(n.peak_rss_bytes as f64), gb(n.score_bytes as f64));
    }
    Verdict {
        what: what.into(),
        measured: format!("SDPA/naive peak RSS: {measured}"),
        met: Some(missed.is_empty()),
        why: why.trim().into(),
    }
}

fn gqa(rows: &[Row]) -> Vec<Verdict> {
    let (b, ctx) = (8, 4096);
    let at = |v| find(rows, Section::Decode, Phase::Decode, v, Some(b), ctx);
    let mut out = Vec::new();
    for (what, a, base, min) in [
        (
            "GQA-4 decode ≥ 1.3× MHA at batch 8 × context 4096",
            Variant::Gqa4,
            Variant::Mha,
            1.3,
        ),
        (
            "MQA decode ≥ GQA-4 at batch 8 × context 4096",
            Variant::Mqa,
            Variant::Gqa4,
            1.0,
        ),
    ] {
        let (Some(ra), Some(rb)) = (at(a), at(base)) else {
            out.push(unmeasured(
                what,
                "that point was not measured (preset context, memory or budget)",
            ));
            continue;
        };
        let x = ra.tokens_per_sec / rb.tokens_per_sec;
        let bound = rb.bytes_per_step as f64 / ra.bytes_per_step.max(1) as f64;
        let why = if x >= min {
            String::new()
        } else {
            format!("short by {:.1} % ({}× vs {min:.1}×). A step reads {} with {} vs {} with {}, so a purely bandwidth-bound step would gain {bound:.2}×; measured {:.0} ms vs {:.0} ms per step, at {:.0} % and {:.0} % of the roofline: the time not spent reading bytes (compute, per-op overhead) does not shrink with fewer KV heads.", 100.0 * (min - x) / min, floor2(x), gb(rb.bytes_per_step as f64), rb.variant, gb(ra.bytes_per_step as f64), ra.variant, rb.ms_per_step, ra.ms_per_step, 100.0 * rb.roofline_fraction, 100.0 * ra.roofline_fraction)
        };
        out.push(Verdict {
            what: what.into(),
            measured: format!(
                "{}× ({:.0} vs {:.0} tok/s; bandwidth bound {bound:.2}×)",
                floor2(x),
                ra.tokens_per_sec,
                rb.tokens_per_sec
            ),
            met: Some(x >= min),
            why,
        });
    }
    out
}

fn roofline(rows: &[Row]) -> Verdict {
    let what = "KV-cache decode at batch 1 ≥ 50 % of the bandwidth roofline";
    let pts: Vec<&Row> = rows
        .iter()
        .filter(|r| {
            r.ok()
                && r.batch == 1
                && r.phase == Phase::Decode
                && (r.section == Section::RealSize || r.variant == Variant::Mha)
        })
        .collect();
    if pts.is_empty() {
        return unmeasured(what, "no batch-1 decode point measured");
    }
    let name = |r: &Row| match r.section {
        Section::RealSize => format!("{} {}", r.preset, r.dtype),
        _ => format!("ctx {}", r.seq_len),
    };
    let measured = pts
        .iter()
        .map(|r| format!("{}: {:.1} %", name(r), 100.0 * r.roofline_fraction))
        .collect::<Vec<_>>()
        .join(", ");
    let worst = pts
        .iter()
        .min_by(|a, b| a.roofline_fraction.total_cmp(&b.roofline_fraction))
        .unwrap();
    let met = worst.roofline_fraction >= 0.5;
    let why = if met {
        String::new()
    } else {
        let ideal_ms = worst.ms_per_step * worst.roofline_fraction;
        let n_ops = cfg_of(worst).map_or(0, |c| c.n_layer * 15 + 5);
        format!("worst: {} at {:.1} % ({:.1} pp short): a step takes {:.2} ms where reading its {} at the measured bandwidth takes {:.2} ms; the other {:.2} ms are not memory traffic — about {n_ops} small kernels per step (≈ 15 per layer), each with its dispatch overhead, on matrix-vector products too thin to keep every core streaming.", name(worst), 100.0 * worst.roofline_fraction, 100.0 * (0.5 - worst.roofline_fraction), worst.ms_per_step, gb(worst.bytes_per_step as f64), ideal_ms, worst.ms_per_step - ideal_ms)
    };
    Verdict {
        what: what.into(),
        measured,
        met: Some(met),
        why,
    }
}

/// The verdicts as a Markdown table, then one line per miss saying by how much and why.
pub fn table(rows: &[Row]) -> String {
    let v = verdicts(rows);
    let mut s = String::from("| target | measured | met |\n|---|---|---|\n");
    for t in &v {
        let met = match t.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "–",
        };
        let _ = writeln!(s, "| {} | {} | {met} |", t.what, t.measured);
    }
    for t in v.iter().filter(|t| !t.why.is_empty()) {
        let _ = writeln!(s, "\n- *{}*: {}", t.what, t.why);
    }
    s
}
