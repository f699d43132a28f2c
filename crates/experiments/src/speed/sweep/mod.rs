//! The speed ladder as curves (issue #12): attention vs sequence length (training and
//! prefill tokens/sec and peak memory, naive vs SDPA), decode vs context and batch (MHA,
//! GQA-4, MQA beside the memory-bandwidth roofline of Williams, Waterman & Patterson 2009)
//! and GPT-2 small's real-size decode — CSV, one SVG per family, a generated paragraph
//! naming the crossovers and the target verdicts. Every point runs in a fresh process (this
//! binary again, like the speed ladder's phases), so each peak RSS is its own.
pub mod attention;
pub mod decode;
pub mod plan;
pub mod report;
pub mod row;
mod runner;
pub mod summary;
pub mod targets;

use anyhow::{Context, Result};
use clap::Parser;
use model::ModelConfig;
use plan::{Grid, Point};
use row::{Row, Section};
use runtime::Precision;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// The committed output folder; `--quick` runs never write there.
pub const DEFAULT_OUT: &str = "results/speed/sweep";

/// What to sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    Attention,
    Decode,
    RealSize,
}

#[derive(Debug, Clone, Parser)]
#[command(
    about = "The speed ladder as curves: attention (naive vs SDPA) vs sequence length, decode (MHA, GQA-4, MQA) vs context and batch beside the bandwidth roofline, and GPT-2 small's real-size decode.",
    long_about = "The speed ladder as curves. Writes <out>/{attention,decode,real_size}.csv, one SVG chart per curve family (log2 x axis), README.md with the crossovers and target verdicts, and (full runs into results/speed/sweep only) the generated section of docs/speed.md. Each point runs in its own process within --point-seconds; points that would not fit memory or the context are skipped and say why; the sweep stops starting points after --total-minutes."
)]
pub struct SweepArgs {
    /// A small grid on a toy preset (seconds): for tests and CI. Writes to --out or a temp
    /// folder, never to results/speed/sweep, and never to the docs.
    #[arg(long)]
    pub quick: bool,
    /// Run one family only (default: attention and decode; real-size only with --real-size).
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// Also measure the real-size point (gpt2_124m decode, batch 1, prompt 64 + 128 new, fp32
    /// and the machine's fast precision) into <out>/real_size.{csv,md}.
    #[arg(long)]
    pub real_size: bool,
    /// Model shape of the attention and decode sweeps (default gpt2_long_cpu, context 16384;
    /// --quick: gpt2_tiny_sweep). Points past its block_size are skipped.
    #[arg(long)]
    pub preset: Option<String>,
    /// Override the attention sweep's sequence lengths (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub seq_lens: Option<Vec<usize>>,
    /// Override the decode sweep's contexts (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub contexts: Option<Vec<usize>>,
    /// Override the decode sweep's batch sizes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub batches: Option<Vec<usize>>,
    /// Precision of the sweeps: auto (bf16 where native, else fp32), fp32 or bf16.
    #[arg(long, default_value = "auto")]
    pub dtype: Precision,
    /// Time budget of each point, warm-up included (at least 2 measured runs are made).
    #[arg(long, default_value_t = 20.0)]
    pub point_seconds: f64,
    /// Total budget: no point starts after this many minutes (the rest are skipped, say so).
    #[arg(long, default_value_t = 90.0)]
    pub total_minutes: f64,
    /// Warm-up runs per point (training and prefill; decode warms up once).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Measured runs per point (median, min and max are reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Share of the available memory (MemAvailable) a point may be estimated to need.
    #[arg(long, default_value_t = 0.8)]
    pub memory_share: f64,
    /// Intra-op threads (0 = libtorch's default, all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Output folder (default results/speed/sweep; with --quick a temporary folder).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Do not write the generated section of docs/speed.md.
    #[arg(long)]
    pub no_docs: bool,
    /// Random seed for weights and token ids.
    #[arg(long, default_value_t = 1337)]
    pub seed: i64,
    /// The command recorded in the README.
    #[arg(long, default_value = "just speed-sweep")]
    pub command: String,
    /// Internal (hidden): measure this one point (JSON of a `Job`) and write its row to
    /// --child-out. The sweep runs itself this way once per point.
    #[arg(long, hide = true, requires = "child_out")]
    pub child_job: Option<String>,
    /// Internal: the CSV file the child writes its row to.
    #[arg(long, hide = true)]
    pub child_out: Option<PathBuf>,
}

/// What a child process measures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub point: Point,
    pub seed: i64,
    pub warmup: usize,
    pub repeats: usize,
    pub max_seconds: f64,
}

impl SweepArgs {
    pub fn out_dir(&self) -> PathBuf {
        match (&self.out, self.quick) {
            (Some(o), _) => o.clone(),
            (None, true) => std::env::temp_dir().join("ladder-speed-sweep-quick"),
            (None, false) => PathBuf::from(DEFAULT_OUT),
        }
    }

