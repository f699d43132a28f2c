//! Two real processes on loopback (Gloo, 127.0.0.1, a free port): the collectives give the
//! known answers, and every failure (a dead rank, a missing rank, a wrong WORLD_SIZE or RANK)
//! ends in a non-zero exit with a clear message within the timeout, never a hang.
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn spawn(mode: &str, rank: usize, world: usize, port: u16, timeout_s: f64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_dist_check"))
        .arg(mode)
        .env("RANK", rank.to_string())
        .env("WORLD_SIZE", world.to_string())
        .env("LOCAL_RANK", rank.to_string())
        .env("MASTER_ADDR", "127.0.0.1")
        .env("MASTER_PORT", port.to_string())
        .env("LADDER_DIST_TIMEOUT_S", timeout_s.to_string())
        .env("OMP_NUM_THREADS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dist_check")
}

struct Done {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    secs: f64,
}

/// Waits at most `limit`; a process still running then is killed and the test fails.
fn finish(mut c: Child, limit: Duration) -> Done {
    let t0 = Instant::now();
    loop {
        if c.try_wait().expect("try_wait").is_some() {
            break;
        }
        if t0.elapsed() > limit {
            c.kill().ok();
            let out = c.wait_with_output().expect("output");
            panic!(
                "still running after {limit:?} (a hang): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = c.wait_with_output().expect("output");
    Done {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
        secs: t0.elapsed().as_secs_f64(),
    }
}

#[test]
fn two_ranks_all_reduce_broadcast_barrier() {
    let port = free_port();
    let kids: Vec<Child> = (0..2)
        .map(|r| spawn("collectives", r, 2, port, 30.0))
        .collect();
    for (r, c) in kids.into_iter().enumerate() {
        let d = finish(c, Duration::from_secs(60));
        assert_eq!(d.code, Some(0), "rank {r}: {}", d.stderr);
        assert!(
            d.stdout.contains("all-reduce, broadcast and barrier ok"),
            "{}",
            d.stdout
        );
    }
}

#[test]
fn ranks_join_a_store_hosted_by_torchruns_agent() {
    let port = free_port();
    let mut agent = spawn("serve-store", 0, 2, port, 30.0);
    std::thread::sleep(Duration::from_millis(500));
    let kids: Vec<Child> = (0..2)
        .map(|r| {
            let mut c = Command::new(env!("CARGO_BIN_EXE_dist_check"));
            c.env("RANK", r.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("TORCHELASTIC_USE_AGENT_STORE", "True")
                .env("TORCHELASTIC_RESTART_COUNT", "1")
                .env("LADDER_DIST_TIMEOUT_S", "20")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            c.spawn().expect("spawn dist_check")
        })
        .collect();
    for (r, c) in kids.into_iter().enumerate() {
        let d = finish(c, Duration::from_secs(60));
        assert_eq!(d.code, Some(0), "rank {r}: {}", d.stderr);
    }
    agent.kill().ok();
    agent.wait().ok();
}

#[test]
fn a_dead_rank_makes_the_other_fail_within_the_timeout() {
    let port = free_port();
    let survivor = spawn("collectives", 0, 2, port, 5.0);
    let dead = spawn("die", 1, 2, port, 5.0);
    let d = finish(dead, Duration::from_secs(30));
    assert_eq!(d.code, Some(3), "{}", d.stderr);
    let s = finish(survivor, Duration::from_secs(30));
    assert_ne!(s.code, Some(0), "the survivor must fail: {}", s.stdout);
    assert!(
        s.stderr.contains("rank 0: all-reduce (sum) failed"),
        "{}",
        s.stderr
    );
    assert!(s.secs < 20.0, "took {:.1} s", s.secs);
}

#[test]
fn a_rank_that_never_arrives_is_named() {
    let d = finish(
        spawn("collectives", 0, 2, free_port(), 2.0),
        Duration::from_secs(30),
    );
    assert_eq!(d.code, Some(1));
    assert!(
        d.stderr
            .contains("rank(s) 1 of WORLD_SIZE=2 did not join within 2000 ms"),
        "{}",
        d.stderr
    );
}

#[test]
fn wrong_world_size_and_rank_are_clear_errors() {
    let port = free_port();
    let r0 = spawn("collectives", 0, 2, port, 3.0);
    let r1 = spawn("collectives", 1, 3, port, 3.0);
    let d1 = finish(r1, Duration::from_secs(30));
    assert_eq!(d1.code, Some(1));
    assert!(
        d1.stderr
            .contains("WORLD_SIZE mismatch: rank 0 says 2, rank 1 says 3"),
        "{}",
        d1.stderr
    );
    let d0 = finish(r0, Duration::from_secs(30));
    assert_ne!(d0.code, Some(0), "{}", d0.stdout);

    let d = finish(
        spawn("collectives", 2, 2, free_port(), 3.0),
        Duration::from_secs(10),
    );
    assert_eq!(d.code, Some(1));
    assert!(
        d.stderr.contains("RANK=2 is out of range for WORLD_SIZE=2"),
        "{}",
        d.stderr
    );
}

#[test]
fn each_rank_takes_the_gpu_of_its_local_rank_unless_told_one() {
    use tch::Device;
    assert_eq!(
        dist::rank_device(Device::Cuda(0), "cuda", 3),
        Device::Cuda(3)
    );
    assert_eq!(
        dist::rank_device(Device::Cuda(0), "auto", 1),
        Device::Cuda(1)
    );
    assert_eq!(
        dist::rank_device(Device::Cuda(1), "cuda:1", 0),
        Device::Cuda(1)
    );
    assert_eq!(dist::rank_device(Device::Cpu, "auto", 2), Device::Cpu);
}
