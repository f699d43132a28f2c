//! What a resume may and may not change (issue 18, items 1, 5 and 6): a different
//! architecture or corpus is refused before anything is written, run-time settings may
//! change and are recorded, metrics never repeat a step, and a NaN stop names only a
//! verified, finite checkpoint.
mod common;
use common::*;
use experiments::checkpoint;

#[test]
fn a_changed_architecture_is_refused_naming_each_key_and_the_checkpoint_survives() {
    let Some(_) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_tiny(dir.path(), &[], false, Some(4)).unwrap();
    let before = snapshot(&run);
    for (sets, keys) in [
        (
            &["model.n_layer=1"][..],
            &["model.n_layer: checkpoint 2, requested 1"][..],
        ),
        (
            &["model.pos_emb=\"rope\"", "model.norm=\"rmsnorm\""][..],
            &["model.pos_emb", "model.norm"][..],
        ),
        (
            &["model.tie_embeddings=false"][..],
            &["model.tie_embeddings"][..],
        ),
    ] {
        let e = train_tiny(dir.path(), sets, true, None).unwrap_err();
        for k in keys {
            assert!(
                e.contains(k) && e.contains("different architecture"),
                "{sets:?}: {e}"
            );
        }
        assert_eq!(snapshot(&run), before, "{sets:?}: files changed");
    }
    // Run-time settings may change; each is recorded in log.jsonl's resume event.
    train_tiny(
        dir.path(),
        &["model.attention=\"naive\"", "train.max_iters=6"],
        true,
        None,
    )
    .unwrap();
    let resume: Vec<serde_json::Value> = complete_lines(&run.join("log.jsonl"))
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v["event"] == "resume")
        .collect();
    assert_eq!(resume.len(), 1);
    let changed = resume[0]["changed"].to_string();
    assert!(
        changed.contains("model.attention") && changed.contains("train.max_iters"),
        "{changed}"
    );
    assert_eq!(checkpoint::latest(&run).unwrap().step(), 6);
}

#[test]
fn a_different_corpus_on_resume_is_a_clear_error() {
    let Some(c) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(c).unwrap();
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    std::fs::write(&a, &text[..60_000]).unwrap();
    std::fs::write(&b, &text[60_000..120_000]).unwrap();
    let corpus_a = format!("data.corpus=\"{}\"", a.display());
    let corpus_b = format!("data.corpus=\"{}\"", b.display());
    train_tiny(dir.path(), &[&corpus_a], false, Some(2)).unwrap();
    let before = snapshot(&dir.path().join("run"));
    let e = train_tiny(dir.path(), &[&corpus_b], true, None).unwrap_err();
    assert!(
        e.contains("a.txt") && e.contains("b.txt") && e.contains("data.corpus"),
        "{e}"
    );
    assert!(!e.contains("shape") && !e.contains("libtorch"), "{e}");
    assert_eq!(snapshot(&dir.path().join("run")), before);
}

#[test]
fn a_missing_corpus_names_the_config_key_not_a_flag_train_lacks() {
    let dir = tempfile::tempdir().unwrap();
    let missing = format!("data.corpus=\"{}\"", dir.path().join("nope.txt").display());
    let e = train_tiny(dir.path(), &[&missing], false, None).unwrap_err();
    assert!(
        e.contains("nope.txt") && e.contains("--set data.corpus=PATH"),
        "{e}"
    );
    assert!(!e.contains("--data"), "{e}");
}

#[test]
fn partial_lines_are_dropped_and_replayed_steps_are_not_duplicated() {
    let Some(_) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    // A run that got past its checkpoint (step 4) to step 5 and died mid-line.
    train_tiny(dir.path(), &[], false, Some(5)).unwrap();
    assert_eq!(ckpt_names(&run), ["ckpt", "ckpt-000004"]);
    let append = |f: &str, s: &str| {
        use std::io::Write;
        let mut h = std::fs::OpenOptions::new()
            .append(true)
            .open(run.join(f))
            .unwrap();
        h.write_all(s.as_bytes()).unwrap();
    };
    append("log.jsonl", "{\"event\":\"step\",\"row\":{\"st");
    append("metrics.csv", "6,0.0009");
    train_tiny(dir.path(), &[], true, None).unwrap();
    assert_eq!(metric_steps(&run), (1..=8).collect::<Vec<_>>());
    assert_eq!(jsonl_steps(&run, "step"), (1..=8).collect::<Vec<_>>());
    assert_eq!(jsonl_steps(&run, "eval"), [0, 2, 4, 6, 8]);
    let evals = complete_lines(&run.join("eval.csv"));
    assert_eq!(evals.len(), 1 + 5);
}

#[test]
fn a_nan_stop_names_only_a_verified_finite_checkpoint() {
    let Some(_) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_tiny(dir.path(), &[], false, Some(4)).unwrap();
    let before = snapshot(&run.join("ckpt-000004"));
    let e = train_tiny(
        dir.path(),
        &["train.lr=1e30", "train.min_lr=1e30", "train.grad_clip=0.0"],
        true,
        None,
    )
    .unwrap_err();
    assert!(e.contains("not finite") && e.contains("ckpt-000004"), "{e}");
    assert_eq!(snapshot(&run.join("ckpt-000004")), before);
    assert_eq!(ckpt_names(&run), ["ckpt", "ckpt-000004"]);
    // What it names loads (the loader refuses non-finite weights).
    model::io::load(
        &run.join("ckpt"),
        &model::RunSettings::default(),
        tch::Device::Cpu,
    )
    .unwrap();
}

#[test]
fn thread_and_batch_counts_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    for (set, key) in [
        ("train.threads=100000", "train.threads"),
        ("train.batch_size=1000000000", "train.batch_size"),
    ] {
        let r =
            experiments::config::TrainConfig::parse(BASE, "base.toml", &sets(dir.path(), &[set]));
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains(key) && e.contains("up to"), "{set}: {e}");
    }
}

#[test]
fn a_corrupt_newest_checkpoint_gives_way_to_the_previous_one() {
    let Some(_) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    train_tiny(dir.path(), &[], false, Some(4)).unwrap();
    // A newer checkpoint (higher seq) whose weights were damaged on disk after the save.
    let bad = run.join("ckpt-000004.1");
    copy_dir(&run.join("ckpt-000004"), &bad);
    let mf = bad.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mf).unwrap()).unwrap();
    m["seq"] = 99.into();
    m["name"] = "ckpt-000004.1".into();
    std::fs::write(&mf, m.to_string()).unwrap();
    let w = bad.join("model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x55;
    std::fs::write(&w, bytes).unwrap();
    let (found, rejected) = experiments::manifest::candidates(&run);
    assert_eq!(found[0].dir, run.join("ckpt-000004"));
    assert!(rejected[0].contains("ckpt-000004.1") && rejected[0].contains("corrupt"));
    train_tiny(dir.path(), &[], true, None).unwrap();
    assert_eq!(ckpt_names(&run), ["ckpt", "ckpt-000008"]);
}
