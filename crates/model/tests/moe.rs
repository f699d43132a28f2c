//! Mixture of experts (issue #14): with one expert and top-1 it is the dense SwiGLU MLP;
//! with k = E and equal router weights every expert gets 1/E of each token; the
//! load-balancing loss matches a hand computation; cached decoding equals the full forward;
//! the parameter counts (total and active) match the built model; bad configs name the key;
//! the dense dispatch (every expert on every token) equals the sparse one, gradients too.
mod common;
use common::{cached_decode_logits, max_abs_diff, random_ids};
use model::accounting::param_count;
use model::layers::Mlp;
use model::moe::{load_balancing_loss, route, tokens_per_expert};
use model::{Gpt, ModelConfig, RunSettings};
use tch::{nn, Device, Kind, Tensor};

fn moe_cfg(n: usize, k: usize) -> ModelConfig {
    ModelConfig {
        n_experts: Some(n),
        experts_per_token: Some(k),
        ..ModelConfig::llama_tiny()
    }
}

fn build(cfg: &ModelConfig, seed: i64) -> (nn::VarStore, Gpt) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Gpt::new(&vs.root(), cfg, &RunSettings::default()).unwrap();
    (vs, m)
}

/// Copy every variable of `from` into `to` under the name `rename` gives it.
fn copy_vars(from: &nn::VarStore, to: &nn::VarStore, rename: impl Fn(&str) -> String) {
    let dst = to.variables();
    tch::no_grad(|| {
        for (k, v) in from.variables() {
            let name = rename(&k);
            if let Some(mut d) = dst.get(&name).map(Tensor::shallow_clone) {
                d.copy_(&v);
            }
        }
    });
}

#[test]
fn one_expert_top_one_is_the_dense_swiglu() {
    let dense_cfg = ModelConfig::llama_tiny();
    let (dense_vs, dense) = build(&dense_cfg, 1);
    let (moe_vs, moe) = build(&moe_cfg(1, 1), 2);
    copy_vars(&dense_vs, &moe_vs, |k| {
        k.replace("mlp.gate_proj", "block_sparse_moe.experts.0.w1")
            .replace("mlp.up_proj", "block_sparse_moe.experts.0.w3")
            .replace("mlp.down_proj", "block_sparse_moe.experts.0.w2")
    });
    let x = random_ids(dense_cfg.vocab_size, 2, 16, 3);
    let (a, b) = tch::no_grad(|| {
        (
            dense.forward(&x, 0, None).unwrap(),
            moe.forward(&x, 0, None).unwrap(),
        )
    });
    // Softmax over one selected logit is exactly 1: the same model.
    assert!(max_abs_diff(&a, &b) < 1e-5, "{}", max_abs_diff(&a, &b));
    let y = random_ids(dense_cfg.vocab_size, 2, 16, 4);
    let l = moe.train_loss(&x, &y, false).unwrap();
    let ce = dense.loss(&x, &y, false).unwrap();
    assert!(max_abs_diff(&l.ce, &ce) < 1e-5);
    // One expert takes every token: f = P = 1, loss = E · 1 · 1 = 1.
    assert!((l.aux.double_value(&[]) - 1.0).abs() < 1e-6);
    assert_eq!(l.expert_tokens, vec![vec![32]; dense_cfg.n_layer]);
}

