//! A few training steps of a mixture of experts (issue #14): the loss trained on is the
//! cross-entropy plus `router_aux_loss_coef` × the load-balancing loss, `log.jsonl` has a
//! `moe` event per logged step with every layer's per-expert token counts, and a resumed
//! run gives the identical curve (the `moe` rows past the checkpoint are dropped).
mod common;
use common::{corpus, tiny};
use experiments::train::train;
use serde_json::Value;
use std::path::Path;

const MOE: &[&str] = &[
    "model.pos_emb=\"rope\"",
    "model.norm=\"rmsnorm\"",
    "model.mlp=\"swiglu\"",
    "model.n_experts=4",
    "model.experts_per_token=2",
    "model.router_aux_loss_coef=0.05",
    "train.grad_accum=2",
];

fn events(dir: &Path, kind: &str) -> Vec<Value> {
    std::fs::read_to_string(dir.join("run/log.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"] == kind)
        .collect()
}

#[test]
fn moe_training_logs_expert_counts_and_adds_the_aux_loss() {
    if corpus().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = {
        let _s = common::serial();
        train(&tiny(tmp.path(), MOE), &common::opts(false, None)).unwrap()
    };
    assert!(out.active_params < out.params, "{out:?}");
    assert!(out.final_val_loss.is_finite());
    let start = &events(tmp.path(), "start")[0];
    assert_eq!(start["active_params"], out.active_params);
    assert_eq!(start["model"]["n_experts"], 4);

    let (steps, moe) = (events(tmp.path(), "step"), events(tmp.path(), "moe"));
    assert_eq!(moe.len(), 8, "one moe event per logged step");
    for (s, m) in steps.iter().zip(&moe) {
        let (s, m) = (&s["row"], &m["row"]);
        assert_eq!(s["step"], m["step"]);
        let (ce, aux) = (m["ce"].as_f64().unwrap(), m["aux"].as_f64().unwrap());
        // Balanced top-2 routing gives 2; all tokens on two experts at most 4.
        assert!(aux > 1.0 && aux < 4.0 + 1e-6, "{m}");
        let loss = s["train_loss"].as_f64().unwrap();
        assert!(
            (loss - (ce + 0.05 * aux)).abs() < 1e-4,
            "{loss} vs {ce} + 0.05·{aux}"
        );
        let layers = m["expert_tokens"].as_array().unwrap();
        assert_eq!(layers.len(), 2, "one row per layer");
        for l in layers {
            let counts: Vec<i64> = serde_json::from_value(l.clone()).unwrap();
            assert_eq!(counts.len(), 4);
            // batch 4 × block 32 tokens × 2 experts each × 2 micro-batches.
            assert_eq!(counts.iter().sum::<i64>(), 4 * 32 * 2 * 2);
        }
    }
}

#[test]
fn a_resumed_moe_run_gives_the_identical_curve() {
    if corpus().is_none() {
        return;
    }
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    common::train_tiny(a.path(), MOE, false, None).unwrap();
    common::train_tiny(b.path(), MOE, false, Some(4)).unwrap();
    common::train_tiny(b.path(), MOE, true, None).unwrap();
    let rows = |d: &Path| -> Vec<Value> {
        events(d, "moe")
            .into_iter()
            .chain(events(d, "eval"))
            .map(|v| v["row"].clone())
            .collect()
    };
    assert_eq!(rows(a.path()), rows(b.path()));
}
