//! `qkv_bias` (Qwen: biases on the q, k, v projections only): with zero biases it is the
//! model without them; the biases are real parameters (counted, saved, loaded, and kept
//! dense beside a quantized weight); and old configs without the key still load.
mod common;
use common::{max_abs_diff, random_ids};
use model::accounting::param_count;
use model::quant::{self, Scheme};
use model::{io, Gpt, ModelConfig, RunSettings};
use tch::{nn, Device, Tensor};

fn qwen_tiny() -> ModelConfig {
    ModelConfig {
        qkv_bias: true,
        ..ModelConfig::llama_tiny()
    }
}

fn build(cfg: &ModelConfig, seed: i64) -> (nn::VarStore, Gpt) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Gpt::new(&vs.root(), cfg, &RunSettings::default()).unwrap();
    (vs, m)
}

/// Copy every variable of `from` into `to` by name (`to` may have more: they are left).
fn copy_common(from: &nn::VarStore, to: &nn::VarStore) {
    let src = from.variables();
    tch::no_grad(|| {
        for (k, mut v) in to.variables() {
            if let Some(t) = src.get(&k) {
                v.copy_(t);
            }
        }
    });
}

#[test]
fn zero_qkv_biases_equal_no_qkv_bias() {
    let (vs0, plain) = build(&ModelConfig::llama_tiny(), 1);
    let (vs1, biased) = build(&qwen_tiny(), 2);
    copy_common(&vs0, &vs1);
    let names: Vec<String> = vs1
        .variables()
        .into_keys()
        .filter(|k| k.ends_with(".bias"))
        .collect();
    // Only the fused q/k/v projection of each layer has a bias; c_proj and the MLP do not.
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|k| k.ends_with("attn.c_attn.bias")));
    let x = random_ids(256, 2, 9, 3);
    let a = plain.forward(&x, 0, None).unwrap();
    let b = biased.forward(&x, 0, None).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
    // A non-zero bias changes the output, so the test above could fail.
    tch::no_grad(|| {
        let _ = biased.h[0]
            .attn
            .c_attn
            .bias
            .as_ref()
            .unwrap()
            .shallow_clone()
            .fill_(0.5);
    });
    let c = biased.forward(&x, 0, None).unwrap();
    assert!(max_abs_diff(&a, &c) > 1e-3);
}

#[test]
fn qkv_bias_is_counted_and_independent_of_bias() {
    let cfg = qwen_tiny();
    let (vs, _m) = build(&cfg, 4);
    let built: usize = vs.trainable_variables().iter().map(|t| t.numel()).sum();
    assert_eq!(built, param_count(&cfg).total);
    let qkv = (cfg.n_head + 2 * cfg.n_kv_heads) * cfg.head_dim();
    assert_eq!(
        param_count(&cfg).total - param_count(&ModelConfig::llama_tiny()).total,
        cfg.n_layer * qkv
    );
    // With `bias` already on, the flag adds nothing.
    let g = ModelConfig::gpt2_tiny();
    let gq = ModelConfig {
        qkv_bias: true,
        ..g.clone()
    };
    assert_eq!(param_count(&g), param_count(&gq));
}

#[test]
fn config_key_defaults_to_false_and_is_written_only_when_set() {
    let plain = serde_json::to_value(ModelConfig::llama_tiny()).unwrap();
    assert!(plain.get("qkv_bias").is_none(), "{plain}");
    let back = ModelConfig::from_json_value(plain).unwrap();
    assert!(!back.qkv_bias);
    let v = serde_json::to_value(qwen_tiny()).unwrap();
    assert_eq!(v["qkv_bias"], true);
    assert_eq!(ModelConfig::from_json_value(v).unwrap(), qwen_tiny());
    let mut bad = serde_json::to_value(qwen_tiny()).unwrap();
    bad["qkv_bias"] = serde_json::json!("yes");
    let e = ModelConfig::from_json_value(bad).unwrap_err().to_string();
    assert!(e.contains("qkv_bias"), "{e}");
}

#[test]
fn native_save_load_and_quantized_save_load_keep_the_biases() {
    let cfg = qwen_tiny();
    let (vs, m) = build(&cfg, 5);
    tch::no_grad(|| {
        for b in &m.h {
            let bias = b.attn.c_attn.bias.as_ref().unwrap();
            bias.shallow_clone()
                .copy_(&(Tensor::randn_like(bias) * 0.3));
        }
    });
    let x = random_ids(256, 1, 7, 6);
    let before = m.forward(&x, 0, None).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("native");
    io::save_native(&vs, &cfg, &dir).unwrap();
    let loaded = io::load(&dir, &RunSettings::default(), Device::Cpu).unwrap();
    assert_eq!(loaded.model.cfg, cfg);
    assert!(loaded.model.forward(&x, 0, None).unwrap().equal(&before));

    let mut q = loaded;
    quant::quantize_model(&mut q.model, Scheme::Int8, true).unwrap();
    let qlogits = q.model.forward(&x, 0, None).unwrap();
    assert!(max_abs_diff(&qlogits, &before) < 0.05);
    let qdir = tmp.path().join("int8");
    quant::save(&q.vs, &mut q.model, &qdir).unwrap();
    let (back, _) = quant::load(&qdir, &RunSettings::default(), Device::Cpu).unwrap();
    for (a, b) in m.h.iter().zip(&back.model.h) {
        let (ba, bb) = (a.attn.c_attn.bias.as_ref(), b.attn.c_attn.bias.as_ref());
        assert!(ba.unwrap().equal(bb.unwrap()), "the q/k/v bias was lost");
    }
    assert!(back.model.forward(&x, 0, None).unwrap().equal(&qlogits));
}
