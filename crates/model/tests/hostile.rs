//! Hostile model folders are refused before anything is allocated: the safetensors header
//! is checked (dtypes, byte ranges), every size in `config.json` against the tensors the
//! file holds and against bounds, and weight values for NaN/inf as they load.
use model::{io, validate, ModelConfig, RunSettings};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

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

/// Rewrite `model.safetensors` with `f` applied to every tensor.
fn rewrite(dir: &Path, f: impl Fn(&str, Tensor) -> Tensor) {
    let p = dir.join("model.safetensors");
    let ts: Vec<(String, Tensor)> = Tensor::read_safetensors(&p)
        .unwrap()
        .into_iter()
        .map(|(k, t)| {
            let t = f(&k, t);
            (k, t)
        })
        .collect();
    Tensor::write_safetensors(&ts, &p).unwrap();
}

fn set_config(dir: &Path, key: &str, v: serde_json::Value) {
    let p = dir.join("config.json");
    let mut j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    j[key] = v;
    std::fs::write(&p, j.to_string()).unwrap();
}

#[test]
fn expected_shapes_match_the_built_model_for_every_rung() {
    let mut cfgs: Vec<ModelConfig> = ["gpt2_tiny", "llama_tiny"]
        .iter()
        .map(|n| ModelConfig::preset(n).unwrap())
        .collect();
    let g = ModelConfig::gpt2_tiny();
    cfgs.push(ModelConfig {
        pos_emb: model::PosEmb::Rope,
        norm: model::NormKind::RmsNorm,
        tie_embeddings: false,
        n_kv_heads: 1,
        ..g.clone()
    });
    cfgs.push(ModelConfig {
        mlp: model::MlpKind::SwiGlu,
        bias: false,
        ..g
    });
    cfgs.push(ModelConfig {
        qkv_bias: true,
        sliding_window: Some(8),
        ..ModelConfig::llama_tiny()
    });
    for cfg in cfgs {
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = model::Gpt::new(&vs.root(), &cfg, &RunSettings::default()).unwrap();
        let mut built: Vec<(String, Vec<i64>)> = vs
            .variables()
            .into_iter()
            .map(|(k, t)| (k, t.size()))
            .collect();
        let mut want: Vec<(String, Vec<i64>)> = validate::native_shapes(&cfg)
            .into_iter()
            .map(|e| (e.key, e.shape))
            .collect();
        built.sort();
        want.sort();
        assert_eq!(built, want, "{cfg:?}");
    }
}

#[test]
fn integer_weights_are_refused_naming_the_tensor_and_dtype() {
    let dir = saved(&ModelConfig::gpt2_tiny(), true);
    rewrite(dir.path(), |k, t| {
        if k.ends_with("wte.weight") {
            t.to_kind(Kind::Int)
        } else {
            t
        }
    });
    let e = err_text(io::load(dir.path(), &RunSettings::default(), Device::Cpu));
    assert!(
        e.contains("model.safetensors") && e.contains("wte.weight") && e.contains("I32"),
        "{e}"
    );
    assert!(e.contains("floating point"), "{e}");
}

#[test]
fn non_finite_weights_are_refused_at_load() {
    for (bad, hub) in [(f64::NAN, true), (f64::INFINITY, false)] {
        let dir = saved(&ModelConfig::llama_tiny(), hub);
        rewrite(dir.path(), |k, t| {
            if k.contains("layers.1.mlp.up_proj") || k == "h.1.mlp.up_proj.weight" {
                let t = t.copy();
                let _ = t.view([-1]).get(7).fill_(bad);
                t
            } else {
                t
            }
        });
        let e = err_text(io::load(dir.path(), &RunSettings::default(), Device::Cpu));
        assert!(
            e.contains("model.safetensors") && e.contains("up_proj") && e.contains("non-finite"),
            "{e}"
        );
    }
}

#[test]
fn huge_sizes_in_config_json_name_the_key_before_allocating() {
    let dir = saved(&ModelConfig::llama_tiny(), true);
    // 2^40 layers would be refused by the bounds, 10^6 too; neither allocates anything.
    for (key, v) in [
        ("num_hidden_layers", 1u64 << 40),
        ("hidden_size", 1 << 30),
        ("max_position_embeddings", 1 << 40),
        ("vocab_size", 1 << 30),
    ] {
        let d = tempfile::tempdir().unwrap();
        for f in ["config.json", "model.safetensors"] {
            std::fs::copy(dir.path().join(f), d.path().join(f)).unwrap();
        }
        set_config(d.path(), key, v.into());
        let e = err_text(io::load(d.path(), &RunSettings::default(), Device::Cpu));
        assert!(e.contains("config.json") && e.contains(key), "{key}: {e}");
    }
    // Within bounds but not what the file holds: named against the file's shapes.
    set_config(dir.path(), "max_position_embeddings", 4096.into());
    set_config(dir.path(), "intermediate_size", 100000.into());
    let e = err_text(io::load(dir.path(), &RunSettings::default(), Device::Cpu));
    assert!(
        e.contains("model.safetensors")
            && e.contains("intermediate_size")
            && e.contains("[176, 64]"),
        "{e}"
    );
}

#[test]
fn corrupt_headers_are_errors_not_panics() {
    let dir = saved(&ModelConfig::gpt2_tiny(), false);
    let p = dir.path().join("model.safetensors");
    let good = std::fs::read(&p).unwrap();
    let n = u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(good[8..8 + n].to_vec()).unwrap();
    let with_header = |h: String| {
        let len = (h.len() as u64).to_le_bytes();
        [&len[..], h.as_bytes(), &good[8 + n..]].concat()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..5].to_vec(), "too short"),
        (
            [&u64::MAX.to_le_bytes()[..], &good[8..]].concat(),
            "header claims",
        ),
        (
            with_header(header.replacen("\"shape\":[", "\"shape\":[99999999,", 1)),
            "data_offsets",
        ),
        (with_header(header.replacen('{', "[", 1)), "not valid JSON"),
    ];
    for (bytes, want) in cases {
        std::fs::write(&p, &bytes).unwrap();
        let e = err_text(io::load(dir.path(), &RunSettings::default(), Device::Cpu));
        assert!(
            e.contains("model.safetensors") && e.contains(want),
            "{want}: {e}"
        );
    }
}
