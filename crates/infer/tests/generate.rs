//! Generation: cache on/off agree, GQA = n_head is MHA, top-k 1 is greedy, seeds reproduce,
//! and the real checkpoints reproduce their references.
use infer::sampling::top_p_filter;
use infer::source::{self, SourceSpec};
use infer::{generate, GenOptions, Sampler};
use model::resources::shared_resource;
use model::{Attention, DType};
use tch::{Device, Kind, Tensor};

fn spec(preset: &str, gqa: Option<usize>) -> SourceSpec {
    SourceSpec {
        model: None,
        checkpoint: None,
        preset: Some(preset.into()),
        gqa,
        attention: Attention::Sdpa,
        dtype: DType::Fp32,
        device: Device::Cpu,
        seed: 3,
    }
}

fn opts(kv: bool, sampler: Sampler, seed: Option<i64>) -> GenOptions {
    GenOptions {
        max_new_tokens: 24,
        kv_cache: kv,
        sampler,
        eos: None,
        seed,
    }
}

fn run(src: &source::Source, o: &GenOptions) -> Vec<Vec<i64>> {
    generate(
        &src.model,
        &[vec![5, 6, 7], vec![9, 1, 2]],
        o,
        Device::Cpu,
        |_| {},
    )
    .unwrap()
    .ids
}

#[test]
fn greedy_with_and_without_cache_is_identical() {
    for preset in ["gpt2_tiny", "llama_tiny"] {
        let src = source::load(&spec(preset, None)).unwrap();
        assert_eq!(
            run(&src, &opts(true, Sampler::greedy(), None)),
            run(&src, &opts(false, Sampler::greedy(), None)),
            "{preset}"
        );
    }
}

#[test]
fn gqa_equal_to_n_head_is_mha() {
    let mha = source::load(&spec("gpt2_tiny", None)).unwrap();
    let gqa = source::load(&spec("gpt2_tiny", Some(4))).unwrap(); // n_head = 4
    assert_eq!(gqa.model.cfg.n_kv_heads, 4);
    let o = opts(true, Sampler::greedy(), None);
    assert_eq!(run(&mha, &o), run(&gqa, &o));
}

#[test]
fn top_k_one_is_greedy_and_seeds_reproduce() {
    let src = source::load(&spec("gpt2_tiny", None)).unwrap();
    let greedy = run(&src, &opts(true, Sampler::greedy(), None));
    let k1 = Sampler {
        temperature: 1.0,
        top_k: 1,
        top_p: 1.0,
    };
    assert_eq!(run(&src, &opts(true, k1, Some(1))), greedy);
    let s = Sampler {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
    };
    let a = run(&src, &opts(true, s, Some(42)));
    assert_eq!(a, run(&src, &opts(true, s, Some(42))));
    assert_ne!(a, run(&src, &opts(true, s, Some(43))));
}

#[test]
fn top_p_keeps_the_nucleus() {
    // Probabilities 0.5, 0.3, 0.15, 0.05: p = 0.7 keeps the first two, p = 0.85 three.
    let logits = Tensor::from_slice(&[0.5f64, 0.3, 0.15, 0.05])
        .log()
        .to_kind(Kind::Float)
        .unsqueeze(0);
    let kept = |p: f64| -> Vec<bool> {
        Vec::try_from(top_p_filter(&logits, p).isfinite().squeeze_dim(0)).unwrap()
    };
    assert_eq!(kept(0.7), vec![true, true, false, false]);
    assert_eq!(kept(0.85), vec![true, true, true, false]);
    assert_eq!(kept(0.1), vec![true, false, false, false]);
}

#[test]
fn prompt_past_the_context_is_an_error() {
    let src = source::load(&spec("gpt2_tiny", None)).unwrap(); // block 64
    let o = GenOptions {
        max_new_tokens: 10,
        ..opts(true, Sampler::greedy(), None)
    };
    let e = generate(&src.model, &[vec![1; 60]], &o, Device::Cpu, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("exceeds the model's context of 64"), "{e}");
    let e = generate(&src.model, &[vec![]], &o, Device::Cpu, |_| {})
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty prompt"), "{e}");
}

fn reference(dir: &std::path::Path, key: &str) -> Vec<i64> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn real_checkpoints_match_their_references() {
    for (name, prompt_key, out_key) in [
        ("stories260K", "prompt_token_ids", "greedy_60"),
        ("gpt2-tiny", "input_ids", "greedy_20"),
    ] {
        let Some(dir) = shared_resource(&format!("models/{name}")).unwrap() else {
            continue;
        };
        let src = source::load(&SourceSpec {
            model: Some(dir.clone()),
            preset: None,
            ..spec("gpt2_tiny", None)
        })
        .unwrap();
        let (prompt, want) = (reference(&dir, prompt_key), reference(&dir, out_key));
        for kv in [true, false] {
            let o = GenOptions {
                max_new_tokens: want.len(),
                kv_cache: kv,
                sampler: Sampler::greedy(),
                eos: None,
                seed: None,
            };
            let got = generate(
                &src.model,
                std::slice::from_ref(&prompt),
                &o,
                Device::Cpu,
                |_| {},
            )
            .unwrap()
            .ids
            .remove(0);
            assert_eq!(got, want, "{name}, kv cache {kv}");
        }
    }
}
