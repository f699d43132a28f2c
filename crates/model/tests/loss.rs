//! The chunked cross-entropy (`model::loss`, issue #16) equals the plain one — value and
//! gradients — for any block size, in f32 and with bf16 matmuls, and the model's training
//! loss (which uses it) equals `Gpt::loss` with the same gradients on every parameter.
mod common;
use common::max_abs_diff;
use model::loss::chunked_cross_entropy_rows;
use model::{Gpt, ModelConfig, RunSettings};
use runtime::DType;
use tch::{nn, Device, Kind, Tensor};

/// Plain CE through the full logits, as `Gpt::loss`: matmul in `k`, softmax in f32.
fn plain(h: &Tensor, w: &Tensor, y: &Tensor, k: Kind) -> Tensor {
    h.to_kind(k)
        .matmul(&w.to_kind(k).tr())
        .to_kind(Kind::Float)
        .cross_entropy_for_logits(y)
}

fn value_and_grads(
    f: impl Fn(&Tensor, &Tensor) -> Tensor,
    h: &Tensor,
    w: &Tensor,
) -> (f64, Tensor, Tensor) {
    let (h, w) = (
        h.detach().set_requires_grad(true),
        w.detach().set_requires_grad(true),
    );
    let l = f(&h, &w);
    l.backward();
    (l.double_value(&[]), h.grad().copy(), w.grad().copy())
}

#[test]
fn chunked_cross_entropy_equals_the_plain_one_for_any_block() {
    tch::manual_seed(3);
    let (n, c, v) = (10, 8, 17);
    let h = Tensor::randn([n, c], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([v, c], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(v, [n], (Kind::Int64, Device::Cpu));
    let (l0, dh0, dw0) = value_and_grads(|h, w| plain(h, w, &y, Kind::Float), &h, &w);
    for rows in [1, 3, 4, 10, 64] {
        let (l, dh, dw) = value_and_grads(
            |h, w| chunked_cross_entropy_rows(h, w, &y, Kind::Float, rows),
            &h,
            &w,
        );
        assert!((l - l0).abs() < 1e-5, "rows {rows}: {l} vs {l0}");
        assert!(
            max_abs_diff(&dh, &dh0) < 1e-6,
            "rows {rows}: ∂h {}",
            max_abs_diff(&dh, &dh0)
        );
        assert!(
            max_abs_diff(&dw, &dw0) < 1e-6,
            "rows {rows}: ∂W {}",
            max_abs_diff(&dw, &dw0)
        );
    }
    // bf16 matmuls: within bf16 rounding of the plain bf16 path.
    let (l0, dh0, dw0) = value_and_grads(|h, w| plain(h, w, &y, Kind::BFloat16), &h, &w);
    let (l, dh, dw) = value_and_grads(
        |h, w| chunked_cross_entropy_rows(h, w, &y, Kind::BFloat16, 3),
        &h,
        &w,
    );
    assert!((l - l0).abs() < 1e-3, "{l} vs {l0}");
    assert!(
        max_abs_diff(&dh, &dh0) < 2e-3,
        "∂h {}",
        max_abs_diff(&dh, &dh0)
    );
    assert!(
        max_abs_diff(&dw, &dw0) < 2e-3,
        "∂W {}",
        max_abs_diff(&dw, &dw0)
    );
}

#[test]
fn train_loss_equals_loss_with_the_same_gradients_tied_and_untied() {
    for tie in [true, false] {
        let cfg = ModelConfig {
            tie_embeddings: tie,
            ..ModelConfig::llama_tiny()
        };
        tch::manual_seed(4);
        let vs = nn::VarStore::new(Device::Cpu);
        let run = RunSettings::default().with_dtype(DType::Fp32);
        let m = Gpt::new(&vs.root(), &cfg, &run).unwrap();
        let x = Tensor::randint(cfg.vocab_size as i64, [2, 12], (Kind::Int64, Device::Cpu));
        let y = Tensor::randint(cfg.vocab_size as i64, [2, 12], (Kind::Int64, Device::Cpu));
        let grads = |l: Tensor| {
            for (_, v) in vs.variables() {
                if v.grad().defined() {
                    let _ = v.grad().zero_();
                }
            }
            l.backward();
            let mut g: Vec<(String, Tensor)> = vs
                .variables()
                .into_iter()
                .map(|(k, v)| (k, v.grad().copy()))
                .collect();
            g.sort_by(|a, b| a.0.cmp(&b.0));
            (l.double_value(&[]), g)
        };
        let (l0, g0) = grads(m.loss(&x, &y, false).unwrap());
        let (l1, g1) = grads(m.train_loss(&x, &y, false).unwrap().loss);
        assert!((l0 - l1).abs() < 1e-5, "tie {tie}: {l0} vs {l1}");
        for ((k, a), (_, b)) in g0.iter().zip(&g1) {
            assert!(
                max_abs_diff(a, b) < 1e-6,
                "tie {tie}: ∂{k} {}",
                max_abs_diff(a, b)
            );
        }
    }
}

#[test]
fn the_loss_is_chunked_only_when_the_logits_are_large() {
    use model::loss::{should_chunk, CHUNK_ABOVE_BYTES};
    // The speed preset's batch (8 × 256 tokens, GPT-2's vocabulary: 412 MB of f32 logits)
    // runs the plain loss; nanoGPT's GPT-2 batch (12 × 1,024: 2.5 GB) the chunked one.
    assert!(!should_chunk(8 * 256, 50304));
    assert!(should_chunk(12 * 1024, 50304));
    let rows = CHUNK_ABOVE_BYTES / (4 * 1000);
    assert!(!should_chunk(rows, 1000) && should_chunk(rows + 1, 1000));
}
