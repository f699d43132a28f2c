//! `dist_check [collectives|die]`: joins the group torchrun's environment describes and checks
//! all-reduce (sum, average), broadcast from every root and barrier against known answers,
//! on CPU tensors (Gloo) and, where the group has NCCL, on CUDA tensors on cuda:LOCAL_RANK.
//! A smoke test for a new cluster: `torchrun --no-python --nproc-per-node 2 target/release/dist_check`.
//! `die` joins and then exits with status 3 without a collective (used by the failure tests);
//! `serve-store` only hosts the TCPStore on MASTER_PORT for 30 s, as torchrun's agent does.
//! `LADDER_DIST_TIMEOUT_S` sets the timeout (default 60 s).
use anyhow::{bail, Result};
use dist::ProcessGroup;
use std::time::Duration;
use tch::{Kind, Tensor};

fn check_close(what: &str, got: &Tensor, want: &Tensor) -> Result<()> {
    let diff = (got - want).abs().max().double_value(&[]);
    if diff > 1e-6 {
        bail!("{what}: max difference {diff} from the expected values");
    }
    Ok(())
}

fn collectives(pg: &ProcessGroup) -> Result<()> {
    let mut devices = vec![tch::Device::Cpu];
    if pg.has_nccl() {
        devices.push(tch::Device::Cuda(pg.local_rank()));
    }
    for &d in &devices {
        collectives_on(pg, d)?;
    }
    pg.barrier()?;
    println!(
        "rank {} of {}: all-reduce, broadcast and barrier ok ({})",
        pg.rank(),
        pg.world_size(),
        if pg.has_nccl() {
            "Gloo and NCCL"
        } else {
            "Gloo"
        }
    );
    Ok(())
}

fn collectives_on(pg: &ProcessGroup, device: tch::Device) -> Result<()> {
    let (r, w) = (pg.rank() as f64, pg.world_size() as f64);
    let base = Tensor::arange(1000, (Kind::Float, device));
    let mut t = &base * (r + 1.0);
    pg.all_reduce_sum(&mut t)?;
    check_close("all-reduce sum", &t, &(&base * (w * (w + 1.0) / 2.0)))?;
    let mut t = &base * (r + 1.0);
    pg.all_reduce_avg(&mut t)?;
    check_close("all-reduce average", &t, &(&base * ((w + 1.0) / 2.0)))?;
    for root in 0..pg.world_size() {
        let mut t = &base + r;
        pg.broadcast(&mut t, root)?;
        check_close("broadcast", &t, &(&base + root as f64))?;
    }
    Ok(())
}

fn run() -> Result<()> {
    let mode = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "collectives".into());
    let timeout = dist::timeout_from_env(Duration::from_secs(60))?;
    tch::set_num_threads(1);
    let pg = ProcessGroup::from_env(timeout)?;
    match mode.as_str() {
        "collectives" => collectives(&pg),
        "die" => {
            println!("rank {}: joined, exiting without a collective", pg.rank());
            std::process::exit(3)
        }
        other => bail!("unknown mode {other:?}: expected `collectives` or `die`"),
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
