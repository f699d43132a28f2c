//! `ddp_bench`: what data parallelism costs and gives on this machine. Measures Gloo's
//! all-reduce bandwidth on loopback (2 processes, a few buffer sizes and each model's gradient
//! size) and training tokens/sec of 1 process × 2 threads vs 2 processes × 1 thread (DDP)
//! for the `shakespeare_char_cpu` config and the `gpt2_speed_cpu` preset, then writes
//! `results/ddp/{README.md,allreduce.csv,train.csv}` with the cost model (bytes all-reduced
//! per step vs compute per step). Needs `target/release/train` beside it (`just ddp-bench`).
use anyhow::{bail, Context, Result};
use clap::Parser;
use experiments::ddp_report::{self, AllReduceRow, TrainRow};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

#[derive(Parser, Clone)]
#[command(
    about = "Measure Gloo all-reduce bandwidth and 1x2 vs 2x1 DDP training speed; write results/ddp."
)]
struct Args {
    /// All-reduce buffer sizes in f32 elements (comma-separated; each model's gradient size
    /// is added).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,10000,100000,1000000,10000000"
    )]
    sizes: Vec<f64>,
    /// Timed all-reduces per size (the median is reported).
    #[arg(long, default_value_t = 10)]
    reps: usize,
    /// Training iterations per run (the first two are not timed).
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Per-rank batch size of the training runs.
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Output folder.
    #[arg(long, default_value = "results/ddp")]
    out: PathBuf,
    /// Internal: run as an all-reduce worker under RANK/WORLD_SIZE.
    #[arg(long, hide = true)]
    worker: bool,
}

