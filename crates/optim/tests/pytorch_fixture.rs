//! Bit-for-bit against PyTorch: `fixtures/adamw_pytorch.json` holds what
//! `torch.optim.AdamW(foreach=False)` and `clip_grad_norm_(foreach=False)` computed
//! (regenerate with `fixtures/adamw_pytorch.py`).
use optim::{clip_grad_norm, AdamW, AdamWConfig, ParamGroup};
use serde_json::Value;
use tch::{Kind, Tensor};

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of f32 bit patterns")
        .iter()
        .map(|x| f32::from_bits(x.as_i64().unwrap() as i32 as u32))
        .collect()
}

fn tensor(v: &Value, shape: &[i64]) -> Tensor {
    Tensor::from_slice(&floats(v)).reshape(shape)
}

#[test]
fn adamw_and_clipping_match_pytorch_bit_for_bit() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/adamw_pytorch.json"
    );
    let fx: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let shape = |n: &str| -> Vec<i64> {
        let s = fx["shapes"][n].as_array().unwrap();
        s.iter().map(|d| d.as_i64().unwrap()).collect()
    };
    let names = ["w", "b"];
    let params: Vec<Tensor> = names
        .iter()
        .map(|n| tensor(&fx["init"][n], &shape(n)).set_requires_grad(true))
        .collect();
    let f = |k: &str| fx[k].as_f64().unwrap();
    let group = |i: usize, wd: f64| ParamGroup {
        params: vec![(names[i].to_string(), params[i].shallow_clone())],
        weight_decay: wd,
    };
    let cfg = AdamWConfig {
        beta1: f("beta1"),
        beta2: f("beta2"),
        eps: f("eps"),
    };
    let mut opt = AdamW::new(vec![group(0, f("weight_decay")), group(1, 0.0)], cfg);
    for (k, step) in fx["steps"].as_array().unwrap().iter().enumerate() {
        for (n, p) in names.iter().zip(&params) {
            if let Some(g) = step["grads"].get(n) {
                // d/dp (p · g).sum() = g exactly.
                (p * tensor(g, &shape(n))).sum(Kind::Float).backward();
            }
        }
        let norm = clip_grad_norm(&params, f("max_norm"));
        let want = floats(&Value::Array(vec![step["norm"].clone()]))[0];
        assert_eq!(
            (norm as f32).to_bits(),
            want.to_bits(),
            "step {k}: norm {norm} vs {want}"
        );
        opt.step(step["lr"].as_f64().unwrap());
        opt.zero_grad();
    }
    for (n, p) in names.iter().zip(&params) {
        let want = tensor(&fx["final"][n], &shape(n));
        let got = p.detach();
        let mismatches = got.ne_tensor(&want).sum(Kind::Int64).int64_value(&[]);
        assert!(
            got.equal(&want),
            "'{n}': {mismatches} of {} values differ from PyTorch {} (largest difference {}); \
             the fixture was made on x86-64 — on other hardware, kernels may round differently",
            want.numel(),
            fx["torch"],
            (&got - &want).abs().max().double_value(&[])
        );
    }
}
