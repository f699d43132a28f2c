//! Run records: `metrics.csv` (every `log_interval` steps), `eval.csv` (every eval),
//! `log.jsonl` (the resolved config, git revision, device and threads, then every row), and
//! `summary.json` at the end. A resumed run drops rows past its checkpoint and appends.
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

pub struct Metrics {
    dir: PathBuf,
    steps: csv::Writer<File>,
    evals_w: csv::Writer<File>,
    jsonl: File,
    evals: Vec<EvalRow>,
}

/// Keep the rows of `path` with step < `keep_below` (for a resume); return them.
fn truncate_rows<T: Serialize + for<'de> Deserialize<'de>>(
    path: &Path,
    keep_below: usize,
    step: impl Fn(&T) -> usize,
) -> Result<Vec<T>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let rows: Vec<T> = csv::Reader::from_path(path)?
        .deserialize()
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", path.display()))?;
    let rows: Vec<T> = rows.into_iter().filter(|r| step(r) < keep_below).collect();
    let mut w = csv::Writer::from_path(path)?;
    for r in &rows {
        w.serialize(r)?;
    }
    w.flush()?;
    Ok(rows)
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

impl Metrics {
    /// Open the files in `dir`; a fresh run truncates them, a resume at `start` keeps earlier rows.
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
            let (sh, eh) = (!kept.is_empty(), !evals.is_empty());
            let jsonl = OpenOptions::new().create(true).append(true).open(&jp)?;
            return Ok(Self {
                dir: dir.into(),
                steps: appender(&sp, sh)?,
                evals_w: appender(&ep, eh)?,
                jsonl,
                evals,
            });
        }
        for p in [&sp, &ep, &jp] {
            let _ = std::fs::remove_file(p);
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

    fn event(&mut self, v: serde_json::Value) -> Result<()> {
        writeln!(self.jsonl, "{v}")?;
        Ok(())
    }

    pub fn start_event(
        &mut self,
        cfg: &TrainConfig,
        mcfg: &model::ModelConfig,
        params: usize,
        device: &str,
        threads: usize,
        machine: &MachineRecord,
    ) -> Result<()> {
        self.event(serde_json::json!({
            "event": "start", "config": cfg, "model": mcfg, "params": params,
            "git_rev": runtime::facts::git_rev(), "timestamp": runtime::facts::timestamp_utc(),
            "device": device, "threads": threads, "machine": machine,
        }))
    }

    pub fn step(&mut self, r: &StepRow) -> Result<()> {
        self.steps.serialize(r)?;
        self.steps.flush()?;
        self.event(serde_json::json!({"event": "step", "row": r}))
    }

    pub fn eval(&mut self, r: &EvalRow) -> Result<()> {
        self.evals_w.serialize(r)?;
        self.evals_w.flush()?;
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
