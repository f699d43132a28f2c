//! `results/speed/peers.md` (issue #16): Ladder beside the Python it replaces, measured on one
//! machine in one run by `just speed-peers` — training on the speed preset and on
//! `shakespeare_char_cpu` against our PyTorch eager reference (`bench/`, written in nanoGPT's
//! manner) and against a third-party nanoGPT-style GPT-2 from PyPI (`nano-gpt`, eager and
//! `torch.compile`d; `bench/speed.py --impl nano-gpt`), and GPT-2 124M decode against Hugging
//! Face transformers' `generate`, beside the memory-bandwidth roofline. This module reads the
//! rows one round of the recipe left in a folder; `rounds` puts the rounds together (the
//! median of their ratios) and `table` writes the table with each target and its verdict.
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashMap;
use std::path::Path;

pub mod rounds;
mod table;
pub use table::write;

/// Training: Ladder ≥ this × the PyTorch reference (and nanoGPT).
pub const TRAIN_TARGET: f64 = 1.3;
/// Decode: Ladder ≥ this fraction of the bandwidth roofline at batch 1.
pub const ROOFLINE_TARGET: f64 = 0.75;

/// One comparison.
#[derive(Debug, Clone, Serialize)]
pub struct PeerRow {
    pub workload: String,
    pub dtype: String,
    pub metric: String,
    pub ladder: f64,
    /// Ladder's min and max over its repeats (or log rows).
    pub ladder_min: f64,
    pub ladder_max: f64,
    pub peer: String,
    pub peer_value: f64,
    pub peer_min: f64,
    pub peer_max: f64,
    /// Ladder ÷ peer (tokens/sec); over several rounds, the median of the rounds' ratios.
    pub ratio: f64,
    /// The lowest and highest of the rounds' ratios (both `ratio` for one round).
    pub ratio_min: f64,
    pub ratio_max: f64,
    /// What the issue asks, in words.
    pub target: String,
    /// The ratio the target asks for (`None` for a column without a target: the
    /// `torch.compile`d peer).
    pub goal: Option<f64>,
    /// `ratio >= goal`.
    pub met: Option<bool>,
    /// How many rounds this row puts together, and in how many of them the target was met.
    pub rounds: usize,
    pub rounds_met: usize,
    /// Training: the share of the measured matmul peak (of this dtype) Ladder's run reached,
    /// the model's FLOPs per token × its tokens/s ÷ the peak, where its CSV has an `mfu`
    /// column. The peer runs the same FLOPs, so its share is this ÷ `ratio`.
    pub ladder_mfu: Option<f64>,
}

impl PeerRow {
    /// A row of one round: `ratio` against `goal`.
    #[allow(clippy::too_many_arguments)]
    fn judged(
        workload: &str,
        dtype: &str,
        metric: &str,
        ours: Ranged,
        peer: &str,
        theirs: Ranged,
        ratio: f64,
        (target, goal): (String, Option<f64>),
    ) -> PeerRow {
        let met = goal.map(|g| ratio >= g);
        PeerRow {
            workload: workload.into(),
            dtype: dtype.into(),
            metric: metric.into(),
            ladder: ours.0,
            ladder_min: ours.1,
            ladder_max: ours.2,
            peer: peer.into(),
            peer_value: theirs.0,
            peer_min: theirs.1,
            peer_max: theirs.2,
            ratio,
            ratio_min: ratio,
            ratio_max: ratio,
            target,
            goal,
            met,
            rounds: 1,
            rounds_met: usize::from(met == Some(true)),
            ladder_mfu: None,
        }
    }
}

/// The peers `bench/speed.py` times, by its `impl` column: (impl, name in the table, whether
/// the training target applies).
const BENCH_PEERS: [(&str, &str, bool); 3] = [
    ("pytorch", "PyTorch eager (bench/)", true),
    ("nano-gpt", "nano-gpt 0.1.0 eager (PyPI)", true),
    (
        "nano-gpt+compile",
        "nano-gpt 0.1.0 torch.compile (PyPI)",
        false,
    ),
];

type Table = Vec<HashMap<String, String>>;

fn read_csv(p: &Path) -> Result<Table> {
    let mut rd = csv::Reader::from_path(p).with_context(|| format!("reading {}", p.display()))?;
    Ok(rd.deserialize().collect::<Result<_, _>>()?)
}

fn num(row: &HashMap<String, String>, key: &str, file: &Path) -> Result<f64> {
    let v = row
        .get(key)
        .with_context(|| format!("{}: no column '{key}'", file.display()))?;
    v.parse()
        .with_context(|| format!("{}: '{key}' = '{v}' is not a number", file.display()))
}

