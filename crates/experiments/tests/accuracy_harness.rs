//! The accuracy harness (`accuracy_<rung>`): `--append` adds seeds to a rung's record, and
//! `--resume` continues a seed from its checkpoint to the same losses as the run it resumes.
use std::path::{Path, PathBuf};
use std::process::Command;

fn rung(out: &Path, extra: &[&str]) -> serde_json::Value {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cache = out.join("cache");
    let run = Command::new(env!("CARGO_BIN_EXE_accuracy_1_original"))
        .current_dir(&root)
        .args([
            "--quiet",
            "--set",
            "train.max_iters=4",
            "--set",
            "train.eval_interval=2",
        ])
        .args(["--set", "train.eval_iters=1", "--set", "train.batch_size=4"])
        .args(["--set", "model.n_layer=1", "--set", "model.block_size=16"])
        .args([
            "--set",
            "train.warmup_iters=1",
            "--set",
            "train.lr_decay_iters=4",
        ])
        .args(["--set", &format!("data.cache_dir=\"{}\"", cache.display())])
        .arg("--out")
        .arg(out.join("results"))
        .arg("--runs-dir")
        .arg(out.join("runs"))
        .args(extra)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let rec = out.join("results/rungs/1_original.json");
    serde_json::from_str(&std::fs::read_to_string(rec).unwrap()).unwrap()
}

#[test]
fn append_adds_seeds_and_resume_reaches_the_same_losses() {
    if runtime::resources::shared_resource("data/tinyshakespeare.txt")
        .unwrap()
        .is_none()
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let one = rung(dir.path(), &["--seeds", "1"]);
    assert_eq!(one["seeds"], serde_json::json!([1337]));
    let two = rung(dir.path(), &["--seeds", "2", "--append"]);
    assert_eq!(two["seeds"], serde_json::json!([1337, 1338]));
    assert_eq!(two["final_val_loss"][0], one["final_val_loss"][0]);
    // Lose the record: --resume picks both seeds up from their checkpoints (already at the
    // last step) and records the same losses.
    std::fs::remove_file(dir.path().join("results/rungs/1_original.json")).unwrap();
    let again = rung(dir.path(), &["--seeds", "2", "--resume"]);
    assert_eq!(again["seeds"], two["seeds"]);
    assert_eq!(again["final_val_loss"], two["final_val_loss"]);
}
