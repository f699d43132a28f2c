//! Presets, validation, accounting and mixed precision.
mod common;
use model::accounting::{kv_cache_bytes_per_token, param_count, train_flops_per_token};
use model::{Gpt, ModelConfig};
use runtime::DType;
use tch::{nn, Device, Kind};

#[test]
fn presets_are_valid_and_shaped_as_documented() {
    for name in ModelConfig::PRESETS {
        ModelConfig::preset(name).unwrap().validate().unwrap();
    }
    let g = ModelConfig::gpt2_124m();
    assert_eq!(
        (g.n_layer, g.n_head, g.n_embd, g.block_size, g.vocab_size),
        (12, 12, 768, 1024, 50304)
    );
    // 124M with the padded vocabulary (nanoGPT reports 124.37M with 50304 incl. wpe).
    let n = param_count(&g).total;
    assert!((124_000_000..124_500_000).contains(&n), "{n}");
    let l = ModelConfig::llama3_style();
    assert_eq!(l.n_kv_heads, l.n_head / 4);
    assert_eq!(l.intermediate_size, 2048); // 2/3·4·768 = 2048, a multiple of 256
    assert_eq!(l.rope_theta, 500000.0);
    let e = ModelConfig::preset("gpt5").unwrap_err().to_string();
    assert!(e.contains("gpt5") && e.contains("gpt2_124m"), "{e}");
}

#[test]
fn param_count_matches_the_built_model() {
    for cfg in [
        ModelConfig::gpt2_tiny(),
        ModelConfig::llama_tiny(),
        ModelConfig::llama3_style(),
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = Gpt::new(&vs.root(), &cfg).unwrap();
        let built: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(built as usize, param_count(&cfg).total, "{cfg:?}");
    }
}

#[test]
fn accounting_formulas() {
    let g = ModelConfig::gpt2_124m();
    // 2 · 12 layers · 12 heads · 64 · 2 bytes (bf16) = 36864 bytes per token.
    assert_eq!(kv_cache_bytes_per_token(&g, 2), 36864);
    let gqa = ModelConfig {
        n_kv_heads: 3,
        ..g.clone()
    };
    assert_eq!(
        kv_cache_bytes_per_token(&gqa, 2) * 4,
        kv_cache_bytes_per_token(&g, 2)
    );
    let f = train_flops_per_token(&g, 1024);
    let n = param_count(&g).matmul as f64;
    assert_eq!(f, 6.0 * n + 12.0 * 12.0 * 12.0 * 64.0 * 1024.0);
}

#[test]
fn bad_values_name_the_field() {
    let cases = [
        (
            ModelConfig {
                n_embd: 65,
                ..ModelConfig::gpt2_tiny()
            },
            "n_embd (65) must be divisible by n_head (4)",
        ),
        (
            ModelConfig {
                n_layer: 0,
                ..ModelConfig::gpt2_tiny()
            },
            "n_layer must be at least 1",
        ),
        (
            ModelConfig {
                dropout: 1.5,
                ..ModelConfig::gpt2_tiny()
            },
            "dropout",
        ),
    ];
    for (cfg, want) in cases {
        let e = cfg.validate().unwrap_err().to_string();
        assert!(e.contains(want), "{e}");
    }
    let e = ModelConfig::from_json(r#"{"vocab_size": "many"}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("vocab_size"), "{e}");
}

#[test]
fn bf16_mixed_precision_keeps_fp32_master_weights() {
    for base in [ModelConfig::gpt2_tiny(), ModelConfig::llama_tiny()] {
        let cfg = ModelConfig {
            dtype: DType::Bf16,
            ..base.clone()
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let m = Gpt::new(&vs.root(), &cfg).unwrap();
        let x = common::random_ids(cfg.vocab_size, 2, 16, 1);
        let y = x.roll([-1], [1]);
        let (logits, loss) = m.forward_loss(&x, &y, true).unwrap();
        assert_eq!(logits.kind(), Kind::BFloat16);
        assert_eq!(loss.kind(), Kind::Float);
        loss.backward();
        for (name, t) in vs.variables() {
            assert_eq!(t.kind(), Kind::Float, "{name}");
            assert_eq!(t.grad().kind(), Kind::Float, "{name}");
            assert!(
                t.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "{name} got no gradient"
            );
        }
        // Same loss as fp32 within bf16 rounding, from an identical init.
        let vs32 = nn::VarStore::new(Device::Cpu);
        let m32 = Gpt::new(&vs32.root(), &base).unwrap();
        let mut vs32 = vs32;
        vs32.copy(&vs).unwrap();
        let l32 = m32.loss(&x, &y, false).unwrap().double_value(&[]);
        let l16 = m.loss(&x, &y, false).unwrap().double_value(&[]);
        assert!((l32 - l16).abs() < 0.02 * l32, "fp32 {l32} vs bf16 {l16}");
    }
}