#[test]
fn all_experts_with_equal_router_weights_average_them() {
    let cfg = moe_cfg(4, 4);
    let (_vs, m) = build(&cfg, 5);
    let Mlp::Moe(moe) = &m.h[0].mlp else {
        panic!("not a mixture of experts")
    };
    let _ = tch::no_grad(|| moe.gate.weight.shallow_clone().fill_(0.0));
    tch::manual_seed(6);
    let x = Tensor::randn([2, 5, cfg.n_embd as i64], (Kind::Float, Device::Cpu));
    let (y, logits) = tch::no_grad(|| moe.forward_routed(&x));
    assert_eq!(logits.size(), [10, 4]);
    let mean = tch::no_grad(|| {
        let outs: Vec<Tensor> = moe.experts.iter().map(|e| x.apply(e)).collect();
        Tensor::stack(&outs, 0).mean_dim(0, false, Kind::Float)
    });
    assert!(
        max_abs_diff(&y, &mean) < 1e-5,
        "{}",
        max_abs_diff(&y, &mean)
    );
    let (w, _) = route(&logits, 4);
    assert!(max_abs_diff(&w, &Tensor::full([10, 4], 0.25, (Kind::Float, Device::Cpu))) < 1e-7);
    // Uniform P_e = 1/E and every expert in each token's top-4 (Σ_slots f_e = 1 for each
    // e): the loss is E · Σ_e 1 · 1/E = E = k.
    let aux = load_balancing_loss(&[logits.shallow_clone()], 4, 4).double_value(&[]);
    assert!((aux - 4.0).abs() < 1e-6, "{aux}");
    assert_eq!(tokens_per_expert(&logits, 4, 4), vec![10; 4]);
}

/// Output and every expert's gradient under one dispatch.
fn dispatch_run(moe: &model::moe::Moe, x: &Tensor, dense: bool) -> (Tensor, Vec<Tensor>) {
    let params: Vec<Tensor> = moe
        .experts
        .iter()
        .flat_map(|e| [&e.gate_proj.weight, &e.up_proj.weight, &e.down_proj.weight])
        .map(Tensor::shallow_clone)
        .collect();
    for p in &params {
        if p.grad().defined() {
            let _ = p.grad().zero_();
        }
    }
    let logits = x.apply(&moe.gate);
    let (w, sel) = route(&logits, moe.k);
    let y = if dense {
        moe.dispatch_dense(x, &w, &sel)
    } else {
        moe.dispatch_sparse(x, &w, &sel)
    };
    (&y * Tensor::arange(y.size()[1], (Kind::Float, Device::Cpu)).sin())
        .sum(Kind::Float)
        .backward();
    let grads = params.iter().map(|p| p.grad().copy()).collect();
    (y.detach(), grads)
}

#[test]
fn dense_dispatch_equals_sparse_dispatch_with_gradients() {
    let cfg = moe_cfg(4, 2);
    let (_vs, m) = build(&cfg, 8);
    let Mlp::Moe(moe) = &m.h[0].mlp else {
        panic!("not a mixture of experts")
    };
    assert!(moe.dense_dispatch(4096) && !moe.dense_dispatch(1));
    tch::manual_seed(9);
    let x = Tensor::randn([96, cfg.n_embd as i64], (Kind::Float, Device::Cpu));
    let (yd, gd) = dispatch_run(moe, &x, true);
    let (ys, gs) = dispatch_run(moe, &x, false);
    assert!(max_abs_diff(&yd, &ys) < 1e-5, "{}", max_abs_diff(&yd, &ys));
    for (a, b) in gd.iter().zip(&gs) {
        assert!(a.abs().sum(Kind::Float).double_value(&[]) > 0.0);
        assert!(max_abs_diff(a, b) < 1e-5, "{}", max_abs_diff(a, b));
    }
}