/// Median, min and max of `ms_per_step` over the rows of a run's `metrics.csv` from step 10
/// on (both trainers log the mean of the steps since the previous row, eval time excluded).
pub fn median_ms_per_step(metrics: &Path) -> Result<(f64, f64, f64)> {
    median_from_step_10(metrics, "ms_per_step")
}

/// Median, min and max of a column of a `metrics.csv` over the rows from step 10 on.
fn median_from_step_10(metrics: &Path, key: &str) -> Result<(f64, f64, f64)> {
    let rows = read_csv(metrics)?;
    let mut v = Vec::new();
    for r in &rows {
        if num(r, "step", metrics)? >= 10.0 {
            v.push(num(r, key, metrics)?);
        }
    }
    anyhow::ensure!(
        !v.is_empty(),
        "{}: no rows from step 10 on",
        metrics.display()
    );
    v.sort_by(f64::total_cmp);
    Ok((v[v.len() / 2], v[0], v[v.len() - 1]))
}

/// (value, min, max) from a row's `<key>`, `<key>_min`, `<key>_max` columns.
fn ranged(row: &HashMap<String, String>, key: &str, file: &Path) -> Result<(f64, f64, f64)> {
    Ok((
        num(row, key, file)?,
        num(row, &format!("{key}_min"), file)?,
        num(row, &format!("{key}_max"), file)?,
    ))
}

type Ranged = (f64, f64, f64);

/// A row's `mfu`, where it has that column (older CSVs and hand-made ones may not).
fn mfu_of(row: &HashMap<String, String>) -> Option<f64> {
    row.get("mfu").and_then(|v| v.parse().ok())
}

fn train_row(
    workload: &str,
    (dtype, mfu): (&str, Option<f64>),
    metric: &str,
    ours: Ranged,
    (peer, targeted): (&str, bool),
    theirs: Ranged,
) -> PeerRow {
    // Rates compare as ours over theirs; times (ms/step) as theirs over ours.
    let ratio = match metric {
        "ms/step" => theirs.0 / ours.0,
        _ => ours.0 / theirs.0,
    };
    let target = match targeted {
        true => (format!("≥ {TRAIN_TARGET}× the peer"), Some(TRAIN_TARGET)),
        false => ("none (a column to compare)".into(), None),
    };
    PeerRow {
        ladder_mfu: mfu,
        ..PeerRow::judged(workload, dtype, metric, ours, peer, theirs, ratio, target)
    }
}

/// The speed preset: Ladder's speed rungs (train phase) in `train_preset/rungs/*.csv`, and the
/// fp32 rung with SDPA (`--attention sdpa`) in `train_preset/sdpa/rungs/*.csv`, against
/// `train_preset/pytorch.csv` (`bench/speed.py`'s rows, every peer), matched on dtype and
/// attention kernel.
pub fn preset_rows(dir: &Path) -> Result<Vec<PeerRow>> {
    let pt_path = dir.join("train_preset/pytorch.csv");
    let pt = read_csv(&pt_path)?;
    let mut out = Vec::new();
    for sub in ["train_preset", "train_preset/sdpa"] {
        for rung in ["1_original", "2_bf16", "3_flash"] {
            let p = dir.join(format!("{sub}/rungs/{rung}.csv"));
            if !p.exists() {
                continue;
            }
            for r in read_csv(&p)?.iter().filter(|r| r["phase"] == "train") {
                for (imp, name, targeted) in BENCH_PEERS {
                    let peer = pt.iter().find(|x| {
                        x["impl"] == imp
                            && x["dtype"] == r["dtype"]
                            && x["attention"] == r["attention"]
                    });
                    let Some(py) = peer else { continue };
                    out.push(train_row(
                        &format!("train, speed preset, {} attention", r["attention"]),
                        (&r["dtype"], mfu_of(r)),
                        "tokens/s",
                        ranged(r, "tokens_per_sec", &p)?,
                        (name, targeted),
                        ranged(py, "tokens_per_sec", &pt_path)?,
                    ));
                }
            }
        }
    }
    Ok(out)
}

