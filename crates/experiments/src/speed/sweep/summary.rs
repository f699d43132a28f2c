//! The sweep in words, computed from its rows: where one variant overtakes another
//! (crossover points), where naive attention's B·H·T·T scores dominate its memory, and how
//! close decode gets to the memory-bandwidth roofline (Williams et al. 2009).
use super::row::{Row, Section, Variant};
use crate::speed::Phase;
use std::fmt::Write as _;

/// Where curve `a` overtakes curve `b` (ratio a/b per x, x ascending).
#[derive(Debug, Clone, PartialEq)]
pub enum Crossover {
    /// a ≥ b at every x measured.
    Always,
    /// a < b up to some x, then a ≥ b from `x` on (at every larger x measured).
    From(usize),
    /// a < b at the largest x measured.
    Never,
    /// No x has both.
    Unmeasured,
}

/// The crossover of a ratio curve: the smallest x from which ratio ≥ 1 holds at every
/// larger measured x.
pub fn crossover(ratios: &[(usize, f64)]) -> Crossover {
    let Some(&(_, last)) = ratios.last() else {
        return Crossover::Unmeasured;
    };
    if last < 1.0 {
        return Crossover::Never;
    }
    let from = ratios
        .iter()
        .rposition(|&(_, r)| r < 1.0)
        .map_or(0, |i| i + 1);
    if from == 0 {
        Crossover::Always
    } else {
        Crossover::From(ratios[from].0)
    }
}

/// The measured row of a point.
pub fn find(
    rows: &[Row],
    section: Section,
    phase: Phase,
    variant: Variant,
    batch: Option<usize>,
    x: usize,
) -> Option<&Row> {
    rows.iter().find(|r| {
        r.ok()
            && r.section == section
            && r.phase == phase
            && r.variant == variant
            && batch.is_none_or(|b| r.batch == b)
            && r.seq_len == x
    })
}

/// `value(a) / value(b)` at every x where both variants were measured, x ascending.
pub fn ratios(
    rows: &[Row],
    section: Section,
    phase: Phase,
    (a, b): (Variant, Variant),
    batch: Option<usize>,
    value: impl Fn(&Row) -> f64,
) -> Vec<(usize, f64)> {
    let mut xs: Vec<usize> = rows
        .iter()
        .filter(|r| r.section == section && r.phase == phase)
        .map(|r| r.seq_len)
        .collect();
    xs.sort_unstable();
    xs.dedup();
    xs.into_iter()
        .filter_map(|x| {
            let ra = find(rows, section, phase, a, batch, x)?;
            let rb = find(rows, section, phase, b, batch, x)?;
            Some((x, value(ra) / value(rb)))
        })
        .collect()
}

fn describe(c: &Crossover, a: &str, b: &str, x: &str) -> String {
    match c {
        Crossover::Always => format!("{a} is ahead of {b} at every {x} measured"),
        Crossover::From(v) => format!("{a} overtakes {b} from {x} = {v} on"),
        Crossover::Never => format!("{a} is still behind {b} at the largest {x} measured"),
        Crossover::Unmeasured => format!("{a} vs {b}: no {x} with both measured"),
    }
}

