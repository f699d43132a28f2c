//! Parity with the reference implementations on real checkpoints in `$LADDER_SHARED/models`:
//! HF transformers' GPT-2 (`gpt2-tiny`) and llama2.c / HF Llama (`stories260K`).
use model::{io, AttnKernel, RunSettings};
use runtime::resources::shared_resource;
use serde_json::Value;
use tch::{Device, Tensor};

fn reference(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap()
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn gpt2_tiny_logits_and_greedy_match_transformers() {
    let Some(dir) = shared_resource("models/gpt2-tiny").unwrap() else {
        return;
    };
    let r = reference(&dir);
    for attention in [AttnKernel::Naive, AttnKernel::Sdpa] {
        let (layout, cfg) = io::read_config(&dir).unwrap();
        let run = RunSettings::default().with_kernel(attention);
        let m = io::load_as(&dir, layout, &cfg, &run, Device::Cpu)
            .unwrap()
            .model;
        let input = ids(&r["input_ids"]);
        let logits = m
            .forward(&Tensor::from_slice(&input).unsqueeze(0), 0, None)
            .unwrap()
            .squeeze_dim(0); // (T, V)
        let t = input.len() as i64;
        let last: Vec<f64> =
            Vec::try_from(logits.get(t - 1).narrow(0, 0, 8).to_kind(tch::Kind::Double)).unwrap();
        for (a, b) in last.iter().zip(floats(&r["logits_last_position_first_8"])) {
            assert!(
                (a - b).abs() < 1e-4,
                "{attention:?}: logit {a} vs reference {b}"
            );
        }
        let sums: Vec<f64> =
            Vec::try_from(logits.sum_dim_intlist(-1, false, tch::Kind::Double)).unwrap();
        for (a, b) in sums.iter().zip(floats(&r["logits_sum_per_position"])) {
            assert!(
                (a - b).abs() < 1e-2 * b.abs().max(1.0),
                "{attention:?}: logit sum {a} vs {b}"
            );
        }
        let argmax: Vec<i64> = Vec::try_from(logits.argmax(-1, false)).unwrap();
        assert_eq!(argmax, ids(&r["argmax_per_position"]));
        // The greedy ids (`greedy_20`), with and without the cache: `infer`'s generation
        // loop, in crates/infer/tests/generate.rs.
    }
}

#[test]
fn stories260k_greedy_from_bos_matches_llama2c() {
    let Some(dir) = shared_resource("models/stories260K").unwrap() else {
        return;
    };
    let r = reference(&dir);
    let loaded = io::load(&dir, &RunSettings::default(), Device::Cpu).unwrap();
    let m = loaded.model;
    assert_eq!((m.cfg.n_head, m.cfg.n_kv_heads), (8, 4));
    let prompt = ids(&r["prompt_token_ids"]);
    let logits = m
        .forward_last(&Tensor::from_slice(&prompt).unsqueeze(0), 0, None)
        .unwrap();
    let first: Vec<f64> =
        Vec::try_from(logits.get(0).narrow(0, 0, 8).to_kind(tch::Kind::Double)).unwrap();
    for (a, b) in first.iter().zip(floats(&r["logits_last_position_first_8"])) {
        assert!((a - b).abs() < 1e-4, "logit {a} vs reference {b}");
    }
    // The greedy ids (`greedy_60`): `infer`'s generation loop, in crates/infer/tests/generate.rs.
}
