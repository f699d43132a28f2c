//! Every toggle against the simpler path it replaces: SDPA == naive attention (outputs and
//! training gradients), cached
//! prefill + decode == full forward, GQA == MHA with repeated KV heads, RoPE at an offset
//! == the slice of the full sequence, save → load is bit-identical.
mod common;
use common::{cached_decode_logits, max_abs_diff, random_ids};
use model::rope::Rope;
use model::{io, AttnKernel, Gpt, KvCache, ModelConfig, RunSettings};
use tch::{nn, Device, Kind, Tensor};

fn build_with(cfg: &ModelConfig, run: &RunSettings, seed: i64) -> (nn::VarStore, Gpt) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Gpt::new(&vs.root(), cfg, run).unwrap();
    (vs, m)
}

fn build(cfg: &ModelConfig, seed: i64) -> (nn::VarStore, Gpt) {
    build_with(cfg, &RunSettings::default(), seed)
}

fn kernel(k: AttnKernel) -> RunSettings {
    RunSettings::default().with_kernel(k)
}

/// The same weights run with other settings.
fn rebuild(vs: &nn::VarStore, cfg: &ModelConfig, run: &RunSettings) -> (nn::VarStore, Gpt) {
    let (mut vs2, m) = build_with(cfg, run, 0);
    vs2.copy(vs).unwrap();
    (vs2, m)
}

fn presets() -> Vec<ModelConfig> {
    let mut mixed = ModelConfig::gpt2_tiny();
    mixed.pos_emb = model::PosEmb::Rope;
    mixed.n_kv_heads = 1; // MQA
    vec![ModelConfig::gpt2_tiny(), ModelConfig::llama_tiny(), mixed]
}

#[test]
fn sdpa_equals_naive() {
    for cfg in presets() {
        let (vs, naive) = build_with(&cfg, &kernel(AttnKernel::Naive), 1);
        let (_vs2, sdpa) = rebuild(&vs, &cfg, &kernel(AttnKernel::Sdpa));
        let x = random_ids(cfg.vocab_size, 2, 17, 2);
        let a = naive.forward(&x, 0, None).unwrap();
        let b = sdpa.forward(&x, 0, None).unwrap();
        assert!(
            max_abs_diff(&a, &b) < 1e-5,
            "{cfg:?}: {}",
            max_abs_diff(&a, &b)
        );
    }
}

/// The training path: the loss's gradients with SDPA (on a CPU, our fused causal kernel and
/// its backward) equal naive attention's, parameter by parameter.
#[test]
fn sdpa_equals_naive_in_gradients() {
    for cfg in presets() {
        let (vs, naive) = build_with(&cfg, &kernel(AttnKernel::Naive), 1);
        let (vs2, sdpa) = rebuild(&vs, &cfg, &kernel(AttnKernel::Sdpa));
        let x = random_ids(cfg.vocab_size, 2, 37, 3);
        let y = random_ids(cfg.vocab_size, 2, 37, 4);
        let la = naive.loss(&x, &y, true).unwrap();
        let lb = sdpa.loss(&x, &y, true).unwrap();
        assert!(max_abs_diff(&la, &lb) < 1e-5, "{cfg:?}: loss {la} vs {lb}");
        la.backward();
        lb.backward();
        let (a, b) = (vs.variables(), vs2.variables());
        for (name, ga) in &a {
            let (ga, gb) = (ga.grad(), b[name].grad());
            assert!(ga.defined() && gb.defined(), "{name}: no gradient");
            let d = max_abs_diff(&ga, &gb);
            let scale = ga.abs().max().double_value(&[]).max(1e-3);
            assert!(
                d < 1e-4 * scale,
                "{cfg:?} {name}: gradients differ by {d} (largest {scale})"
            );
        }
    }
}