fn curve(ratios: &[(usize, f64)]) -> String {
    ratios
        .iter()
        .map(|(x, r)| format!("{x}: {r:.2}×"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Bytes in GB, MB or kB (decimal), whichever reads best.
pub fn gb(b: f64) -> String {
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else if b >= 1e6 {
        format!("{:.1} MB", b / 1e6)
    } else {
        format!("{:.0} kB", b / 1e3)
    }
}

/// The first training T where naive's peak exceeds SDPA's by half its own peak or more —
/// the extra being its score tensors: (T, naive peak, SDPA peak, one layer's scores).
pub fn score_dominance(rows: &[Row]) -> Option<(usize, u64, u64, u64)> {
    let mut xs: Vec<usize> = rows
        .iter()
        .filter(|r| r.section == Section::Attention)
        .map(|r| r.seq_len)
        .collect();
    xs.sort_unstable();
    xs.dedup();
    xs.into_iter().find_map(|t| {
        let n = find(
            rows,
            Section::Attention,
            Phase::Train,
            Variant::Naive,
            None,
            t,
        )?;
        let s = find(
            rows,
            Section::Attention,
            Phase::Train,
            Variant::Sdpa,
            None,
            t,
        )?;
        let extra = n.peak_rss_bytes.saturating_sub(s.peak_rss_bytes);
        (2 * extra >= n.peak_rss_bytes).then_some((
            t,
            n.peak_rss_bytes,
            s.peak_rss_bytes,
            n.score_bytes,
        ))
    })
}

/// The generated paragraph naming the crossovers.
pub fn paragraph(rows: &[Row]) -> String {
    use Section::*;
    let mut s = String::new();
    let att: Vec<&Row> = rows.iter().filter(|r| r.section == Attention).collect();
    if let Some(r0) = att.first() {
        let _ = write!(
            s,
            "**Attention** ({}, {}, about {} tokens per step). ",
            r0.preset,
            r0.dtype,
            r0.batch * r0.seq_len
        );
        for phase in [Phase::Train, Phase::Prefill] {
            let tps = ratios(
                rows,
                Attention,
                phase,
                (Variant::Sdpa, Variant::Naive),
                None,
                |r| r.tokens_per_sec,
            );
            let c = crossover(&tps);
            let _ = write!(
                s,
                "In {phase}, {} (SDPA/naive tokens/sec by T: {}). ",
                describe(&c, "SDPA", "naive", "T"),
                curve(&tps)
            );
        }
        let mem = ratios(
            rows,
            Attention,
            Phase::Train,
            (Variant::Naive, Variant::Sdpa),
            None,
            |r| r.peak_rss_bytes as f64,
        );
        let lower = match crossover(&mem) {
            Crossover::Always => "SDPA's peak is at most naive's at every T measured".to_string(),
            Crossover::From(t) => format!("SDPA's peak is at most naive's from T = {t} on"),
            Crossover::Never => {
                "SDPA's peak is above naive's at the largest T measured".to_string()
            }
            Crossover::Unmeasured => "no T with both peaks measured".to_string(),
        };
        let _ = write!(
            s,
            "Training peak memory: {lower} (naive/SDPA peak RSS by T: {}). ",
            curve(&mem)
        );
        match score_dominance(rows) {
            Some((t, n, sd, sc)) => {
                let _ = write!(s, "Naive's B·H·T·T score tensors dominate its memory from T = {t}: peak {} vs SDPA's {} (one layer's f32 scores: {}). ", gb(n as f64), gb(sd as f64), gb(sc as f64));
            }
            None => {
                s.push_str("Naive's score tensors never make up half its measured training peak. ")
            }
        }
        let skipped: Vec<String> = att
            .iter()
            .filter(|r| !r.ok())
            .map(|r| format!("{} {} T = {} ({})", r.phase, r.variant, r.seq_len, r.note))
            .collect();
        if !skipped.is_empty() {
            let _ = write!(s, "Not measured: {}.", skipped.join("; "));
        }
        s.push_str("\n\n");
    }
    let dec: Vec<&Row> = rows.iter().filter(|r| r.section == Decode).collect();
    if let Some(r0) = dec.first() {
        let _ = write!(
            s,
            "**Decode** ({}, {}, {} new tokens after each context). ",
            r0.preset, r0.dtype, r0.new_tokens
        );
        let mut batches: Vec<usize> = dec.iter().map(|r| r.batch).collect();
        batches.sort_unstable();
        batches.dedup();
        for b in batches {
            let g = ratios(
                rows,
                Decode,
                Phase::Decode,
                (Variant::Gqa4, Variant::Mha),
                Some(b),
                |r| r.tokens_per_sec,
            );
            let m = ratios(
                rows,
                Decode,
                Phase::Decode,
                (Variant::Mqa, Variant::Gqa4),
                Some(b),
                |r| r.tokens_per_sec,
            );
            let _ = write!(
                s,
                "At batch {b}, {} (GQA-4/MHA by context: {}) and {} ({}). ",
                describe(&crossover(&g), "GQA-4", "MHA", "context"),
                curve(&g),
                describe(&crossover(&m), "MQA", "GQA-4", "context"),
                curve(&m)
            );
        }
        let fr: Vec<f64> = dec
            .iter()
            .filter(|r| r.ok())
            .map(|r| r.roofline_fraction)
            .collect();
        if !fr.is_empty() {
            let (lo, hi) = fr
                .iter()
                .fold((f64::MAX, 0f64), |(a, b), &x| (a.min(x), b.max(x)));
            let _ = write!(
                s,
                "Decode reaches {:.0}–{:.0} % of the bandwidth roofline across the grid. ",
                100.0 * lo,
                100.0 * hi
            );
        }
        let skipped = dec.iter().filter(|r| !r.ok()).count();
        if skipped > 0 {
            let _ = write!(s, "{skipped} decode points not measured (see the table).");
        }
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crossovers() {
        assert_eq!(crossover(&[]), Crossover::Unmeasured);
        assert_eq!(crossover(&[(1, 1.2), (2, 1.5)]), Crossover::Always);
        assert_eq!(
            crossover(&[(1, 0.8), (2, 0.9), (4, 1.1), (8, 1.3)]),
            Crossover::From(4)
        );
        assert_eq!(
            crossover(&[(1, 0.8), (2, 1.1), (4, 0.9), (8, 1.3)]),
            Crossover::From(8)
        );
        assert_eq!(crossover(&[(1, 1.1), (2, 0.9)]), Crossover::Never);
    }
}
