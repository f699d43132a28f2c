//! Run records: `metrics.csv` (every `log_interval` steps), `eval.csv` (every eval),
//! `log.jsonl` (the resolved config, git revision, device and threads, then every row), and
//! `summary.json` at the end. A resumed run drops rows past its checkpoint (and a partial
//! last line a crash or full disk left) and appends, so no step appears twice.
use crate::config::TrainConfig;
use anyhow::{Context, Result};
use runtime::hardware::MachineRecord;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRow {
    pub step: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub grad_norm: f64,
    pub tokens_per_sec: f64,
    pub ms_per_step: f64,
    pub mfu: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvalRow {
    pub step: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub lr: f64,
}

/// A mixture of experts' side of one optimizer step (this rank's micro-batches): the
/// cross-entropy and load-balancing loss (means), and per layer the (token, slot)
/// assignments each expert got (sums).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MoeRow {
    pub step: usize,
    pub ce: f64,
    pub aux: f64,
    pub expert_tokens: Vec<Vec<i64>>,
}

impl MoeRow {
    pub fn new(step: usize) -> Self {
        Self {
            step,
            ce: 0.0,
            aux: 0.0,
            expert_tokens: Vec::new(),
        }
    }

    /// Add one micro-batch (its losses already divided by the number of micro-batches).
    pub fn add(&mut self, ce: f64, aux: f64, counts: &[Vec<i64>]) {
        self.ce += ce;
        self.aux += aux;
        if self.expert_tokens.is_empty() {
            self.expert_tokens = counts.to_vec();
        } else {
            for (a, b) in self.expert_tokens.iter_mut().zip(counts) {
                for (x, y) in a.iter_mut().zip(b) {
                    *x += y;
                }
            }
        }
    }

    /// Each expert's share of the assignments over all layers, e.g. `27/24/26/23%`.
    pub fn shares(&self) -> String {
        let n = self.expert_tokens.first().map_or(0, Vec::len);
        let per: Vec<i64> = (0..n)
            .map(|e| self.expert_tokens.iter().map(|l| l[e]).sum())
            .collect();
        let total = per.iter().sum::<i64>().max(1) as f64;
        let pct: Vec<String> = per
            .iter()
            .map(|&c| format!("{:.0}", 100.0 * c as f64 / total))
            .collect();
        pct.join("/") + "%"
    }
}

pub struct Metrics {
    dir: PathBuf,
    steps: csv::Writer<File>,
    evals_w: csv::Writer<File>,
    jsonl: File,
    evals: Vec<EvalRow>,
}

/// The complete lines of `path` (a crash or a full disk may have left a partial last one).
fn complete_lines(path: &Path) -> Result<Vec<String>> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        tracing::warn!("{}: dropping a partial last line", path.display());
        lines.pop();
    }
    Ok(lines)
}

/// Rewrite `path` (durably: temp, fsync, rename) with the rows whose step is below
/// `keep_below`, dropping a partial last line; return them.
fn truncate_rows<T: Serialize + for<'de> Deserialize<'de>>(
    path: &Path,
    keep_below: usize,
    step: impl Fn(&T) -> usize,
) -> Result<Vec<T>> {
    let lines = complete_lines(path)?;
    if lines.is_empty() {
        let _ = std::fs::remove_file(path);
        return Ok(Vec::new());
    }
    // A damaged row (e.g. a partial line an older version appended after) is dropped, not
    // allowed to block the resume.
    let rows: Vec<T> = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(lines.concat().as_bytes())
        .deserialize()
        .filter_map(|r: csv::Result<T>| {
            r.map_err(|e| tracing::warn!("{}: dropping a damaged row: {e}", path.display()))
                .ok()
        })
        .filter(|r| step(r) < keep_below)
        .collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in &rows {
        w.serialize(r)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
    runtime::fsio::write_atomic(path, |t| Ok(std::fs::write(t, &bytes)?))?;
    Ok(rows)
}

/// Keep the events of `log.jsonl` that precede a resume at `start`: step rows up to
/// `start`, eval rows before it, every other event; drop a partial last line.
fn truncate_jsonl(path: &Path, start: usize) -> Result<()> {
    let kept: String = complete_lines(path)?
        .into_iter()
        .filter(|l| {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
                return false;
            };
            let step = v["row"]["step"].as_u64().map(|s| s as usize);
            match (v["event"].as_str(), step) {
                (Some("step" | "moe"), Some(s)) => s <= start,
                (Some("eval"), Some(s)) => s < start,
                _ => true,
            }
        })
        .collect();
    runtime::fsio::write_atomic(path, |t| Ok(std::fs::write(t, &kept)?))
}

