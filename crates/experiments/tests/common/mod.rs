//! Shared by the reliability tests: a tiny fp32 model on one thread, in-process or as a
//! `train` child process (for crashes and resource limits), and readers of the files.
#![allow(dead_code)]
use experiments::config::TrainConfig;
use experiments::train::{train, RunOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// libtorch's RNG and thread count are process-wide: in-process runs take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

pub const BASE: &str = include_str!("../../../../experiments/shakespeare_char_cpu.toml");

pub fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/shakespeare_char_cpu.toml")
}

pub fn corpus() -> Option<PathBuf> {
    // In CI a missing corpus fails; elsewhere the test is skipped.
    runtime::resources::shared_resource("data/tinyshakespeare.txt").unwrap()
}

/// A machine record for this machine at 1 thread (as the runs below use), so no run
/// measures one (seconds each): `LADDER_MACHINE_FILE` points at it.
pub fn machine_file() -> PathBuf {
    static WRITTEN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let p = WRITTEN.get_or_init(|| {
        let p =
            std::env::temp_dir().join(format!("ladder-test-machine-{}.json", std::process::id()));
        tch::set_num_threads(1);
        let record = runtime::hardware::MachineRecord {
            facts: runtime::hardware::detect(tch::Device::Cpu),
            measured: runtime::hardware::Measured {
                fp32_flops: 1e11,
                fp32_matmul_n: 1024,
                bf16_flops: 1e11,
                bf16_matmul_n: 1024,
                bandwidth_bytes_per_s: 1e10,
                bandwidth_buffer_bytes: 1 << 20,
                measure_s: 0.0,
                measured_at: "test".into(),
            },
        };
        runtime::hardware::write_record(&p, &record).unwrap();
        p
    });
    std::env::set_var("LADDER_MACHINE_FILE", p);
    p.clone()
}

/// The `--set` overrides of a tiny run in `dir/run` (data cache in `dir/cache`).
pub fn sets(dir: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "model.n_layer=2",
        "model.n_head=2",
        "model.n_kv_heads=2",
        "model.n_embd=32",
        "model.intermediate_size=64",
        "model.block_size=32",
        "model.dropout=0.0",
        "model.dtype=\"fp32\"",
        "train.batch_size=4",
        "train.eval_iters=2",
        "train.eval_interval=2",
        "train.log_interval=1",
        "train.warmup_iters=2",
        "train.max_iters=8",
        "train.lr_decay_iters=8",
        "train.threads=1",
        "train.device=\"cpu\"",
        "train.sample_tokens=0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!(
        "data.cache_dir=\"{}\"",
        dir.join("cache").display()
    ));
    v.push(format!("run.out_dir=\"{}\"", dir.join("run").display()));
    if let Some(c) = corpus() {
        v.push(format!("data.corpus=\"{}\"", c.display()));
    }
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

pub fn tiny(dir: &Path, extra: &[&str]) -> TrainConfig {
    machine_file();
    TrainConfig::parse(BASE, "shakespeare_char_cpu.toml", &sets(dir, extra)).unwrap()
}

pub fn opts(resume: bool, stop_at: Option<usize>) -> RunOptions {
    RunOptions {
        resume,
        stop_at,
        quiet: true,
    }
}

/// Train in-process; the error as text.
pub fn train_tiny(
    dir: &Path,
    extra: &[&str],
    resume: bool,
    stop_at: Option<usize>,
) -> Result<(), String> {
    let _s = serial();
    train(&tiny(dir, extra), &opts(resume, stop_at))
        .map(|_| ())
        .map_err(|e| format!("{e:#}"))
}

/// Train in a child process (`train` binary) with extra env and a hook before exec.
pub fn child(dir: &Path, extra: &[&str], args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_train"));
    c.arg(config_path()).arg("--quiet").args(args);
    for s in sets(dir, extra) {
        c.arg("--set").arg(s);
    }
    c.env("LADDER_MACHINE_FILE", machine_file())
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

pub fn output(mut c: Command) -> Output {
    c.output().unwrap()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The checkpoint folders (`ckpt-*`) and temporaries (`.ckpt*`) in `dir`.
pub fn ckpt_names(dir: &Path) -> Vec<String> {
    names(dir)
        .into_iter()
        .filter(|n| n.starts_with("ckpt") || n.starts_with(".ckpt"))
        .collect()
}

/// Where `<run>/ckpt` points.
pub fn link_target(run: &Path) -> String {
    std::fs::read_link(run.join("ckpt"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Every file's bytes under `dir` (following no links), for before/after comparisons.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for n in names(dir) {
        let p = dir.join(&n);
        let m = std::fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            for (k, b) in snapshot(&p) {
                out.push((format!("{n}/{k}"), b));
            }
        } else if m.is_file() && n != ".lock" {
            out.push((n, std::fs::read(&p).unwrap()));
        }
    }
    out
}

/// Copy a run folder (symlinks as symlinks).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for n in names(from) {
        let (a, b) = (from.join(&n), to.join(&n));
        let m = std::fs::symlink_metadata(&a).unwrap();
        if m.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&a).unwrap(), &b).unwrap();
        } else if m.is_dir() {
            copy_dir(&a, &b);
        } else {
            std::fs::copy(&a, &b).unwrap();
        }
    }
}

/// Every line of a text file ends with a newline (no partial row), and the lines.
pub fn complete_lines(p: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(p).unwrap();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "{}: partial last line",
        p.display()
    );
    text.lines().map(String::from).collect()
}

/// The `step` column of `metrics.csv`.
pub fn metric_steps(run: &Path) -> Vec<usize> {
    complete_lines(&run.join("metrics.csv"))
        .iter()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

/// The steps of the `step` events in `log.jsonl`.
pub fn jsonl_steps(run: &Path, event: &str) -> Vec<usize> {
    complete_lines(&run.join("log.jsonl"))
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["event"] == event)
        .map(|v| v["row"]["step"].as_u64().unwrap() as usize)
        .collect()
}
