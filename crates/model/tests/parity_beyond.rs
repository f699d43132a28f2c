//! Parity with Hugging Face transformers beyond Llama: `qwen2-tiny` (q/k/v biases, untied
//! head), `mistral-tiny` (sliding window of 16) and `mixtral-tiny` (4 experts, top-2) in
//! `$LADDER_SHARED/models`, written by transformers with their `reference.json` (logits of
//! one prompt, 40 greedy ids: Mistral's run past its window, so the rolling KV cache is
//! exercised). Both kernels, with and
//! without the KV cache, and save → reload gives identical logits.
use model::hf::HfArch;
use model::{io, AttnKernel, RunSettings};
use runtime::resources::shared_resource;
use serde_json::Value;
use tch::{Device, Kind, Tensor};

fn reference(dir: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap()
}

fn list<T>(v: &Value, f: impl Fn(&Value) -> Option<T>) -> Vec<T> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| f(x).unwrap())
        .collect()
}

/// Every check of one fixture; returns nothing, panics with the case on a mismatch.
fn check_fixture(name: &str, arch: HfArch) {
    let Some(dir) = shared_resource(&format!("models/{name}")).unwrap() else {
        return;
    };
    let r = reference(&dir);
    let input = list(&r["input_ids"], Value::as_i64);
    let x = Tensor::from_slice(&input).unsqueeze(0);
    let tmp = tempfile::tempdir().unwrap();
    for attention in [AttnKernel::Naive, AttnKernel::Sdpa] {
        let run = RunSettings::default().with_kernel(attention);
        let loaded = io::load(&dir, &run, Device::Cpu).unwrap();
        assert_eq!(loaded.layout, io::Layout::Hf(arch));
        let m = &loaded.model;
        let logits = m.forward(&x, 0, None).unwrap().squeeze_dim(0); // (T, V)
        let t = input.len() as i64;
        let last: Vec<f64> =
            Vec::try_from(logits.get(t - 1).narrow(0, 0, 8).to_kind(Kind::Double)).unwrap();
        for (a, b) in last
            .iter()
            .zip(list(&r["logits_last_position_first_8"], Value::as_f64))
        {
            assert!(
                (a - b).abs() < 1e-4,
                "{name} {attention:?}: logit {a} vs {b}"
            );
        }
        let sums: Vec<f64> =
            Vec::try_from(logits.sum_dim_intlist(-1, false, Kind::Double)).unwrap();
        for (a, b) in sums
            .iter()
            .zip(list(&r["logits_sum_per_position"], Value::as_f64))
        {
            assert!(
                (a - b).abs() < 1e-3 * b.abs().max(1.0),
                "{name}: sum {a} vs {b}"
            );
        }
        let argmax: Vec<i64> = Vec::try_from(logits.argmax(-1, false)).unwrap();
        assert_eq!(argmax, list(&r["argmax_per_position"], Value::as_i64));
        // The greedy ids (`greedy_40`), both kernels, with and without the (rolling) cache:
        // `infer`'s generation loop, in crates/infer/tests/generate.rs.

        // Save in the Hub layout, reload: same layout, config and logits.
        let out = tmp.path().join(format!("{attention:?}"));
        io::save_hf(&loaded.vs, &m.cfg, &out).unwrap();
        let back = io::load(&out, &run, Device::Cpu).unwrap();
        assert_eq!(back.layout, io::Layout::Hf(arch));
        assert_eq!(back.model.cfg, m.cfg);
        let again = back.model.forward(&x, 0, None).unwrap().squeeze_dim(0);
        assert!(
            again.equal(&logits),
            "{name}: logits differ after save → reload"
        );
    }
}

#[test]
fn qwen2_tiny_matches_transformers() {
    check_fixture("qwen2-tiny", HfArch::Qwen2);
}

#[test]
fn mistral_tiny_matches_transformers() {
    check_fixture("mistral-tiny", HfArch::Mistral);
    let Some(dir) = shared_resource("models/mistral-tiny").unwrap() else {
        return;
    };
    let m = io::load(&dir, &RunSettings::default(), Device::Cpu)
        .unwrap()
        .model;
    assert_eq!(m.cfg.sliding_window, Some(16));
    // 8 prompt + 40 new positions: generation's cache is a rolling buffer of 16.
    let cache = model::KvCache::new(&m, 1, 48, Device::Cpu);
    assert!(cache.is_rolling() && cache.slots() == 16);
}