#[test]
fn load_balancing_loss_matches_a_hand_computation() {
    // 4 tokens, 3 experts, top-1; logits chosen so the softmax is easy to write down.
    let l = Tensor::from_slice2(&[
        [2.0f32, 0.0, 0.0],
        [0.0, 2.0, 0.0],
        [2.0, 0.0, 0.0],
        [0.0, 0.0, 2.0],
    ]);
    let (hi, lo) = {
        let z = 2f64.exp() + 2.0;
        (2f64.exp() / z, 1.0 / z)
    };
    // Routed: expert 0 twice, 1 once, 2 once: f = [1/2, 1/4, 1/4].
    // P_e = mean over tokens: P_0 = (2hi + 2lo)/4, P_1 = (hi + 3lo)/4, P_2 = (hi + 3lo)/4.
    let f = [0.5, 0.25, 0.25];
    let p = [
        (2.0 * hi + 2.0 * lo) / 4.0,
        (hi + 3.0 * lo) / 4.0,
        (hi + 3.0 * lo) / 4.0,
    ];
    let want = 3.0 * (0..3).map(|e| f[e] * p[e]).sum::<f64>();
    let got = load_balancing_loss(&[l.shallow_clone()], 3, 1).double_value(&[]);
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    // Two layers are pooled, not averaged per layer: the same logits twice, the same loss.
    let two = load_balancing_loss(&[l.shallow_clone(), l.shallow_clone()], 3, 1);
    assert!((two.double_value(&[]) - want).abs() < 1e-6);
    assert_eq!(tokens_per_expert(&l, 3, 1), vec![2, 1, 1]);
    // Top-2: the second slot of each token is the best of the two equal rest (index order
    // is topk's; count both slots).
    let counts = tokens_per_expert(&l, 3, 2);
    assert_eq!(counts.iter().sum::<i64>(), 8);
}

#[test]
fn train_loss_adds_the_weighted_aux_term_and_gradients_reach_every_expert() {
    let cfg = ModelConfig {
        router_aux_loss_coef: Some(0.5),
        ..moe_cfg(4, 2)
    };
    let (vs, m) = build(&cfg, 7);
    let x = random_ids(cfg.vocab_size, 2, 16, 8);
    let y = random_ids(cfg.vocab_size, 2, 16, 9);
    let l = m.train_loss(&x, &y, true).unwrap();
    let want = l.ce.double_value(&[]) + 0.5 * l.aux.double_value(&[]);
    assert!((l.loss.double_value(&[]) - want).abs() < 1e-6);
    assert!(l.aux.double_value(&[]) > 0.0);
    assert_eq!(l.expert_tokens.len(), cfg.n_layer);
    for layer in &l.expert_tokens {
        assert_eq!(layer.iter().sum::<i64>(), 2 * 16 * 2);
    }
    l.loss.backward();
    for (k, v) in vs.variables() {
        assert!(v.grad().defined(), "{k} has no gradient");
    }
    let vars = vs.variables();
    let gate = &vars["h.0.block_sparse_moe.gate.weight"];
    assert!(gate.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0);
    // A dense model's train loss is its cross-entropy.
    let (_vs, d) = build(&ModelConfig::llama_tiny(), 7);
    let l = d.train_loss(&x, &y, false).unwrap();
    assert!(l.loss.equal(&l.ce) && l.expert_tokens.is_empty());
    assert_eq!(l.aux.double_value(&[]), 0.0);
}

#[test]
fn cached_decoding_equals_the_full_forward() {
    for cfg in [
        moe_cfg(4, 2),
        ModelConfig {
            n_shared_experts: 1,
            ..moe_cfg(3, 1)
        },
    ] {
        let (_vs, m) = build(&cfg, 11);
        let prompt = [3i64, 7, 1, 9, 4];
        let _g = tch::no_grad_guard();
        // One token at a time over the cache (T = 1 routing) equals the full forward.
        let step = cached_decode_logits(&m, &prompt);
        let whole = m
            .forward(&Tensor::from_slice(&prompt).unsqueeze(0), 0, None)
            .unwrap();
        let d = max_abs_diff(&step, &whole);
        assert!(d < 1e-4, "{d}");
        // And the logits of a cached step equal those of the full forward.
        let x = random_ids(cfg.vocab_size, 1, 12, 12);
        let full = m.forward(&x, 0, None).unwrap();
        let mut cache = model::KvCache::new(&m, 1, 12, Device::Cpu);
        let a = m.forward(&x.narrow(1, 0, 8), 0, Some(&mut cache)).unwrap();
        let b = m.forward(&x.narrow(1, 8, 4), 8, Some(&mut cache)).unwrap();
        let d = max_abs_diff(&Tensor::cat(&[a, b], 1), &full);
        assert!(d < 1e-4, "{d}");
    }
}