fn appender(path: &Path, has_rows: bool) -> Result<csv::Writer<File>> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let fresh = !has_rows && f.metadata()?.len() == 0;
    Ok(csv::WriterBuilder::new().has_headers(fresh).from_writer(f))
}

fn append_jsonl(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

impl Metrics {
    /// Open the files in `dir`; a fresh run truncates them, a resume at `start` keeps earlier
    /// rows (and drops any a crashed run wrote past its checkpoint, or left half-written).
    pub fn open(dir: &Path, start: usize, resume: bool) -> Result<Self> {
        let (sp, ep, jp) = (
            dir.join("metrics.csv"),
            dir.join("eval.csv"),
            dir.join("log.jsonl"),
        );
        let mut evals = Vec::new();
        if resume {
            // Step rows are logged after step s completes as `s`; eval rows at `s` precede it.
            let kept = truncate_rows::<StepRow>(&sp, start + 1, |r| r.step)?;
            evals = truncate_rows::<EvalRow>(&ep, start, |r| r.step)?;
            truncate_jsonl(&jp, start)?;
            let (sh, eh) = (!kept.is_empty(), !evals.is_empty());
            return Ok(Self {
                dir: dir.into(),
                steps: appender(&sp, sh)?,
                evals_w: appender(&ep, eh)?,
                jsonl: append_jsonl(&jp)?,
                evals,
            });
        }
        for p in [&sp, &ep, &jp] {
            match std::fs::remove_file(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("removing {}", p.display()))
                }
                _ => {}
            }
        }
        let jsonl = File::create(&jp).with_context(|| format!("creating {}", jp.display()))?;
        Ok(Self {
            dir: dir.into(),
            steps: appender(&sp, false)?,
            evals_w: appender(&ep, false)?,
            jsonl,
            evals,
        })
    }

    /// One line, written with one `write` call so a failure cannot leave half a line
    /// behind except at the very end (which the next open drops).
    fn event(&mut self, v: serde_json::Value) -> Result<()> {
        let line = format!("{v}\n");
        self.jsonl
            .write_all(line.as_bytes())
            .with_context(|| format!("writing {}", self.dir.join("log.jsonl").display()))
    }

    pub fn start_event(
        &mut self,
        cfg: &TrainConfig,
        mcfg: &model::ModelConfig,
        params: model::accounting::ParamCount,
        device: &str,
        threads: usize,
        machine: &MachineRecord,
    ) -> Result<()> {
        self.event(serde_json::json!({
            "event": "start", "config": cfg, "model": mcfg, "params": params.total,
            "active_params": params.active,
            "git_rev": runtime::facts::git_rev(), "timestamp": runtime::facts::timestamp_utc(),
            "device": device, "threads": threads, "machine": machine,
        }))
    }

    /// A resume: from which checkpoint, at which step, and the settings that changed.
    pub fn resume_event(&mut self, from: &Path, step: usize, changed: &[String]) -> Result<()> {
        self.event(serde_json::json!({
            "event": "resume", "from": from, "step": step, "changed": changed,
            "timestamp": runtime::facts::timestamp_utc(),
        }))
    }

    pub fn step(&mut self, r: &StepRow) -> Result<()> {
        let p = self.dir.join("metrics.csv");
        let ctx = || format!("writing {}", p.display());
        self.steps.serialize(r).with_context(ctx)?;
        self.steps.flush().with_context(ctx)?;
        self.event(serde_json::json!({"event": "step", "row": r}))
    }

    /// A mixture of experts' losses and per-expert token counts (`log.jsonl` only).
    pub fn moe(&mut self, r: &MoeRow) -> Result<()> {
        self.event(serde_json::json!({"event": "moe", "row": r}))
    }

    pub fn eval(&mut self, r: &EvalRow) -> Result<()> {
        let p = self.dir.join("eval.csv");
        let ctx = || format!("writing {}", p.display());
        self.evals_w.serialize(r).with_context(ctx)?;
        self.evals_w.flush().with_context(ctx)?;
        self.evals.push(r.clone());
        self.event(serde_json::json!({"event": "eval", "row": r}))
    }

    pub fn evals(&self) -> &[EvalRow] {
        &self.evals
    }

    pub fn finish<T: Serialize>(&mut self, summary: &T) -> Result<()> {
        self.event(
            serde_json::json!({"event": "end", "timestamp": runtime::facts::timestamp_utc()}),
        )?;
        let path = self.dir.join("summary.json");
        runtime::fsio::write_atomic(&path, |tmp| {
            Ok(std::fs::write(
                tmp,
                serde_json::to_string_pretty(summary)? + "\n",
            )?)
        })
    }
}
