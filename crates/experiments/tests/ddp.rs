//! DDP end to end with real processes (Gloo on 127.0.0.1, a free port, 2 ranks × 1 thread):
//! 30 steps of 2-rank DDP at per-rank batch B trace the same loss curve as one process with
//! grad_accum 2 drawing the same batches (`LADDER_DATA_STREAMS=2`), within 1e-5 per step,
//! and the replicas end identical (the run checks it and fails otherwise).
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn corpus() -> Option<PathBuf> {
    // In CI a missing corpus fails; elsewhere the test is skipped.
    runtime::resources::shared_resource("data/tinyshakespeare.txt").unwrap()
}

fn config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments/shakespeare_char_cpu.toml")
}

/// The train command for a tiny fp32 model; `out` is its run folder.
fn train_cmd(dir: &Path, corpus: &Path, out: &str, batch: usize, accum: usize) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_train"));
    c.arg(config()).arg("--quiet");
    for s in [
        "model.n_layer=2".to_string(),
        "model.n_head=2".into(),
        "model.n_kv_heads=2".into(),
        "model.n_embd=32".into(),
        "model.intermediate_size=128".into(),
        "model.block_size=32".into(),
        "model.dtype=\"fp32\"".into(),
        format!("train.batch_size={batch}"),
        format!("train.grad_accum={accum}"),
        "train.max_iters=30".into(),
        "train.lr_decay_iters=30".into(),
        "train.warmup_iters=5".into(),
        "train.eval_interval=30".into(),
        "train.eval_iters=2".into(),
        "train.log_interval=1".into(),
        "train.threads=1".into(),
        "train.sample_tokens=0".into(),
        format!("data.corpus=\"{}\"", corpus.display()),
        format!("data.cache_dir=\"{}\"", dir.join("cache").display()),
        format!("run.out_dir=\"{}\"", dir.join(out).display()),
    ] {
        c.arg("--set").arg(s);
    }
    c.env(
        "LADDER_MACHINE_FILE",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("machine.json"),
    )
    .env("OMP_NUM_THREADS", "1")
    .env_remove("RANK")
    .env_remove("WORLD_SIZE")
    .env_remove(experiments::ddp::STREAMS_VAR)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    c
}

fn check(what: &str, o: &Output) {
    assert!(
        o.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn losses(run: &Path) -> Vec<(usize, f64)> {
    csv::Reader::from_path(run.join("metrics.csv"))
        .unwrap()
        .deserialize::<experiments::metrics::StepRow>()
        .map(|r| {
            let r = r.unwrap();
            (r.step, r.train_loss)
        })
        .collect()
}

/// Runs `cmd` as `world` ranks on loopback; their outputs.
fn launch(mut cmd: Command, world: usize) -> Vec<Output> {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ranks: Vec<_> = (0..world)
        .map(|r| {
            cmd.env("RANK", r.to_string())
                .env("LOCAL_RANK", r.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("LADDER_DIST_TIMEOUT_S", "60")
                .spawn()
                .unwrap()
        })
        .collect();
    ranks
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect()
}

#[test]
fn a_ddp_checkpoint_resumes_with_another_world_size() {
    let Some(corpus) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let with = |mut c: Command, args: &[&str]| {
        c.args(args).args(["--set", "train.eval_interval=10"]);
        c
    };
    // 2 ranks stop at step 10 (after its checkpoint); 1 process resumes to 30; 2 ranks
    // resume that to 40.
    for o in launch(
        with(train_cmd(d, &corpus, "run", 4, 1), &["--stop-at", "10"]),
        2,
    ) {
        check("2 ranks to step 10", &o);
    }
    let one = with(train_cmd(d, &corpus, "run", 4, 1), &["--resume"])
        .output()
        .unwrap();
    check("1 process resuming to 30", &one);
    let more = train_cmd(d, &corpus, "run", 4, 1);
    let more = with(more, &["--resume", "--set", "train.max_iters=40"]);
    for o in launch(more, 2) {
        check("2 ranks resuming to 40", &o);
    }
    let steps: Vec<usize> = losses(&d.join("run")).iter().map(|r| r.0).collect();
    assert_eq!(steps, (1..=40).collect::<Vec<_>>());
}

#[test]
fn two_rank_ddp_equals_one_process_with_accumulation() {
    let Some(corpus) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    let single = train_cmd(d, &corpus, "single", 4, 2)
        .env(experiments::ddp::STREAMS_VAR, "2")
        .output()
        .unwrap();
    check("the single-process run", &single);

    let outs = launch(train_cmd(d, &corpus, "ddp", 4, 1), 2);
    check("DDP rank 0", &outs[0]);
    check("DDP rank 1", &outs[1]);
    let log0 = String::from_utf8_lossy(&outs[0].stderr);
    assert!(
        log0.contains("parameters identical on all 2 ranks"),
        "{log0}"
    );

    let (a, b) = (losses(&d.join("single")), losses(&d.join("ddp")));
    assert_eq!(a.len(), 30);
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x.1 - y.1).abs())
        .fold(0.0, f64::max);
    eprintln!("max |loss difference| over 30 steps: {worst:e}");
    for ((s1, l1), (s2, l2)) in a.iter().zip(&b) {
        assert_eq!(s1, s2);
        assert!(
            (l1 - l2).abs() < 1e-5,
            "step {s1}: one process {l1}, DDP {l2}"
        );
    }
    // The loss moved, so the comparison covers training, not just the initial state.
    assert!(a[29].1 < a[0].1 - 0.1, "{a:?}");
    // Only rank 0 writes: one metrics file, one checkpoint, nothing from rank 1.
    assert!(d.join("ddp/ckpt").is_dir());
    assert!(!d.join("ddp/ckpt.tmp").exists());
}

#[test]
fn ranks_with_different_configs_fail_clearly() {
    let Some(corpus) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kids: Vec<_> = [4, 8]
        .iter()
        .enumerate()
        .map(|(r, &batch)| {
            train_cmd(d, &corpus, "run", batch, 1)
                .env("RANK", r.to_string())
                .env("WORLD_SIZE", "2")
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("LADDER_DIST_TIMEOUT_S", "60")
                .spawn()
                .unwrap()
        })
        .collect();
    for k in kids {
        let o = k.wait_with_output().unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("the config differs between ranks"), "{err}");
    }
}