/// `shakespeare_char_cpu`: `char/{ladder,pytorch}_<dtype>.csv` (the two trainers'
/// `metrics.csv`, both with the config's sdpa attention), compared as the inverse of the
/// median ms/step; and `char/ladder_auto_<dtype>.csv` (Ladder with `attention = "auto"`)
/// against the same PyTorch run, where nanoGPT's kernel choice is always SDPA. The nano-gpt
/// peer's steps (`char/nano_gpt.csv`, `bench/speed.py` at this shape on random ids: its
/// loop has no data loader to borrow) against both Ladder runs.
pub fn char_rows(dir: &Path) -> Result<Vec<PeerRow>> {
    let mut out = Vec::new();
    for dtype in ["fp32", "bf16"] {
        let (ours, theirs) = (
            dir.join(format!("char/ladder_{dtype}.csv")),
            dir.join(format!("char/pytorch_{dtype}.csv")),
        );
        if !ours.exists() || !theirs.exists() {
            continue;
        }
        let b = median_ms_per_step(&theirs)?;
        let auto = dir.join(format!("char/ladder_auto_{dtype}.csv"));
        // The kernel `auto` chose, from the run's summary.json (copied beside its metrics).
        let chose = std::fs::read_to_string(auto.with_extension("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["settings"]["attention"].as_str().map(str::to_string))
            .map_or(String::new(), |k| format!(" (chose {k})"));
        let auto_name = format!(
            "train, shakespeare_char_cpu, Ladder attention = auto{chose} vs the peer's sdpa"
        );
        let runs = [
            (
                "train, shakespeare_char_cpu, sdpa attention".to_string(),
                ours,
            ),
            (auto_name, auto),
        ];
        let ng_path = dir.join("char/nano_gpt.csv");
        let ng = match ng_path.exists() {
            true => read_csv(&ng_path)?,
            false => Vec::new(),
        };
        for (name, path) in runs.iter().filter(|(_, p)| p.exists()) {
            let a = median_ms_per_step(path)?;
            let mfu = median_from_step_10(path, "mfu").ok().map(|m| m.0);
            out.push(train_row(
                name,
                (dtype, mfu),
                "ms/step",
                a,
                (BENCH_PEERS[0].1, BENCH_PEERS[0].2),
                b,
            ));
            for (imp, peer, targeted) in &BENCH_PEERS[1..] {
                let Some(r) = ng.iter().find(|r| r["impl"] == *imp && r["dtype"] == dtype) else {
                    continue;
                };
                // A rate's min is a time's max: ms/step = tokens per step ÷ rate.
                let tokens = num(r, "batch", &ng_path)? * num(r, "seq_len", &ng_path)?;
                let (rate, lo, hi) = ranged(r, "tokens_per_sec", &ng_path)?;
                let ms = |x: f64| 1e3 * tokens / x;
                out.push(train_row(
                    name,
                    (dtype, mfu),
                    "ms/step",
                    a,
                    (peer, *targeted),
                    (ms(rate), ms(hi), ms(lo)),
                ));
            }
        }
    }
    Ok(out)
}

/// GPT-2 124M decode: `decode/real_size.csv` (Ladder's sweep point, with its roofline)
/// against `decode/transformers.csv` (`bench/hf_generate.py`).
pub fn decode_rows(dir: &Path) -> Result<Vec<PeerRow>> {
    let (lp, hp) = (
        dir.join("decode/real_size.csv"),
        dir.join("decode/transformers.csv"),
    );
    let ours = read_csv(&lp)?;
    let hf = if hp.exists() {
        read_csv(&hp)?
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for r in ours
        .iter()
        .filter(|r| r["status"] == "ok" && r["batch"] == "1")
    {
        let (rate, lo, hi) = ranged(r, "tokens_per_sec", &lp)?;
        let roof = num(r, "roofline_tokens_per_sec", &lp)?;
        let workload = "decode, GPT-2 124M, batch 1, prompt 64 + 128";
        let roofline = PeerRow::judged(
            workload,
            &r["dtype"],
            "tokens/s",
            (rate, lo, hi),
            "bandwidth roofline",
            (roof, roof, roof),
            rate / roof,
            (
                format!("≥ {:.0} % of the roofline", ROOFLINE_TARGET * 100.0),
                Some(ROOFLINE_TARGET),
            ),
        );
        out.push(roofline);
        if let Some(h) = hf.iter().find(|h| h["dtype"] == r["dtype"]) {
            let theirs = ranged(h, "tokens_per_sec", &hp)?;
            out.push(PeerRow::judged(
                workload,
                &r["dtype"],
                "tokens/s",
                (rate, lo, hi),
                &format!("transformers {} generate", h["transformers_version"]),
                theirs,
                rate / theirs.0,
                ("faster than the peer".into(), Some(1.0)),
            ));
        }
    }
    Ok(out)
}