#[test]
fn a_mistral_window_of_zero_is_a_clear_error() {
    let Some(dir) = shared_resource("models/mistral-tiny").unwrap() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["sliding_window"] = serde_json::json!(0);
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    std::fs::copy(
        dir.join("model.safetensors"),
        tmp.path().join("model.safetensors"),
    )
    .unwrap();
    let e = match io::load(tmp.path(), &RunSettings::default(), Device::Cpu) {
        Ok(_) => panic!("loaded a window of 0"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("sliding_window") && e.contains("config.json"),
        "{e}"
    );
}

fn qwen2_json(extra: Value) -> Value {
    let mut v = serde_json::json!({
        "model_type": "qwen2", "vocab_size": 512, "max_position_embeddings": 256,
        "hidden_size": 64, "intermediate_size": 160, "num_hidden_layers": 3,
        "num_attention_heads": 8, "num_key_value_heads": 2, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": false,
    });
    v.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    v
}

#[test]
fn rope_theta_is_read_in_both_spellings_and_written_in_both() {
    use model::hf::{config_from_hf, config_to_hf};
    use serde_json::json;
    let theta = |extra: Value| config_from_hf(&qwen2_json(extra)).map(|(_, c)| c.rope_theta);
    assert_eq!(theta(json!({"rope_theta": 1e6})).unwrap(), 1e6);
    let nested = json!({"rope_parameters": {"rope_type": "default", "rope_theta": 5e5}});
    assert_eq!(theta(nested).unwrap(), 5e5);
    assert_eq!(theta(json!({})).unwrap(), 10000.0);
    let both = json!({"rope_theta": 1e6, "rope_parameters": {"rope_theta": 1e4}});
    let e = format!("{:#}", theta(both).unwrap_err());
    assert!(
        e.contains("rope_theta") && e.contains("rope_parameters.rope_theta"),
        "{e}"
    );
    let scaled = json!({"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4}});
    let e = format!("{:#}", theta(scaled).unwrap_err());
    assert!(e.contains("rope_type 'yarn'"), "{e}");
    let e = format!(
        "{:#}",
        theta(json!({"use_sliding_window": true})).unwrap_err()
    );
    assert!(e.contains("use_sliding_window"), "{e}");

    let (arch, cfg) = config_from_hf(&qwen2_json(json!({"rope_theta": 1e6}))).unwrap();
    assert_eq!(arch, HfArch::Qwen2);
    assert!(cfg.qkv_bias && !cfg.bias && !cfg.tie_embeddings);
    let out = config_to_hf(arch, &cfg);
    assert_eq!(out["model_type"], "qwen2");
    assert_eq!(out["architectures"][0], "Qwen2ForCausalLM");
    assert_eq!(out["rope_theta"], 1e6);
    assert_eq!(out["rope_parameters"]["rope_theta"], 1e6);
    assert_eq!(config_from_hf(&out).unwrap().1, cfg);
}

#[test]
fn a_qwen2_folder_without_its_biases_is_a_clear_error() {
    let Some(dir) = shared_resource("models/qwen2-tiny").unwrap() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
    let mut tensors = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    tensors.retain(|(k, _)| k != "model.layers.1.self_attn.k_proj.bias");
    Tensor::write_safetensors(&tensors, tmp.path().join("model.safetensors")).unwrap();
    let e = match io::load(tmp.path(), &RunSettings::default(), Device::Cpu) {
        Ok(_) => panic!("loaded a folder with a missing bias"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        e.contains("model.layers.1.self_attn.k_proj.bias") && e.contains("[16]"),
        "{e}"
    );
}

#[test]
fn mixtral_tiny_matches_transformers() {
    check_fixture("mixtral-tiny", HfArch::Mixtral);
    let Some(dir) = shared_resource("models/mixtral-tiny").unwrap() else {
        return;
    };
    let (_, cfg) = io::read_config(&dir).unwrap();
    assert_eq!((cfg.n_experts, cfg.experts_per_token), (Some(4), Some(2)));
    assert_eq!(cfg.router_aux_loss_coef, Some(0.001));
    assert_eq!((cfg.n_layer, cfg.n_head, cfg.n_kv_heads), (3, 8, 2));
}

#[test]
fn a_mixtral_folder_without_an_expert_is_a_clear_error() {
    let Some(dir) = shared_resource("models/mixtral-tiny").unwrap() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(dir.join("config.json"), tmp.path().join("config.json")).unwrap();
    let key = "model.layers.2.block_sparse_moe.experts.3.w2.weight";
    let mut tensors = Tensor::read_safetensors(dir.join("model.safetensors")).unwrap();
    tensors.retain(|(k, _)| k != key);
    Tensor::write_safetensors(&tensors, tmp.path().join("model.safetensors")).unwrap();
    let e = match io::load(tmp.path(), &RunSettings::default(), Device::Cpu) {
        Ok(_) => panic!("loaded a Mixtral folder with a missing expert"),
        Err(e) => format!("{e:#}"),
    };
    assert!(e.contains(key) && e.contains("[64, 160]"), "{e}");

    // And a config whose routing cannot work names its keys.
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    cfg["num_experts_per_tok"] = serde_json::json!(5);
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let e = format!("{:#}", io::read_config(tmp.path()).unwrap_err());
    assert!(
        e.contains("num_experts_per_tok") && e.contains("num_local_experts"),
        "{e}"
    );
}
