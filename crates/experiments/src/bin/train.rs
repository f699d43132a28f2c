//! `just train CONFIG [--set section.key=value ...] [--resume]`: train any TOML config.
use anyhow::Result;
use clap::Parser;
use experiments::config::TrainConfig;
use experiments::train::{train, RunOptions};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Train a model from a TOML config (see experiments/*.toml).",
    long_about = "Train a model from a TOML config (see experiments/*.toml). Metrics go to <run.out_dir>/{metrics.csv,eval.csv,log.jsonl,summary.json}, checkpoints to <run.out_dir>/ckpt-<step>/ with <run.out_dir>/ckpt a link to the newest (use it with `cargo run -p infer -- --checkpoint <run.out_dir>/ckpt`). One run per out_dir at a time (a lock); --resume continues from the newest checkpoint that verifies and refuses a changed architecture or corpus. See docs/reliability.md."
)]
struct Args {
    /// The training config (TOML with [run], [data], [model], [train]).
    config: PathBuf,
    /// Override a config value, e.g. --set train.max_iters=100 --set model.attention=naive
    /// (typed and checked like the file).
    #[arg(long = "set", value_name = "SECTION.KEY=VALUE")]
    sets: Vec<String>,
    /// Continue from the newest verified checkpoint in <run.out_dir>; the loss curve continues
    /// exactly. The model architecture and corpus must be the checkpoint's.
    #[arg(long)]
    resume: bool,
    /// Stop after this iteration (after writing a checkpoint), as if interrupted.
    #[arg(long, value_name = "ITER")]
    stop_at: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> Result<()> {
    // Under DDP only rank 0 logs at info level and prints the summary.
    let main_rank = experiments::ddp::is_main_process();
    runtime::logging::init_with_default(if main_rank { "info" } else { "warn" });
    let args = Args::parse();
    let cfg = TrainConfig::load(&args.config, &args.sets)?;
    let out = train(
        &cfg,
        &RunOptions {
            resume: args.resume,
            stop_at: args.stop_at,
            quiet: args.quiet,
        },
    )?;
    if !main_rank {
        return Ok(());
    }
    println!(
        "{}: step {}, train loss {:.4}, val loss {:.4}, {:.0} tokens/sec, {:.0} s",
        cfg.run.name,
        out.final_step,
        out.final_train_loss,
        out.final_val_loss,
        out.tokens_per_sec,
        out.wall_s
    );
    if !out.sample.is_empty() {
        println!("--- sample ---\n{}\n--------------", out.sample);
    }
    println!("checkpoint: {}", out.out_dir.join("ckpt").display());
    Ok(())
}