#[test]
fn param_counts_total_and_active_match_the_built_model() {
    for cfg in [
        moe_cfg(4, 2),
        moe_cfg(1, 1),
        ModelConfig {
            n_shared_experts: 2,
            ..moe_cfg(3, 2)
        },
    ] {
        let (vs, _m) = build(&cfg, 1);
        let built: i64 = vs.variables().values().map(Tensor::numel).sum::<usize>() as i64;
        let pc = param_count(&cfg);
        assert_eq!(pc.total as i64, built, "{cfg:?}");
        let (d, f) = (cfg.n_embd, cfg.intermediate_size);
        let (e, k) = (cfg.n_experts.unwrap(), cfg.experts_per_token.unwrap());
        assert_eq!(pc.total - pc.active, cfg.n_layer * (e - k) * 3 * d * f);
    }
    let dense = param_count(&ModelConfig::llama_tiny());
    assert_eq!(dense.active, dense.total);
    // Matching experts: k experts of half the hidden size hold the dense MLP's parameters.
    let base = ModelConfig::llama_tiny();
    let matched = ModelConfig {
        intermediate_size: model::config::moe_matched_hidden(base.intermediate_size, 2),
        ..moe_cfg(4, 2)
    };
    let router = base.n_layer * base.n_embd * 4;
    let (a, b) = (param_count(&matched), param_count(&base));
    // k experts of hidden ⌈h/k⌉ rounded up to a multiple of 4: at most 2·3·d·4 more a layer.
    assert!(a.active.abs_diff(b.total + router) <= base.n_layer * 2 * 3 * base.n_embd * 4);
    assert!(a.total > b.total);
}

#[test]
fn bad_moe_configs_name_the_key() {
    let base = moe_cfg(4, 2);
    let cases: Vec<(ModelConfig, &str)> = vec![
        (
            ModelConfig {
                n_experts: Some(0),
                ..base.clone()
            },
            "n_experts must be at least 1",
        ),
        (
            ModelConfig {
                experts_per_token: Some(5),
                ..base.clone()
            },
            "experts_per_token (5) must be at most n_experts (4)",
        ),
        (
            ModelConfig {
                experts_per_token: Some(0),
                ..base.clone()
            },
            "experts_per_token must be at least 1",
        ),
        (
            ModelConfig {
                experts_per_token: None,
                ..base.clone()
            },
            "experts_per_token must be set",
        ),
        (
            ModelConfig {
                router_aux_loss_coef: Some(-1.0),
                ..base.clone()
            },
            "router_aux_loss_coef",
        ),
        (
            ModelConfig {
                n_shared_experts: 1,
                ..ModelConfig::llama_tiny()
            },
            "n_shared_experts is set but n_experts is not",
        ),
        (
            ModelConfig {
                experts_per_token: Some(2),
                ..ModelConfig::llama_tiny()
            },
            "experts_per_token is set but n_experts is not",
        ),
        (
            ModelConfig {
                router_aux_loss_coef: Some(0.1),
                ..ModelConfig::llama_tiny()
            },
            "router_aux_loss_coef is set but n_experts is not",
        ),
        (
            ModelConfig {
                n_experts: Some(2),
                experts_per_token: Some(1),
                ..ModelConfig::gpt2_tiny()
            },
            "n_experts needs",
        ),
    ];
    for (cfg, want) in cases {
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{e} (wanted {want})");
        let vs = nn::VarStore::new(Device::Cpu);
        assert!(Gpt::new(&vs.root(), &cfg, &RunSettings::default()).is_err());
    }
    // JSON: old configs (no MoE keys) load and write no MoE keys; MoE keys round-trip;
    // unknown keys are still refused.
    let plain = serde_json::to_value(ModelConfig::llama_tiny()).unwrap();
    assert!(plain.get("n_experts").is_none() && plain.get("n_shared_experts").is_none());
    let v = serde_json::to_value(&base).unwrap();
    assert_eq!(v["n_experts"], 4);
    assert_eq!(ModelConfig::from_json(&v.to_string()).unwrap(), base);
    let mut bad = v.clone();
    bad["n_expert"] = serde_json::json!(4);
    let e = ModelConfig::from_json(&bad.to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("n_expert"), "{e}");
    let mut zero = v.clone();
    zero["n_experts"] = serde_json::json!(0);
    let e = ModelConfig::from_json(&zero.to_string())
        .unwrap_err()
        .to_string();
    assert!(e.contains("n_experts"), "{e}");
    // A hostile expert count is refused before any shape is listed or tensor allocated.
    let tmp = tempfile::tempdir().unwrap();
    let mut huge = v;
    huge["n_experts"] = serde_json::json!(1_000_000_000u64);
    std::fs::write(tmp.path().join("config.json"), huge.to_string()).unwrap();
    let e = format!("{:#}", model::read_config(tmp.path()).unwrap_err());
    assert!(
        e.contains("'n_experts'") && e.contains("out of range"),
        "{e}"
    );
}

