//! Generation: the cache changes nothing but speed, GQA is MHA with shared K/V heads,
//! top-k 1 is greedy, seeds reproduce, EOS stops, and the real checkpoints reproduce their
//! references (stories260K's `greedy_60` from BOS, gpt2-tiny's `greedy_20`, qwen2-tiny's and
//! mistral-tiny's `greedy_40`), a sliding window's rolling cache changes nothing either, and
//! on a machine with CUDA the GPU generates what the CPU does. These are the greedy-loop
//! tests of the model too: every loop here is `infer::generate`, the code users run.
use infer::source::{self, Source, SourceSpec};
use infer::{generate, GenOptions, Sampler};
use model::AttnKernel;
use runtime::resources::shared_resource;
use runtime::DType;
use tch::{Kind, Tensor};

fn spec(preset: &str, gqa: Option<usize>, attention: AttnKernel) -> SourceSpec {
    SourceSpec {
        gqa,
        attention,
        seed: 3,
        ..SourceSpec::preset(preset)
    }
}

fn opts(kv_cache: bool, sampler: Sampler, seed: u64) -> GenOptions {
    GenOptions {
        max_new_tokens: 24,
        kv_cache,
        sampler,
        eos: Vec::new(),
        seed,
    }
}

const PROMPTS: [[i64; 3]; 2] = [[5, 6, 7], [9, 1, 2]];

fn run(src: &Source, o: &GenOptions) -> Vec<Vec<i64>> {
    let prompts: Vec<Vec<i64>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
    generate(&src.model, &prompts, o, |_| {}).unwrap().ids
}

fn sampled(temperature: f64, top_k: usize, top_p: f64) -> Sampler {
    Sampler {
        temperature,
        top_k,
        top_p,
    }
}

#[test]
fn greedy_with_and_without_cache_is_identical() {
    for preset in ["gpt2_tiny", "llama_tiny"] {
        for attention in [AttnKernel::Sdpa, AttnKernel::Naive] {
            let src = source::load(&spec(preset, None, attention)).unwrap();
            let cached = run(&src, &opts(true, Sampler::greedy(), 0));
            assert_eq!(cached[0].len(), 24);
            assert_eq!(
                cached,
                run(&src, &opts(false, Sampler::greedy(), 0)),
                "{preset} {attention:?}"
            );
        }
    }
}

#[test]
fn gqa_equal_to_n_head_is_the_mha_model() {
    let mha = source::load(&spec("gpt2_tiny", None, AttnKernel::Sdpa)).unwrap();
    let gqa = source::load(&spec("gpt2_tiny", Some(4), AttnKernel::Sdpa)).unwrap(); // n_head = 4
    assert_eq!(gqa.model.cfg, mha.model.cfg);
    let o = opts(true, Sampler::greedy(), 0);
    assert_eq!(run(&mha, &o), run(&gqa, &o));
}

/// Copy `gqa`'s weights into `mha`, repeating each K/V head for the `rep` consecutive query
/// heads it serves (the fused c_attn rows are [q: nh·hs | k: nkv·hs | v: nkv·hs]).
fn expand_into(gqa: &Source, mha: &Source) {
    let (nh, nkv) = (gqa.model.cfg.n_head as i64, gqa.model.cfg.n_kv_heads as i64);
    let hs = gqa.model.cfg.head_dim() as i64;
    let src = gqa.vs.variables();
    tch::no_grad(|| {
        for (name, mut dst) in mha.vs.variables() {
            let w = &src[&name];
            if !name.contains("attn.c_attn") {
                dst.copy_(w);
                continue;
            }
            let rest: Vec<i64> = w.size()[1..].to_vec(); // [d] for weights, [] for biases
            let heads = |start: i64| {
                let shape: Vec<i64> = [nkv, hs].iter().chain(&rest).copied().collect();
                w.narrow(0, start, nkv * hs)
                    .reshape(&shape) // (nkv, hs, …)
                    .repeat_interleave_self_int(nh / nkv, 0, None) // (nh, hs, …)
                    .flatten(0, 1) // (nh·hs, …)
            };
            let full = Tensor::cat(
                &[
                    w.narrow(0, 0, nh * hs),
                    heads(nh * hs),
                    heads((nh + nkv) * hs),
                ],
                0,
            );
            dst.copy_(&full);
        }
    });
}