#[test]
fn cached_prefill_and_decode_equal_full_forward() {
    // Under inference mode (as `infer` decodes), SDPA's single-query steps run through
    // `runtime::attn` where the CPU has it.
    for (attention, inference) in [
        (AttnKernel::Naive, false),
        (AttnKernel::Sdpa, false),
        (AttnKernel::Sdpa, true),
    ] {
        for cfg in presets() {
            let (_vs, m) = build_with(&cfg, &kernel(attention), 3);
            let x = random_ids(cfg.vocab_size, 2, 12, 4);
            let full = m.forward(&x, 0, None).unwrap(); // (B, T, V)
            let mut cache = KvCache::new(&m, 2, 12, Device::Cpu);
            let _im = inference.then(runtime::InferenceMode::enter);
            // Prefill 5 tokens, then a chunk of 3, then one at a time.
            let mut parts = vec![m.forward(&x.narrow(1, 0, 5), 0, Some(&mut cache)).unwrap()];
            parts.push(m.forward(&x.narrow(1, 5, 3), 5, Some(&mut cache)).unwrap());
            for p in 8..12 {
                parts.push(
                    m.forward(&x.narrow(1, p, 1), p as usize, Some(&mut cache))
                        .unwrap(),
                );
            }
            let cached = Tensor::cat(&parts, 1);
            let d = max_abs_diff(&full, &cached);
            assert!(
                d < 1e-4,
                "{attention:?} {:?} inference {inference}: {d}",
                cfg.pos_emb
            );
            assert_eq!(cache.len(), 12);
        }
    }
}

/// A GQA model equals the MHA model whose KV heads are the GQA heads repeated:
/// each KV head serves `rep` consecutive query heads.
#[test]
fn gqa_equals_mha_with_repeated_kv_heads() {
    for attention in [AttnKernel::Naive, AttnKernel::Sdpa] {
        let gqa_cfg = ModelConfig::llama_tiny(); // 4 heads, 2 KV heads
        let (gvs, gqa) = build_with(&gqa_cfg, &kernel(attention), 6);
        let mha_cfg = ModelConfig {
            n_kv_heads: gqa_cfg.n_head,
            ..gqa_cfg.clone()
        };
        let (mvs, mha) = build_with(&mha_cfg, &kernel(attention), 7);
        let hs = gqa_cfg.head_dim() as i64;
        let (nh, nkv, d) = (
            gqa_cfg.n_head as i64,
            gqa_cfg.n_kv_heads as i64,
            gqa_cfg.n_embd as i64,
        );
        let rep = nh / nkv;
        let gv = gvs.variables();
        tch::no_grad(|| {
            for (name, mut var) in mvs.variables() {
                let src = &gv[&name];
                if name.ends_with("attn.c_attn.weight") {
                    let p = src.split_with_sizes([nh * hs, nkv * hs, nkv * hs], 0);
                    let expand = |w: &Tensor| {
                        w.view([nkv, hs, d])
                            .repeat_interleave_self_int(rep, 0, None)
                            .view([nh * hs, d])
                    };
                    var.copy_(&Tensor::cat(
                        &[p[0].shallow_clone(), expand(&p[1]), expand(&p[2])],
                        0,
                    ));
                } else {
                    var.copy_(src);
                }
            }
        });
        let x = random_ids(gqa_cfg.vocab_size, 2, 9, 8);
        let d1 = max_abs_diff(
            &gqa.forward(&x, 0, None).unwrap(),
            &mha.forward(&x, 0, None).unwrap(),
        );
        assert!(d1 < 1e-5, "{attention:?}: full forward differs by {d1}");
        // Decode path (T = 1 over a cache) too.
        let ids = [7, 8, 9, 10, 3, 1, 4, 1, 5, 9, 2, 6];
        let d2 = max_abs_diff(
            &cached_decode_logits(&gqa, &ids),
            &cached_decode_logits(&mha, &ids),
        );
        assert!(d2 < 1e-5, "{attention:?}: decode differs by {d2}");
        // And the cache shrinks by n_head / n_kv_heads.
        let (cg, cm) = (
            KvCache::new(&gqa, 1, 32, Device::Cpu),
            KvCache::new(&mha, 1, 32, Device::Cpu),
        );
        assert_eq!(cg.bytes() * rep as usize, cm.bytes());
    }
}

