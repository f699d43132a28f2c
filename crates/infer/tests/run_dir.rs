//! `--checkpoint` given a training run's folder (or its `ckpt` when the link is gone)
//! resolves to the newest checkpoint with a note; `--threads` and `--batch` are bounded.
use model::{io, ModelConfig};
use std::process::Command;
use tch::{nn, Device};

fn infer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_infer"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A run folder as `train` leaves it: `ckpt-000004/`, the `ckpt` link, `checkpoints.json`.
fn run_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("ckpt-000004");
    let vs = nn::VarStore::new(Device::Cpu);
    let cfg = ModelConfig::gpt2_tiny();
    let _m = model::Gpt::new(&vs.root(), &cfg, &model::RunSettings::default()).unwrap();
    io::save_native(&vs, &cfg, &ck).unwrap();
    std::os::unix::fs::symlink("ckpt-000004", dir.path().join("ckpt")).unwrap();
    std::fs::write(
        dir.path().join("checkpoints.json"),
        r#"{"format": 1, "name": "ckpt-000004", "step": 4, "seq": 2, "files": {}}"#,
    )
    .unwrap();
    dir
}

const GEN: &[&str] = &[
    "--prompt-ids",
    "1,2",
    "--max-new-tokens",
    "2",
    "--threads",
    "1",
    "--format",
    "json",
];

#[test]
fn a_run_folder_resolves_to_its_newest_checkpoint() {
    let dir = run_dir();
    let run = dir.path().to_str().unwrap().to_string();
    let (ok, _, err) = infer(&[&["--checkpoint", &run][..], GEN].concat());
    assert!(ok, "{err}");
    assert!(
        err.contains("a training run's folder") && err.contains("ckpt-000004"),
        "{err}"
    );
    // The stable name works as is, and without its link through the pointer.
    let ckpt = format!("{run}/ckpt");
    assert!(infer(&[&["--checkpoint", &ckpt][..], GEN].concat()).0);
    std::fs::remove_file(dir.path().join("ckpt")).unwrap();
    let (ok, _, err) = infer(&[&["--checkpoint", &ckpt][..], GEN].concat());
    assert!(ok && err.contains("ckpt-000004"), "{err}");
}

#[test]
fn threads_and_batch_are_bounded() {
    for (args, want) in [
        (
            "--preset gpt2_tiny --threads 100000",
            "--threads 100000: expected 0",
        ),
        (
            "--preset gpt2_tiny --batch 100000000",
            "--batch 100000000: expected 1 up to",
        ),
        ("--preset gpt2_tiny --batch 0", "--batch 0"),
    ] {
        let args: Vec<&str> = args.split_whitespace().collect();
        let (ok, _, err) = infer(&args);
        assert!(!ok && err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Within the count bound but beyond memory: refused before allocating.
    let (ok, _, err) = infer(&[
        "--preset",
        "gpt2_speed_cpu",
        "--batch",
        "60000",
        "--prompt-ids",
        "1",
        "--max-new-tokens",
        "500",
        "--kv-cache",
    ]);
    assert!(
        !ok && err.contains("GB") && err.contains("--batch 60000"),
        "{err}"
    );
}