const CONFIG: &str = "experiments/shakespeare_char_cpu.toml";

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `n` ranks of `cmd()` with torchrun's environment; waits for all of them.
fn run_ranks(n: usize, threads: usize, mut cmd: impl FnMut() -> Command) -> Result<Vec<String>> {
    let port = free_port()?;
    let kids: Vec<Child> = (0..n)
        .map(|r| {
            let mut c = cmd();
            if n > 1 {
                c.env("RANK", r.to_string())
                    .env("LOCAL_RANK", r.to_string())
                    .env("WORLD_SIZE", n.to_string())
                    .env("MASTER_ADDR", "127.0.0.1")
                    .env("MASTER_PORT", port.to_string());
            }
            c.env("OMP_NUM_THREADS", threads.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting a rank")
        })
        .collect::<Result<_>>()?;
    let mut outs = Vec::new();
    for (r, k) in kids.into_iter().enumerate() {
        let o = k.wait_with_output()?;
        if !o.status.success() {
            bail!("rank {r} failed: {}", String::from_utf8_lossy(&o.stderr));
        }
        outs.push(String::from_utf8_lossy(&o.stdout).into_owned());
    }
    Ok(outs)
}

fn worker(args: &Args) -> Result<()> {
    tch::set_num_threads(1);
    let pg = dist::ProcessGroup::from_env(std::time::Duration::from_secs(120))?;
    for &n in &args.sizes {
        let n = n as i64;
        let mut t = tch::Tensor::ones([n], (tch::Kind::Float, tch::Device::Cpu));
        for _ in 0..3 {
            pg.all_reduce_sum(&mut t)?;
        }
        let mut secs = Vec::with_capacity(args.reps);
        for _ in 0..args.reps {
            pg.barrier()?;
            let t0 = Instant::now();
            pg.all_reduce_sum(&mut t)?;
            secs.push(t0.elapsed().as_secs_f64());
        }
        secs.sort_by(f64::total_cmp);
        if pg.rank() == 0 {
            println!("{n} {}", secs[secs.len() / 2]);
        }
    }
    Ok(())
}

/// The `--set` overrides that make the config train `preset` (None: the config's own model).
fn model_sets(preset: Option<&str>) -> Result<Vec<String>> {
    let Some(name) = preset else {
        return Ok(vec![]);
    };
    let m = model::ModelConfig::preset(name)?;
    let mut sets = vec![format!(
        "data.tokenizer=\"{}\"",
        if m.vocab_size > 256 { "gpt2" } else { "char" }
    )];
    let obj = serde_json::to_value(&m)?;
    for (k, v) in obj.as_object().context("model config is an object")? {
        if k != "vocab_size" && !v.is_null() {
            sets.push(format!("model.{k}={v}"));
        }
    }
    Ok(sets)
}

fn train_run(args: &Args, label: &str, preset: Option<&str>, procs: usize) -> Result<TrainRow> {
    let threads = (2 / procs).max(1);
    let exe = std::env::current_exe()?.with_file_name("train");
    let dir = std::env::temp_dir().join(format!("ladder-ddp-bench-{}", std::process::id()));
    let out = dir.join(format!("{label}-{procs}"));
    let mut sets = model_sets(preset)?;
    sets.extend([
        format!("train.batch_size={}", args.batch),
        format!("train.max_iters={}", args.iters),
        format!("train.lr_decay_iters={}", args.iters),
        "train.warmup_iters=1".into(),
        format!("train.eval_interval={}", args.iters),
        "train.eval_iters=1".into(),
        "train.log_interval=1".into(),
        "train.sample_tokens=0".into(),
        format!("train.threads={threads}"),
        format!("run.out_dir=\"{}\"", out.display()),
    ]);
    tracing::info!("training {label}: {procs} process(es) x {threads} thread(s)");
    let t0 = Instant::now();
    run_ranks(procs, threads, || {
        let mut c = Command::new(&exe);
        c.arg(CONFIG).arg("--quiet");
        for s in &sets {
            c.arg("--set").arg(s);
        }
        c
    })?;
    let wall = t0.elapsed().as_secs_f64();
    let p = out.join("summary.json");
    let s: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    let num = |k: &str| {
        s[k].as_f64()
            .with_context(|| format!("{}: no {k}", p.display()))
    };
    let block = s["model"]["block_size"]
        .as_f64()
        .context("model.block_size")?;
    Ok(TrainRow {
        model: label.into(),
        // The compute dtype is a run setting (resolved from `auto` on this machine).
        dtype: s["settings"]["dtype"]
            .as_str()
            .context("summary.json: no settings.dtype")?
            .into(),
        processes: procs,
        threads,
        batch_per_rank: args.batch,
        tokens_per_step: (args.batch * procs) as f64 * block,
        params: num("params")? as usize,
        tokens_per_sec: num("tokens_per_sec")?,
        wall_s: wall,
    })
}

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> Result<()> {
    runtime::logging::init();
    let mut args = Args::parse();
    if args.worker {
        return worker(&args);
    }
    if !Path::new(CONFIG).exists() {
        bail!("{CONFIG} not found: run ddp_bench from the repository root");
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load = load
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ");
    let t0 = Instant::now();
    let mut train = Vec::new();
    for (label, preset) in [
        ("shakespeare_char_cpu", None),
        ("gpt2_speed_cpu", Some("gpt2_speed_cpu")),
    ] {
        for procs in [1, 2] {
            train.push(train_run(&args, label, preset, procs)?);
        }
    }
    for r in train.iter().filter(|r| r.processes == 1) {
        args.sizes.push(r.params as f64);
    }
    tracing::info!("all-reduce on loopback, sizes {:?}", args.sizes);
    let exe = std::env::current_exe()?;
    let outs = run_ranks(2, 1, || {
        let mut c = Command::new(&exe);
        c.arg("--worker")
            .arg("--reps")
            .arg(args.reps.to_string())
            .arg("--sizes")
            .arg(
                args.sizes
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
            );
        c
    })?;
    let mut allreduce = Vec::new();
    for line in outs[0].lines() {
        let mut it = line.split_whitespace();
        let (Some(n), Some(s)) = (it.next(), it.next()) else {
            continue;
        };
        allreduce.push(AllReduceRow::new(n.parse()?, s.parse()?, 2));
    }
    let command = std::iter::once("just ddp-bench".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    ddp_report::write(
        &args.out,
        &command,
        &load,
        t0.elapsed().as_secs_f64(),
        &allreduce,
        &train,
    )?;
    println!("{}", args.out.join("README.md").display());
    Ok(())
}