#[test]
fn gqa_generates_as_mha_with_repeated_kv_heads() {
    for (preset, attention) in [
        ("gpt2_tiny", AttnKernel::Sdpa),
        ("gpt2_tiny", AttnKernel::Naive),
        ("llama_tiny", AttnKernel::Sdpa),
    ] {
        let gqa = source::load(&spec(preset, Some(2), attention)).unwrap();
        let n_head = gqa.model.cfg.n_head;
        let mha = source::load(&spec(preset, Some(n_head), attention)).unwrap();
        assert_eq!(gqa.model.cfg.n_kv_heads, 2);
        expand_into(&gqa, &mha);
        let _g = tch::no_grad_guard();
        let ids = Tensor::from_slice(&[5i64, 6, 7, 8]).view([1, 4]);
        let (a, b) = (
            gqa.model.forward(&ids, 0, None).unwrap(),
            mha.model.forward(&ids, 0, None).unwrap(),
        );
        assert!(a.allclose(&b, 1e-5, 1e-5, false), "{preset} {attention:?}");
        for kv in [true, false] {
            let o = opts(kv, sampled(1.0, 0, 1.0), 7);
            assert_eq!(
                run(&gqa, &o),
                run(&mha, &o),
                "{preset} {attention:?} kv {kv}"
            );
        }
    }
}

#[test]
fn top_k_one_is_greedy_and_seeds_reproduce() {
    let src = source::load(&spec("gpt2_tiny", None, AttnKernel::Sdpa)).unwrap();
    let greedy = run(&src, &opts(true, Sampler::greedy(), 0));
    assert_eq!(run(&src, &opts(true, sampled(1.0, 1, 1.0), 1)), greedy);
    assert_eq!(run(&src, &opts(true, sampled(5.0, 1, 1.0), 2)), greedy);
    // A tiny nucleus keeps only the top id too.
    assert_eq!(run(&src, &opts(true, sampled(1.0, 0, 1e-6), 3)), greedy);
    let s = sampled(1.0, 0, 1.0);
    let a = run(&src, &opts(true, s, 42));
    assert_eq!(a, run(&src, &opts(true, s, 42)));
    assert_eq!(
        a,
        run(&src, &opts(false, s, 42)),
        "the cache changes the sample"
    );
    assert_ne!(a, run(&src, &opts(true, s, 43)));
    assert_ne!(a, greedy);
}

#[test]
fn top_p_keeps_the_nucleus_and_top_k_the_k_best() {
    // Probabilities 0.5, 0.3, 0.15, 0.05: p = 0.7 keeps the first two, p = 0.85 three.
    let logits = Tensor::from_slice(&[0.15f64, 0.5, 0.05, 0.3])
        .log()
        .to_kind(Kind::Float)
        .unsqueeze(0);
    let kept = |t: Tensor| -> Vec<bool> { Vec::try_from(t.isfinite().squeeze_dim(0)).unwrap() };
    let top_p = |p: f64| kept(infer::sampling::top_p_filter(&logits, p));
    assert_eq!(top_p(0.7), vec![false, true, false, true]);
    assert_eq!(top_p(0.85), vec![true, true, false, true]);
    assert_eq!(top_p(0.1), vec![false, true, false, false]);
    assert_eq!(top_p(1.0), vec![true; 4]);
    let top_k = |k: usize| kept(infer::sampling::top_k_filter(&logits, k));
    assert_eq!(top_k(2), vec![false, true, false, true]);
    assert_eq!(top_k(10), vec![true; 4]);
    // And the distribution after both filters sums to one over the kept ids.
    let p = sampled(1.0, 3, 0.7).probs(&logits);
    let p: Vec<f32> = Vec::try_from(p.squeeze_dim(0)).unwrap();
    assert!(
        (p[1] - 0.625).abs() < 1e-6 && (p[3] - 0.375).abs() < 1e-6,
        "{p:?}"
    );
}

