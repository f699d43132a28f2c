//! `speed_overhead` (issue #16): stories260K greedy decode at one and two threads (the
//! per-token overhead of a tiny model, against llama2.c's speed), GPT-2 124M decode with the
//! default vs the tuned single-row kernels, and one training step of `gpt2_speed_cpu` with
//! the plain vs the chunked cross-entropy and the per-tensor vs the flat AdamW, in fp32 and
//! (where this CPU runs it natively) bf16; writes
//! `results/speed/overhead/{README.md,decode.csv,decode_kernels.csv,train_step.csv}`.
use anyhow::Result;
use clap::Parser;
use experiments::speed::{kernels, overhead};
use runtime::DType;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    about = "Measure a tiny model's decode overhead, GPT-2 124M decode with the default vs the tuned matmul kernels, and a training step with the plain, chunked or fused cross-entropy and the per-tensor or flat AdamW; write results/speed/overhead."
)]
struct Args {
    /// Timed stories260K runs per thread count (500 tokens each; the median is reported).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Timed training steps per variant and dtype (the median is reported).
    #[arg(long, default_value_t = 4)]
    repeats: usize,
    /// Skip the training-step comparison (with --kernel-runs 0 too: seconds, not minutes).
    #[arg(long)]
    decode_only: bool,
    /// Timed GPT-2 124M generations per decode-kernel variant and dtype (0 skips them).
    #[arg(long, default_value_t = 3)]
    kernel_runs: usize,
    /// The results folder.
    #[arg(long, default_value = "results/speed/overhead")]
    out: PathBuf,
    /// The command recorded in the README (default: this binary's own command line).
    #[arg(long)]
    command: Option<String>,
}

fn main() -> std::process::ExitCode {
    runtime::exit::main(run)
}

fn run() -> Result<()> {
    runtime::logging::init();
    let args = Args::parse();
    let Some(dir) = runtime::resources::shared_resource("models/stories260K")? else {
        anyhow::bail!("stories260K is needed: set LADDER_SHARED to the folder holding models/");
    };
    let machine = runtime::hardware::machine(tch::Device::Cpu)?;
    let mut dtypes = vec![DType::Fp32];
    if machine.native_bf16() {
        dtypes.push(DType::Bf16);
    }
    // Decode kernels in bf16 also where only the gemv multiplies bf16 natively (AVX512-BF16
    // while libtorch's bf16 matmul loses to fp32): `infer --dtype auto` decodes in bf16 there.
    let mut decode_dtypes = dtypes.clone();
    if !machine.native_bf16() && runtime::gemv::native_bf16() {
        decode_dtypes.push(DType::Bf16);
    }
    let mut tiny = vec![(DType::Fp32, 1), (DType::Fp32, 2)];
    if machine.native_bf16() {
        tiny.push((DType::Bf16, 1));
    }
    let _g = tch::no_grad_guard();
    let decode = overhead::tiny_decode(&dir, &tiny, args.runs)?;
    drop(_g);
    let mut head = Vec::new();
    let mut kernel_rows = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get()) as i32;
    tch::set_num_threads(cores);
    if args.kernel_runs > 0 {
        for &d in &decode_dtypes {
            kernel_rows.extend(kernels::decode_kernels(d, args.kernel_runs)?);
        }
    }
    if !args.decode_only {
        for &d in &dtypes {
            head.extend(overhead::train_step(d, args.repeats)?);
        }
    }
    let command = args.command.unwrap_or_else(|| {
        let argv: Vec<String> = std::env::args().collect();
        argv.join(" ").replace("target/release/", "")
    });
    overhead::write(&args.out, &command, &decode, &head, &kernel_rows)?;
    println!("{}", args.out.join("README.md").display());
    Ok(())
}