#[test]
fn native_save_and_load_round_trips_a_moe_model() {
    let cfg = ModelConfig {
        n_shared_experts: 1,
        ..moe_cfg(4, 2)
    };
    let (vs, m) = build(&cfg, 13);
    let tmp = tempfile::tempdir().unwrap();
    model::save_native(&vs, &cfg, tmp.path()).unwrap();
    let back = model::load(tmp.path(), &RunSettings::default(), Device::Cpu).unwrap();
    assert_eq!(back.model.cfg, cfg);
    let x = random_ids(cfg.vocab_size, 1, 10, 14);
    let (a, b) = tch::no_grad(|| {
        (
            m.forward(&x, 0, None).unwrap(),
            back.model.forward(&x, 0, None).unwrap(),
        )
    });
    assert!(a.equal(&b));
    // A shared expert has no Mixtral layout.
    let e = model::save_hf(&vs, &cfg, &tmp.path().join("hf")).unwrap_err();
    assert!(format!("{e:#}").contains("no Hugging Face layout"), "{e:#}");
}

#[test]
fn int8_quantizes_every_expert_and_keeps_the_router_dense() {
    use model::quant::{self, Scheme};
    let cfg = ModelConfig {
        n_shared_experts: 1,
        ..moe_cfg(4, 2)
    };
    let (vs, mut m) = build(&cfg, 15);
    let x = random_ids(cfg.vocab_size, 1, 10, 16);
    let dense = tch::no_grad(|| m.forward(&x, 0, None).unwrap());
    quant::quantize_model(&mut m, Scheme::Int8, true).unwrap();
    let names: Vec<String> = quant::linears(&m).into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"h.1.block_sparse_moe.experts.3.w2".to_string()));
    assert!(names.contains(&"h.0.block_sparse_moe.shared_experts.w1".to_string()));
    assert!(!names.iter().any(|n| n.ends_with(".gate")), "{names:?}");
    let q = tch::no_grad(|| m.forward(&x, 0, None).unwrap());
    assert!(
        max_abs_diff(&q, &dense) < 0.05,
        "{}",
        max_abs_diff(&q, &dense)
    );
    let tmp = tempfile::tempdir().unwrap();
    quant::save(&vs, &mut m, tmp.path()).unwrap();
    let (back, _) = quant::load(tmp.path(), &RunSettings::default(), Device::Cpu).unwrap();
    let again = tch::no_grad(|| back.model.forward(&x, 0, None).unwrap());
    assert!(again.equal(&q), "logits differ after quantized save → load");
    assert_eq!(
        quant::weight_bytes(&back.vs, &back.model).total() as usize,
        quant::planned_weight_bytes(&cfg, Scheme::Int8, 4)
    );
}