#[test]
fn eos_ends_a_sequence_and_the_others_go_on() {
    let src = source::load(&spec("llama_tiny", None, AttnKernel::Sdpa)).unwrap();
    let greedy = run(&src, &opts(true, Sampler::greedy(), 0));
    // A stop id that sequence 0 produces and sequence 1 never does.
    let stop = *greedy[0]
        .iter()
        .find(|i| !greedy[1].contains(i))
        .expect("the two greedy sequences share every id; change PROMPTS");
    let o = GenOptions {
        eos: vec![stop],
        ..opts(true, Sampler::greedy(), 0)
    };
    let prompts: Vec<Vec<i64>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
    let mut seen = Vec::new();
    let gen = generate(&src.model, &prompts, &o, |s| seen.push(s.to_vec())).unwrap();
    let first = greedy[0].iter().position(|&i| i == stop).unwrap();
    assert!(
        first < 20,
        "sequence 0 stops too late ({first}) to test what follows"
    );
    assert_eq!(gen.ids[0], greedy[0][..=first].to_vec());
    assert_eq!(gen.ids[1], greedy[1]);
    assert_eq!(seen.len(), 24);
    assert!(seen[first..].iter().skip(1).all(|s| s[0].is_none()));
    assert!(seen.iter().all(|s| s[1].is_some()));
    assert_eq!(gen.decode_steps, 23);
}

#[test]
fn bad_prompts_are_errors_not_panics() {
    let src = source::load(&spec("gpt2_tiny", None, AttnKernel::Sdpa)).unwrap(); // block 64
    let o = GenOptions {
        max_new_tokens: 10,
        ..opts(true, Sampler::greedy(), 0)
    };
    let err = |p: Vec<Vec<i64>>, o: &GenOptions| {
        generate(&src.model, &p, o, |_| {}).unwrap_err().to_string()
    };
    let e = err(vec![vec![1; 60]], &o);
    assert!(
        e.contains("(60 tokens) + --max-new-tokens (10) = 70 exceeds the model's context of 64"),
        "{e}"
    );
    assert!(err(vec![vec![]], &o).contains("empty prompt"));
    assert!(err(vec![], &o).contains("empty prompt"));
    assert!(err(vec![vec![1], vec![1, 2]], &o).contains("same length"));
    assert!(err(vec![vec![256]], &o).contains("outside the model's vocabulary (0..256)"));
    assert!(err(vec![vec![-1]], &o).contains("outside"));
    let zero = GenOptions {
        max_new_tokens: 0,
        ..o.clone()
    };
    assert!(err(vec![vec![1]], &zero).contains("at least 1"));
    let bad = GenOptions {
        sampler: sampled(-1.0, 0, 1.0),
        ..o
    };
    assert!(err(vec![vec![1]], &bad).contains("--temperature"));
}

#[test]
fn the_cache_holds_what_the_formula_says() {
    let src = source::load(&spec("llama_tiny", None, AttnKernel::Sdpa)).unwrap();
    let gen = generate(
        &src.model,
        &[vec![1, 2, 3]],
        &opts(true, Sampler::greedy(), 0),
        |_| {},
    )
    .unwrap();
    // 2 · 2 layers · 2 KV heads · 16 dims · 4 bytes · (3 prompt + 23 fed back) tokens.
    assert_eq!(gen.kv_cache_bytes, 2 * 2 * 2 * 16 * 4 * 26);
    assert_eq!(gen.kv_cache_capacity_bytes, gen.kv_cache_bytes); // P + n − 1 positions
    assert_eq!(gen.decode_steps, 23);
    assert!(gen.ttft_s >= gen.prefill_s && gen.prefill_s > 0.0);
    let off = generate(
        &src.model,
        &[vec![1, 2, 3]],
        &opts(false, Sampler::greedy(), 0),
        |_| {},
    )
    .unwrap();
    assert_eq!((off.kv_cache_bytes, off.kv_cache_capacity_bytes), (0, 0));
}

