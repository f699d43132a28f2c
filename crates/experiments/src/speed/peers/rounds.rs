//! Several rounds of `just speed-peers` put together. One pair run once, back to back, is at
//! the mercy of the VM's drift: between two whole runs on the 2-core EPYC (2026-11-29) the
//! PyTorch peer alone moved from 613.5 to 718.1 tok/s and the fp32 verdicts flipped both ways.
//! So the recipe measures every pair in several rounds (`round1/`, `round2/`, … under the
//! peers folder), swapping which side runs first each round, and a verdict rests on the
//! median of the rounds' ratios: one slow or fast spell moves one round, not the median.
use super::{char_rows, decode_rows, preset_rows, PeerRow};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

/// The round folders under `dir` (`round<N>`, in N's order), or `dir` itself when it has
/// none (a single round measured straight into it).
pub fn round_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name();
        let n = name.to_str().and_then(|n| n.strip_prefix("round"));
        if let Some(n) = n.and_then(|n| n.parse::<u32>().ok()) {
            if e.path().is_dir() {
                found.push((n, e.path()));
            }
        }
    }
    found.sort();
    Ok(match found.is_empty() {
        true => vec![dir.to_path_buf()],
        false => found.into_iter().map(|(_, p)| p).collect(),
    })
}

/// The distinct `git_rev`s of the Ladder rows under `dir` (the speed rungs' and the decode
/// point's CSVs of every round): the code that measured them, which a table regenerated
/// later from the same rows should name beside its own.
pub fn measured_revs(dir: &Path) -> Result<Vec<String>> {
    let mut revs: Vec<String> = Vec::new();
    for d in round_dirs(dir)? {
        let mut files = vec![d.join("decode/real_size.csv")];
        for sub in ["train_preset/rungs", "train_preset/sdpa/rungs"] {
            if let Ok(rd) = std::fs::read_dir(d.join(sub)) {
                files.extend(rd.filter_map(|e| e.ok()).map(|e| e.path()));
            }
        }
        for f in files
            .iter()
            .filter(|f| f.extension().is_some_and(|x| x == "csv"))
        {
            let Ok(rows) = super::read_csv(f) else {
                continue;
            };
            for rev in rows.iter().filter_map(|r| r.get("git_rev")) {
                if !revs.contains(rev) {
                    revs.push(rev.clone());
                }
            }
        }
    }
    Ok(revs)
}

/// Every comparison of every round under `dir`, put together per (workload, dtype, peer).
pub fn measured_rows(dir: &Path) -> Result<Vec<PeerRow>> {
    let mut per_round = Vec::new();
    for d in round_dirs(dir)? {
        let mut rows = preset_rows(&d)?;
        rows.extend(char_rows(&d)?);
        rows.extend(decode_rows(&d)?);
        per_round.push(rows);
    }
    Ok(over_rounds(&per_round))
}

/// The rows of each round, grouped by (workload, dtype, peer) in the order they first
/// appear, each group made one row by [`combine`].
pub fn over_rounds(per_round: &[Vec<PeerRow>]) -> Vec<PeerRow> {
    let mut groups: Vec<Vec<&PeerRow>> = Vec::new();
    for r in per_round.iter().flatten() {
        let same = |g: &&mut Vec<&PeerRow>| {
            (&g[0].workload, &g[0].dtype, &g[0].peer) == (&r.workload, &r.dtype, &r.peer)
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    groups.iter().map(|g| combine(g)).collect()
}

/// One row from the same comparison in several rounds: the median of the rounds' ratios,
/// their lowest and highest, and the verdict of the median against the goal.
pub fn combine(g: &[&PeerRow]) -> PeerRow {
    let med = |f: fn(&PeerRow) -> f64| median(g.iter().map(|r| f(r)).collect());
    let lo = |f: fn(&PeerRow) -> f64| g.iter().map(|r| f(r)).fold(f64::INFINITY, f64::min);
    let hi = |f: fn(&PeerRow) -> f64| g.iter().map(|r| f(r)).fold(f64::NEG_INFINITY, f64::max);
    let ratio = med(|r| r.ratio);
    let first = g[0];
    PeerRow {
        ladder: med(|r| r.ladder),
        ladder_min: lo(|r| r.ladder_min),
        ladder_max: hi(|r| r.ladder_max),
        peer_value: med(|r| r.peer_value),
        peer_min: lo(|r| r.peer_min),
        peer_max: hi(|r| r.peer_max),
        ratio,
        ratio_min: lo(|r| r.ratio_min),
        ratio_max: hi(|r| r.ratio_max),
        met: first.goal.map(|goal| ratio >= goal),
        rounds: g.iter().map(|r| r.rounds).sum(),
        rounds_met: g.iter().map(|r| r.rounds_met).sum(),
        ladder_mfu: {
            let m: Vec<f64> = g.iter().filter_map(|r| r.ladder_mfu).collect();
            (!m.is_empty()).then(|| median(m))
        },
        ..first.clone()
    }
}

/// The median (the mean of the middle two for an even count).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n % 2 {
        1 => v[n / 2],
        _ => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}
