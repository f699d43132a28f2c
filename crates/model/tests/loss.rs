//! The chunked and the fused cross-entropy (`model::loss`, issue #16) equal the plain one —
//! value and gradients — for any block size and at every kernel level this CPU has, in f32
//! and with bf16 matmuls, and the model's training loss (which uses them) equals `Gpt::loss`
//! with the same gradients on every parameter.
mod common;
use common::max_abs_diff;
use model::loss::{chunked_cross_entropy_rows, fused_cross_entropy};
use model::{Gpt, ModelConfig, RunSettings};
use runtime::DType;
use tch::{nn, Device, Kind, Tensor};

/// Held by the tests that set the fused kernel's level (process-wide; tests run in threads).
static KERNEL_LEVEL: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    let _level = KERNEL_LEVEL.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(3);
    let (n, c, v) = (10, 8, 17);
    let h = Tensor::randn([n, c], (Kind::Float, Device::Cpu));
    let w = Tensor::randn([v, c], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(v, [n], (Kind::Int64, Device::Cpu));
    let (l0, dh0, dw0) = value_and_grads(|h, w| plain(h, w, &y, Kind::Float), &h, &w);
    // Each block through the fused kernel (at its best level, then AVX2) and, with the
    // kernel off, through tensor ops; the last level set is the default again.
    for level in [1, 0, 2] {
        runtime::xent::set_max_level(level);
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
fn fused_cross_entropy_equals_the_plain_one_at_every_kernel_level() {
    let _level = KERNEL_LEVEL.lock().unwrap_or_else(|e| e.into_inner());
    if runtime::xent::level().is_none() {
        eprintln!("no AVX2 on this CPU: the fused loss declines (checked in runtime's tests)");
        return;
    }
    let avx512 = runtime::xent::level() == Some("AVX-512");
    tch::manual_seed(5);
    // V = 17 and 67: a tail after the 8- or 16-wide vectors; 64: none. h × 30: logits of a
    // few hundred, where exp without the max subtracted would overflow.
    for (v, gain) in [(17, 1.0), (64, 1.0), (67, 30.0)] {
        let (n, c) = (10, 8);
        let h = Tensor::randn([n, c], (Kind::Float, Device::Cpu)) * gain;
        let w = Tensor::randn([v, c], (Kind::Float, Device::Cpu));
        let y = Tensor::randint(v, [n], (Kind::Int64, Device::Cpu));
        for avx2 in [false, true] {
            if avx2 && !avx512 {
                continue; // the AVX2 kernel is the only one here: already run
            }
            runtime::xent::set_max_level(if avx2 { 1 } else { 2 });
            // f32: the same loss and gradients as libtorch's to float rounding.
            let (l0, dh0, dw0) = value_and_grads(|h, w| plain(h, w, &y, Kind::Float), &h, &w);
            let (l, dh, dw) = value_and_grads(
                |h, w| fused_cross_entropy(h, w, &y, Kind::Float).expect("fused applies"),
                &h,
                &w,
            );
            let tol = 1e-5 * l0.abs().max(1.0);
            assert!((l - l0).abs() < tol, "V {v}, avx2 {avx2}: {l} vs {l0}");
            for (name, a, b) in [("∂h", &dh, &dh0), ("∂W", &dw, &dw0)] {
                let scale = b.abs().max().double_value(&[]).max(1e-3);
                assert!(
                    max_abs_diff(a, b) < 1e-5 * scale,
                    "V {v}, avx2 {avx2}: {name} {} (largest {scale})",
                    max_abs_diff(a, b)
                );
            }
            // bf16 matmuls, the gradient written in bf16: within bf16 rounding.
            let (l0, dh0, dw0) = value_and_grads(|h, w| plain(h, w, &y, Kind::BFloat16), &h, &w);
            let (l, dh, dw) = value_and_grads(
                |h, w| fused_cross_entropy(h, w, &y, Kind::BFloat16).expect("fused applies"),
                &h,
                &w,
            );
            assert!(
                (l - l0).abs() < 1e-3 * l0.abs().max(1.0),
                "bf16 V {v}: {l} vs {l0}"
            );
            for (name, a, b) in [("∂h", &dh, &dh0), ("∂W", &dw, &dw0)] {
                let scale = b.abs().max().double_value(&[]).max(1e-3);
                assert!(
                    max_abs_diff(a, b) < 2e-2 * scale,
                    "bf16 V {v}, avx2 {avx2}: {name} {} (largest {scale})",
                    max_abs_diff(a, b)
                );
            }
        }
        runtime::xent::set_max_level(2);
    }
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