    fn preset(&self) -> String {
        self.preset.clone().unwrap_or_else(|| {
            if self.quick {
                "gpt2_tiny_sweep"
            } else {
                "gpt2_long_cpu"
            }
            .into()
        })
    }

    fn wants(&self, s: Section) -> bool {
        match (self.only, s) {
            (Some(Only::Attention), s) => s == Section::Attention,
            (Some(Only::Decode), s) => s == Section::Decode,
            (Some(Only::RealSize), s) => s == Section::RealSize,
            (None, Section::RealSize) => self.real_size,
            (None, _) => true,
        }
    }
}

/// Entry point of `speed_sweep`.
pub fn main() -> Result<()> {
    runtime::logging::init();
    let args = SweepArgs::parse();
    anyhow::ensure!(
        args.point_seconds.is_finite() && args.point_seconds > 0.0,
        "--point-seconds {}: expected a positive number of seconds",
        args.point_seconds
    );
    let device = runtime::device::parse_device(&args.device)?;
    let threads = runtime::device::set_threads(args.threads);
    if let (Some(job), Some(out)) = (&args.child_job, &args.child_out) {
        let job: Job = serde_json::from_str(job).context("--child-job")?;
        let cfg = job.point.config(&ModelConfig::preset(&job.point.preset)?);
        let mut row = match job.point.section {
            Section::Attention => attention::measure(&job, &cfg, device)?,
            _ => decode::measure(&job, &cfg, device)?,
        };
        row.peak_rss_bytes = runtime::mem::peak_rss_bytes().unwrap_or(0);
        row.device = runtime::device::device_name(device);
        row.threads = threads;
        return row::write_rows(out, &[row]);
    }
    let start = Instant::now();
    if let Some(load) = report::record_load_at_start() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        if load > 0.5 * cores as f64 {
            tracing::warn!("load average {load:.1} on {cores} cores: other processes are using the CPU, so the sweep's numbers will be unreliable (the README says so)");
        }
    }
    let machine = runtime::hardware::machine(device)?;
    let dtype = args.dtype.resolve_logged(&machine);
    let preset = args.preset();
    let base = ModelConfig::preset(&preset).context("--preset")?;
    let out = args.out_dir();
    anyhow::ensure!(
        !(args.quick && out == std::path::Path::new(DEFAULT_OUT)),
        "--quick never writes to {DEFAULT_OUT} (the committed results): give another --out"
    );
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    runtime::hardware::write_record(&out.join("machine.json"), &machine)?;
    let mut grid = if args.quick {
        Grid::quick()
    } else {
        Grid::full()
    };
    if let Some(t) = &args.seq_lens {
        grid.attention_t = t.clone();
    }
    if let Some(c) = &args.contexts {
        grid.decode_context = c.clone();
    }
    if let Some(b) = &args.batches {
        grid.decode_batch = b.clone();
    }
    let mut points = Vec::new();
    if args.wants(Section::Attention) {
        points.extend(grid.attention_points(&preset, dtype));
    }
    if args.wants(Section::Decode) {
        points.extend(grid.decode_points(&preset, dtype));
    }
    if args.wants(Section::RealSize) {
        points.extend(plan::real_size_points(dtype));
    }
    anyhow::ensure!(!points.is_empty(), "nothing to sweep");
    let limit = if device == tch::Device::Cpu {
        plan::available_bytes(args.memory_share)
    } else {
        machine
            .facts
            .gpu
            .as_ref()
            .map(|g| (g.memory_bytes as f64 * args.memory_share) as u64)
    };
    tracing::info!(
        "sweep of {} points into {} ({} per point, {} min in all)",
        points.len(),
        out.display(),
        args.point_seconds,
        args.total_minutes
    );
    let rows = runner::run_points(&args, &points, &base, limit, start)?;
    let mut rows: Vec<Row> = rows
        .into_iter()
        .map(|r| report::with_roofline(r, &machine))
        .collect();
    // Families not run this time keep their last results in the report (`--only decode`
    // re-measures decode and leaves attention as it was).
    for (section, name) in report::CSV_FILES {
        let path = out.join(name);
        if !args.wants(section) && path.exists() {
            rows.extend(row::read_rows(&path)?);
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    let docs = !args.quick && !args.no_docs && out == std::path::Path::new(DEFAULT_OUT);
    let readme = report::write_all(&out, &rows, &machine, &args.command, wall_s, docs)?;
    println!("{readme}");
    eprintln!(
        "speed sweep: {} points in {:.0} s ({:.1} min); results in {}",
        rows.len(),
        wall_s,
        wall_s / 60.0,
        out.display()
    );
    Ok(())
}