#[test]
fn n_kv_heads_equal_n_head_is_mha() {
    // With n_kv_heads == n_head the GQA code path is plain MHA: same as the naive kernel,
    // with no repetition, on prefill and on single-token decode.
    let cfg = ModelConfig::gpt2_tiny();
    assert_eq!(cfg.n_kv_heads, cfg.n_head);
    let (vs, sdpa) = build_with(&cfg, &kernel(AttnKernel::Sdpa), 9);
    let (_v2, naive) = rebuild(&vs, &cfg, &kernel(AttnKernel::Naive));
    let ids = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    let d = max_abs_diff(
        &cached_decode_logits(&sdpa, &ids),
        &cached_decode_logits(&naive, &ids),
    );
    assert!(d < 1e-5, "single-token decode: SDPA vs naive differ by {d}");
}

#[test]
fn rope_at_offset_equals_slice_of_full() {
    let rope = Rope::new(16, 64, 10000.0, Device::Cpu);
    tch::manual_seed(10);
    let x = Tensor::randn([2, 3, 20, 16], (Kind::Float, Device::Cpu));
    let full = rope.apply(&x, 0);
    for p in [1usize, 7, 19] {
        let part = rope.apply(&x.narrow(2, p as i64, 20 - p as i64), p);
        assert!(max_abs_diff(&part, &full.narrow(2, p as i64, 20 - p as i64)) < 1e-6);
    }
    // Position 0 is the identity, and the rotation keeps each pair's norm.
    assert!(max_abs_diff(&full.narrow(2, 0, 1), &x.narrow(2, 0, 1)) < 1e-6);
    let n = |t: &Tensor| t.square().sum_dim_intlist(-1, false, Kind::Float);
    assert!(max_abs_diff(&n(&full), &n(&x)) < 1e-4);
}

fn assert_same_vars(a: &nn::VarStore, b: &nn::VarStore) {
    let (va, vb) = (a.variables(), b.variables());
    assert_eq!(va.len(), vb.len());
    for (k, t) in va {
        assert!(t.equal(&vb[&k]), "{k} differs after the round trip");
    }
}

#[test]
fn save_load_round_trip_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut mixed = ModelConfig::gpt2_tiny();
    mixed.norm = model::NormKind::RmsNorm;
    mixed.tie_embeddings = false;
    let cases = [
        (ModelConfig::gpt2_tiny(), true),
        (ModelConfig::llama_tiny(), true),
        (
            ModelConfig {
                tie_embeddings: true,
                ..ModelConfig::llama_tiny()
            },
            true,
        ),
        (mixed, false),
    ];
    for (i, (cfg, hub)) in cases.into_iter().enumerate() {
        let (vs, m) = build(&cfg, 11 + i as i64);
        let x = random_ids(cfg.vocab_size, 1, 8, 12);
        let before = m.forward(&x, 0, None).unwrap();
        let mut layouts = vec![("native", io::Layout::Native)];
        if hub {
            layouts.push((
                "hf",
                io::Layout::Hf(model::hf::HfArch::for_config(&cfg).unwrap()),
            ));
        }
        for (name, layout) in layouts {
            let path = dir.path().join(format!("{i}-{name}"));
            match layout {
                io::Layout::Native => io::save_native(&vs, &cfg, &path).unwrap(),
                io::Layout::Hf(_) => io::save_hf(&vs, &cfg, &path).unwrap(),
            }
            let loaded = io::load(&path, &RunSettings::default(), Device::Cpu).unwrap();
            assert_eq!(loaded.layout, layout);
            assert_eq!(loaded.model.cfg.n_kv_heads, cfg.n_kv_heads);
            assert_same_vars(&vs, &loaded.vs);
            let same =
                io::load_as(&path, layout, &cfg, &RunSettings::default(), Device::Cpu).unwrap();
            assert!(same.model.forward(&x, 0, None).unwrap().equal(&before));
        }
    }
}