fn reference(dir: &std::path::Path, key: &str) -> Vec<i64> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("reference.json has no {key}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

#[test]
fn real_checkpoints_match_their_references() {
    // Hugging Face's references (`greedy_40`) ran without stopping at EOS; Mistral's runs
    // past its window of 16, so the rolling cache is exercised.
    for (name, prompt_key, out_key, stop) in [
        ("stories260K", "prompt_token_ids", "greedy_60", true),
        ("gpt2-tiny", "input_ids", "greedy_20", true),
        ("qwen2-tiny", "input_ids", "greedy_40", false),
        ("mistral-tiny", "input_ids", "greedy_40", false),
    ] {
        let Some(dir) = shared_resource(&format!("models/{name}")).unwrap() else {
            continue;
        };
        let (prompt, want) = (reference(&dir, prompt_key), reference(&dir, out_key));
        for attention in [AttnKernel::Sdpa, AttnKernel::Naive] {
            let src = source::load(&SourceSpec {
                attention,
                ..SourceSpec::model(&dir)
            })
            .unwrap();
            assert!(!src.random_weights);
            for kv in [true, false] {
                let o = GenOptions {
                    max_new_tokens: want.len(),
                    eos: if stop { src.eos.clone() } else { Vec::new() },
                    ..opts(kv, Sampler::greedy(), 0)
                };
                let got = generate(&src.model, std::slice::from_ref(&prompt), &o, |_| {})
                    .unwrap()
                    .ids
                    .remove(0);
                assert_eq!(got, want, "{name}, {attention:?}, kv cache {kv}");
            }
        }
    }
}

#[test]
fn bf16_weights_track_fp32() {
    let Some(dir) = shared_resource("models/stories260K").unwrap() else {
        return;
    };
    let load = |dtype| {
        source::load(&SourceSpec {
            dtype,
            ..SourceSpec::model(&dir)
        })
        .unwrap()
    };
    let (f32m, bf16m) = (load(DType::Fp32), load(DType::Bf16));
    assert!(bf16m
        .vs
        .variables()
        .values()
        .all(|v| v.kind() == Kind::BFloat16));
    let want = reference(&dir, "greedy_60");
    let ids: Vec<i64> = [1].iter().chain(&want).copied().collect();
    let ids = Tensor::from_slice(&ids).unsqueeze(0); // (1, 61)
    let _g = tch::no_grad_guard();
    let a = f32m.model.forward(&ids, 0, None).unwrap();
    let b = bf16m
        .model
        .forward(&ids, 0, None)
        .unwrap()
        .to_kind(Kind::Float);
    // bf16 everywhere (weights, residual stream, cache), as HF's `.to(torch.bfloat16)`:
    // about 3 significant digits per op, so logits move by a few tenths on this model, whose
    // logits are flat enough that a few greedy choices flip; a broken cast moves everything.
    let diff = (&a - &b).abs();
    let (mean, scale) = (
        diff.mean(Kind::Float).double_value(&[]),
        a.abs().max().double_value(&[]),
    );
    assert!(
        mean < 0.02 * scale,
        "mean |Δlogit| {mean} vs max |logit| {scale}"
    );
    let same = a
        .argmax(-1, false)
        .eq_tensor(&b.argmax(-1, false))
        .sum(Kind::Int64)
        .int64_value(&[]);
    assert!(
        same >= 55,
        "bf16 and fp32 argmax agree at only {same} of 61 positions"
    );
    // And a bf16 generation runs end to end, with the cache and without.
    for kv in [true, false] {
        let o = GenOptions {
            max_new_tokens: 20,
            ..opts(kv, Sampler::greedy(), 0)
        };
        let got = generate(&bf16m.model, &[vec![1]], &o, |_| {}).unwrap();
        assert_eq!(got.ids[0].len(), 20);
    }
}

/// A model built from a config with seeded random weights (no `Source`), fp32.
fn random_model(
    cfg: &model::ModelConfig,
    attention: AttnKernel,
    device: tch::Device,
) -> (tch::nn::VarStore, model::Gpt) {
    tch::manual_seed(7);
    let vs = tch::nn::VarStore::new(device);
    let run = model::RunSettings::default().with_kernel(attention);
    let m = model::Gpt::new(&vs.root(), cfg, &run).unwrap();
    (vs, m)
}

#[test]
fn greedy_through_a_rolling_window_cache_equals_recomputing() {
    // Window 6, 8 prompt + 30 new positions: the cache is a rolling buffer of 6 slots.
    let cfg = model::ModelConfig {
        sliding_window: Some(6),
        ..model::ModelConfig::llama_tiny()
    };
    for attention in [AttnKernel::Sdpa, AttnKernel::Naive] {
        let (_vs, m) = random_model(&cfg, attention, tch::Device::Cpu);
        let prompt = vec![(1..9).collect::<Vec<i64>>()];
        let o = |kv| GenOptions {
            max_new_tokens: 30,
            ..opts(kv, Sampler::greedy(), 0)
        };
        let cached = generate(&m, &prompt, &o(true), |_| {}).unwrap();
        assert!(cached.kv_cache_capacity_bytes > 0);
        let full = generate(&m, &prompt, &o(false), |_| {}).unwrap();
        assert_eq!(cached.ids, full.ids, "{attention:?}");
    }
}

#[test]
fn the_decoder_rewinds_and_steps_as_generate_does() {
    // `Decoder` + `decode` (what the speed ladder, the sweep and the bench time) is `generate`.
    let cfg = model::ModelConfig::gpt2_tiny();
    let (_vs, m) = random_model(&cfg, AttnKernel::Sdpa, tch::Device::Cpu);
    let prompt = vec![vec![5i64, 6, 7]];
    let o = GenOptions {
        max_new_tokens: 10,
        ..opts(true, Sampler::greedy(), 0)
    };
    let want = generate(&m, &prompt, &o, |_| {}).unwrap();
    let mut dec = infer::Decoder::new(&m, 1, 12, true);
    let x = Tensor::from_slice(&prompt[0]).unsqueeze(0);
    for _ in 0..2 {
        let logits = dec.prefill(&x).unwrap();
        let first = Sampler::greedy()
            .sample(&logits, &mut runtime::Rng::new(0))
            .unwrap();
        let d = infer::decode(&mut dec, first, &o, &mut runtime::Rng::new(0), |_| {}).unwrap();
        assert_eq!(d.ids, want.ids);
        assert_eq!((d.steps, dec.len()), (9, 12));
    }
    // Marked filled without a prefill: the steps run at the given context.
    dec.assume_filled(3);
    assert_eq!(dec.len(), 3);
    let d = infer::decode(&mut dec, vec![0], &o, &mut runtime::Rng::new(0), |_| {}).unwrap();
    assert_eq!((d.steps, dec.len()), (9, 12));
}

#[test]
fn on_cuda_greedy_generation_matches_the_cpu() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: skipped (scripts/gpu-check.sh runs it on a GPU)");
        return;
    }
    for preset in ["gpt2_tiny", "llama_tiny"] {
        let cfg = model::ModelConfig::preset(preset).unwrap();
        for attention in [AttnKernel::Sdpa, AttnKernel::Naive] {
            let (cpu_vs, cpu) = random_model(&cfg, attention, tch::Device::Cpu);
            let (mut gpu_vs, gpu) = random_model(&cfg, attention, tch::Device::Cuda(0));
            gpu_vs.copy(&cpu_vs).unwrap();
            let prompts: Vec<Vec<i64>> = PROMPTS.iter().map(|p| p.to_vec()).collect();
            for kv in [true, false] {
                let o = opts(kv, Sampler::greedy(), 0);
                let a = generate(&cpu, &prompts, &o, |_| {}).unwrap().ids;
                let b = generate(&gpu, &prompts, &o, |_| {}).unwrap().ids;
                assert_eq!(a, b, "{preset} {attention:?} kv {kv}: CPU vs CUDA");
            }
        }
    }
}
