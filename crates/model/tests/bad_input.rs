//! Bad input is a clear error (naming the file, key and shapes), never a panic.
mod common;
use model::{io, ModelConfig, RunSettings};
use tch::{nn, Device};

fn err_text(r: anyhow::Result<io::Loaded>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => format!("{e:#}"),
    }
}

fn saved(cfg: &ModelConfig, hub: bool) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let vs = nn::VarStore::new(Device::Cpu);
    let _m = model::Gpt::new(&vs.root(), cfg, &RunSettings::default()).unwrap();
    if hub {
        io::save_hf(&vs, cfg, dir.path()).unwrap();
    } else {
        io::save_native(&vs, cfg, dir.path()).unwrap();
    }
    dir
}

#[test]
fn truncated_safetensors_is_an_error() {
    let dir = saved(&ModelConfig::gpt2_tiny(), true);
    let f = dir.path().join("model.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    let e = err_text(io::load(dir.path(), &RunSettings::default(), Device::Cpu));
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );
}

#[test]
fn wrong_shape_names_key_and_both_shapes() {
    let dir = saved(&ModelConfig::llama_tiny(), true);
    // Claim 1 KV head where the file has 2: k_proj is (32, 64), config expects (16, 64).
    let cfg_path = dir.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    v["num_key_value_heads"] = 1.into();
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let e = err_text(io::load(dir.path(), &RunSettings::default(), Device::Cpu));
    assert!(e.contains("model.layers.0.self_attn.k_proj.weight"), "{e}");
    assert!(e.contains("[32, 64]") && e.contains("[16, 64]"), "{e}");
}

#[test]
fn missing_and_extra_tensors_are_named() {
    // Fewer layers in the file than in the config: a missing tensor.
    let dir = saved(&ModelConfig::gpt2_tiny(), true);
    let cfg_path = dir.path().join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    v["n_layer"] = 3.into();
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let e = err_text(io::load(dir.path(), &RunSettings::default(), Device::Cpu));
    assert!(e.contains("missing tensor 'transformer.h.2."), "{e}");
    // More layers in the file than in the config: an unexpected tensor.
    v["n_layer"] = 1.into();
    std::fs::write(&cfg_path, v.to_string()).unwrap();
    let e = err_text(io::load(dir.path(), &RunSettings::default(), Device::Cpu));
    assert!(e.contains("unexpected tensor 'transformer.h.1."), "{e}");
}

#[test]
fn unknown_config_key_is_rejected() {
    let dir = saved(&ModelConfig::gpt2_tiny(), false);
    let cfg_path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&cfg_path)
        .unwrap()
        .replacen('{', "{\"n_heads\": 4,", 1);
    std::fs::write(&cfg_path, text).unwrap();
    let e = err_text(io::load(dir.path(), &RunSettings::default(), Device::Cpu));
    assert!(
        e.contains("config.json") && e.contains("unknown field `n_heads`"),
        "{e}"
    );
}

#[test]
fn n_head_not_divisible_by_n_kv_heads() {
    let cfg = ModelConfig {
        n_kv_heads: 3,
        ..ModelConfig::gpt2_tiny()
    };
    let e = cfg.validate().unwrap_err().to_string();
    assert!(
        e.contains("n_head (4) must be divisible by n_kv_heads (3)"),
        "{e}"
    );
    let vs = nn::VarStore::new(Device::Cpu);
    assert!(model::Gpt::new(&vs.root(), &cfg, &RunSettings::default()).is_err());
}

#[test]
fn missing_folder_and_context_overflow() {
    let e = err_text(io::load(
        std::path::Path::new("/nonexistent/model"),
        &RunSettings::default(),
        Device::Cpu,
    ));
    assert!(
        e.contains("/nonexistent/model") && e.contains("does not exist"),
        "{e}"
    );
    let cfg = ModelConfig::gpt2_tiny();
    let vs = nn::VarStore::new(Device::Cpu);
    let m = model::Gpt::new(&vs.root(), &cfg, &RunSettings::default()).unwrap();
    let x = common::random_ids(cfg.vocab_size, 1, cfg.block_size as i64 + 1, 0);
    let e = m.forward(&x, 0, None).unwrap_err().to_string();
    assert!(e.contains("block_size"), "{e}");
}
