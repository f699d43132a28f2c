//! What may change when a run resumes. The architecture (every key that decides what the
//! weights are: sizes, positions, norms, MLP, heads, tying) must match the checkpoint's,
//! and so must the corpus and tokenizer; a difference is an error naming each key, before
//! any weights are copied. Run-time settings (attention kernel, dtype, dropout, threads,
//! iterations, the learning-rate schedule, …) may change; each change is logged.
use crate::manifest::Found;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;

/// Model keys that are run-time settings, not architecture (after the `RunSettings`
/// split these live outside the architecture config; both spellings are listed).
pub const RUN_SETTINGS: &[&str] = &["attention", "kernel", "dtype", "dropout"];

/// Flatten a JSON/TOML-like value to `section.key = value` strings.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, x, out);
            }
        }
        _ => {
            out.insert(prefix.into(), v.to_string());
        }
    }
}

fn flat<T: serde::Serialize>(v: &T) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if let Ok(j) = serde_json::to_value(v) {
        flatten("", &j, &mut out);
    }
    out
}

/// `(key, checkpoint's, requested)` for every key whose value differs (absent = "-").
fn differences(
    old: &BTreeMap<String, String>,
    new: &BTreeMap<String, String>,
) -> Vec<(String, String, String)> {
    let keys: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter_map(|k| {
            let (a, b) = (old.get(k), new.get(k));
            (a != b).then(|| {
                let s = |x: Option<&String>| x.cloned().unwrap_or_else(|| "-".into());
                (k.clone(), s(a), s(b))
            })
        })
        .collect()
}

/// Refuse to resume `found` with `requested` when any architecture key differs.
pub fn check_architecture(found: &Found, requested: &model::ModelConfig) -> Result<()> {
    let (_, saved) = model::io::read_config(&found.dir)
        .with_context(|| format!("--resume: reading {}", found.dir.display()))?;
    let is_arch = |k: &String| !RUN_SETTINGS.contains(&k.as_str());
    let diffs: Vec<_> = differences(&flat(&saved), &flat(requested))
        .into_iter()
        .filter(|(k, _, _)| is_arch(k))
        .collect();
    if diffs.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = diffs
        .iter()
        .map(|(k, a, b)| format!("model.{k}: checkpoint {a}, requested {b}"))
        .collect();
    bail!(
        "--resume: the checkpoint {} (step {}) has a different architecture; its weights cannot continue as the requested model:\n  {}\nResume with the checkpoint's [model] values, or start a new run with another run.out_dir",
        found.dir.display(),
        found.step(),
        list.join("\n  ")
    )
}

/// Refuse to resume on a different corpus or tokenizer than the checkpoint's.
pub fn check_data(found: &Found, meta: &data::Meta) -> Result<()> {
    let p = found.dir.join("meta.json");
    let saved = data::Meta::read(&p)?;
    if saved.tokenizer != meta.tokenizer || saved.source_sha256 != meta.source_sha256 {
        bail!(
            "--resume: the checkpoint {} was trained on {} ({} tokenizer, SHA-256 {}), but data.corpus is now {} ({} tokenizer, SHA-256 {}): resume with the same data.corpus and data.tokenizer, or start a new run with another run.out_dir",
            found.dir.display(),
            saved.source,
            saved.tokenizer,
            &saved.source_sha256[..saved.source_sha256.len().min(12)],
            meta.source,
            meta.tokenizer,
            &meta.source_sha256[..meta.source_sha256.len().min(12)]
        );
    }
    Ok(())
}

/// Log every setting that differs between the checkpoint's config (TOML) and this run's.
/// Returns the changed keys.
pub fn log_setting_changes(saved_toml: &str, now_toml: &str) -> Vec<String> {
    let parse = |t: &str| {
        t.parse::<toml::Table>()
            .ok()
            .map(|t| flat(&t))
            .unwrap_or_default()
    };
    let diffs = differences(&parse(saved_toml), &parse(now_toml));
    for (k, a, b) in &diffs {
        tracing::info!("resume: {k} changed from {a} to {b}");
    }
    diffs.into_iter().map(|(k, _, _)| k).collect()
}

/// Where a resume continues from.
#[derive(Debug, Clone)]
pub struct Resumed {
    pub state: crate::checkpoint::State,
    pub dir: std::path::PathBuf,
    /// Config keys (`section.key`) whose value differs from the checkpoint's.
    pub changed: Vec<String>,
}

/// Resume from the newest verified checkpoint in `out_dir`: check its data and
/// architecture against this run's (an error names each difference), restore the
/// variables and optimizer state, and log every changed setting.
pub fn resume(
    out_dir: &std::path::Path,
    vs: &mut tch::nn::VarStore,
    opt: &mut optim::AdamW,
    requested: &model::ModelConfig,
    meta: &data::Meta,
    config_toml: &str,
) -> Result<Resumed> {
    let found = crate::checkpoint::load(out_dir, vs, opt, |f| {
        check_data(f, meta)?;
        check_architecture(f, requested)
    })?;
    let changed = log_setting_changes(&found.state.config, config_toml);
    tracing::info!(
        "resumed from {} at step {}",
        found.dir.display(),
        found.step()
    );
    Ok(Resumed {
        state: found.state,
        dir: found.dir,
        changed,
    })
}
