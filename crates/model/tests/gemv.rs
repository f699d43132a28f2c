//! Decode kernels (`model::gemv`): every single-row kernel and weight layout gives the same
//! decode logits, and a model saved after a layout change holds the same bytes.
use model::gemv::{force_for_decode, tune_for_decode, RowKernel};
use model::{Gpt, KvCache, ModelConfig, RunSettings};
use tch::{nn, Device, Tensor};

/// Logits of a cached prefill of 5 tokens, then of one decode step, under inference mode.
fn decode_logits(m: &Gpt) -> (Tensor, Tensor) {
    let _im = runtime::InferenceMode::enter();
    let mut cache = KvCache::new(m, 1, 8, Device::Cpu);
    let ids = Tensor::from_slice(&[3i64, 1, 4, 1, 5]).view([1, 5]);
    let a = m.forward(&ids, 0, Some(&mut cache)).unwrap();
    let b = m
        .forward(
            &Tensor::from_slice(&[9i64]).view([1, 1]),
            5,
            Some(&mut cache),
        )
        .unwrap();
    (a.copy(), b.copy())
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn every_row_kernel_and_layout_gives_the_same_logits_and_saved_bytes() {
    let mut cfg = ModelConfig::gpt2_tiny();
    cfg.n_embd = 256; // c_fc (1024 × 256) is 1 MiB in f32: large enough to be tuned
    cfg.intermediate_size = 1024;
    cfg.vocab_size = 2048; // the tied head (2 MiB) moves into huge pages
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Gpt::new(&vs.root(), &cfg, &RunSettings::default()).unwrap();
    let (pre, step) = decode_logits(&m);
    let dir = tempfile::tempdir().unwrap();
    model::io::save_native(&vs, &cfg, &dir.path().join("before")).unwrap();
    for k in RowKernel::ALL {
        force_for_decode(&m, k); // the streaming gemv only where this CPU has it
        let col = match &m.h[0].mlp {
            model::layers::Mlp::Gelu(g) => g.c_fc.weight.stride() == [1, 1024],
            _ => unreachable!("gpt2_tiny has a GELU MLP"),
        };
        assert_eq!(
            col,
            matches!(k, RowKernel::MvColMajor | RowKernel::MmColMajor),
            "{k:?}"
        );
        let (p2, s2) = decode_logits(&m);
        assert!(
            max_diff(&pre, &p2) < 1e-4,
            "{k:?}: prefill differs by {}",
            max_diff(&pre, &p2)
        );
        assert!(
            max_diff(&step, &s2) < 1e-4,
            "{k:?}: decode differs by {}",
            max_diff(&step, &s2)
        );
    }
    // The tied head (2 MiB) now lives in huge-page memory (2 MiB-aligned), the embedding
    // with it.
    assert_eq!(
        m.wte.data_ptr() as usize % runtime::pages::HUGE_PAGE_BYTES,
        0
    );
    // Back on libtorch's own allocations and again in huge pages: the same logits.
    for huge in [false, true] {
        model::gemv::set_huge_pages(huge);
        force_for_decode(&m, RowKernel::MvRowMajor);
        let (p2, s2) = decode_logits(&m);
        assert!(
            max_diff(&pre, &p2) < 1e-4 && max_diff(&step, &s2) < 1e-4,
            "huge {huge}"
        );
    }
    force_for_decode(&m, RowKernel::MmColMajor);
    // Saved while column-major: the same bytes as before any layout change.
    model::io::save_native(&vs, &cfg, &dir.path().join("after")).unwrap();
    let read = |d: &str| std::fs::read(dir.path().join(d).join("model.safetensors")).unwrap();
    assert!(
        read("before") == read("after"),
        "a column-major weight was saved differently"
    );
    // Tuning picks one of the five for each shape of 1 MiB or more, and keeps the logits.
    let tuned = tune_for_decode(&m);
    assert!(
        tuned.iter().any(|t| (t.out, t.inp) == (1024, 256)),
        "{tuned:?}"
    );
    assert!(tuned
        .iter()
        .all(|t| t.us[..4].iter().all(|u| u.is_finite() && *u > 0.0)));
    assert_eq!(
        tuned.iter().all(|t| t.us[4].is_finite()),
        runtime::gemv::level().is_some(),
        "the streaming gemv is timed exactly where this CPU has it"
    );
    let (p3, s3) = decode_logits(&m);
    assert!(max_diff(&pre, &p3) < 1e-4 && max_diff(&step, &s3) < 1e-4);
}
