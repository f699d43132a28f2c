//! Weight-only quantization (`model::quant`): error bounds of int8 / int4, libtorch's kernels
//! against dequantize-then-matmul, the save/load round trip, stories260K under int8, bad input.
mod common;
use common::max_abs_diff;
use model::quant::{self, int4, int8, QLinear, Scheme};
use model::{io, Gpt, ModelConfig, RunSettings};
use runtime::resources::shared_resource;
use tch::{nn::Module, Device, Kind, Tensor};

fn weight(n: i64, k: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    let w = Tensor::randn([n, k], (Kind::Float, Device::Cpu)) * 0.05;
    // A few outliers, as real weights have.
    let _ = w.get(0).get(3).fill_(0.9);
    w
}

#[test]
fn int8_dequantize_error_is_at_most_half_a_step() {
    let w = weight(48, 96, 1);
    let _ = w.get(5).zero_(); // an all-zero row must not divide by zero
    let (q, s) = int8::quantize(&w, Kind::Float).unwrap();
    assert_eq!(
        (q.kind(), q.size(), s.size()),
        (Kind::Int8, vec![48, 96], vec![48])
    );
    let err = (int8::dequantize(&q, &s) - &w).abs(); // (N, K)
    let bound = s.unsqueeze(1) * 0.5 * (1.0 + 1e-6) + 1e-9;
    assert!(bool::try_from(err.le_tensor(&bound).all()).unwrap());
    // The bound is tight enough to mean something: the error is not zero.
    assert!(err.max().double_value(&[]) > 1e-5);
    assert_eq!(
        int8::dequantize(&q, &s)
            .get(5)
            .abs()
            .sum(Kind::Float)
            .double_value(&[]),
        0.0
    );
}

#[test]
fn int4_dequantize_error_is_at_most_half_a_step_per_group() {
    let w = weight(40, 256, 2);
    for g in [32, 64, 128] {
        for (kind, slack) in [(Kind::Float, 1e-6), (Kind::BFloat16, 1e-2)] {
            let (q, sz) = int4::quantize(&w, g, kind).unwrap();
            assert_eq!(sz.size(), vec![256 / g, 40, 2]);
            assert!(q.min().int64_value(&[]) >= 0 && q.max().int64_value(&[]) <= 15);
            let err = (int4::dequantize(&q, &sz, g) - &w).abs();
            let s = sz
                .to_kind(Kind::Float)
                .select(2, 0)
                .tr()
                .repeat_interleave_self_int(g, Some(1), None); // (N, K)
            let z = sz
                .to_kind(Kind::Float)
                .select(2, 1)
                .tr()
                .repeat_interleave_self_int(g, Some(1), None);
            // Half a step, plus (bf16 only) the rounding of scale and zero to the storage dtype.
            let bound = &s * 0.5 + (z.abs() + &s * 8.0) * slack + 1e-7;
            let worst = (&err - &bound).max().double_value(&[]);
            assert!(
                worst <= 0.0,
                "g{g} {kind:?}: error exceeds the bound by {worst}"
            );
        }
    }
}

#[test]
fn int4_nibbles_round_trip() {
    tch::manual_seed(3);
    let q = Tensor::randint(16, [8, 64], (Kind::Int, Device::Cpu));
    let p = int4::to_nibbles(&q);
    assert_eq!((p.kind(), p.size()), (Kind::Uint8, vec![8, 32]));
    assert!(int4::from_nibbles(&p).equal(&q));
}

/// `QLinear` on the CPU uses libtorch's kernel and agrees with `x Ŵᵀ` of its dequantized weight.
#[test]
fn kernels_agree_with_dequantize_then_matmul() {
    let schemes = [
        Scheme::Int8,
        Scheme::Int4 { group_size: 32 },
        Scheme::Int4 { group_size: 64 },
        Scheme::Int4 { group_size: 128 },
    ];
    for (n, k) in [(96, 256), (64, 172), (172, 64)] {
        let w = weight(n, k, 4);
        for scheme in schemes {
            for (kind, tol) in [(Kind::Float, 1e-4), (Kind::BFloat16, 2e-2)] {
                let q = QLinear::quantize(&w, scheme, kind, true).unwrap();
                assert!(q.uses_kernel(), "{scheme:?}: no CPU kernel");
                tch::manual_seed(5);
                let x = Tensor::randn([2, 3, k], (Kind::Float, Device::Cpu)).to_kind(kind);
                let y = q.forward(&x);
                assert_eq!((y.size(), y.kind()), (vec![2, 3, n], kind));
                assert!(q.uses_kernel(), "{scheme:?} {kind:?}: the kernel failed");
                let want = x.to_kind(Kind::Float).matmul(&q.dequantize().unwrap().tr());
                let scale = want.abs().max().double_value(&[]);
                let d = max_abs_diff(&y, &want) / scale;
                assert!(
                    d < tol,
                    "{scheme:?} {kind:?} ({n}, {k}): relative error {d}"
                );
                // Tiled codes read back through the kernel are the codes that were packed.
                if let Scheme::Int4 { group_size } = scheme {
                    let kp = (k + group_size - 1) / group_size * group_size;
                    let np = (n + 15) / 16 * 16;
                    let wp = w.constant_pad_nd([0, kp - k, 0, np - n]);
                    let (codes, _) = int4::quantize(&wp, group_size, kind).unwrap();
                    assert!(int4::from_nibbles(&q.saved_codes().unwrap()).equal(&codes));
                }
            }
        }
    }
}

fn stories() -> Option<std::path::PathBuf> {
    shared_resource("models/stories260K").unwrap()
}

fn reference(dir: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn quantized_stories(scheme: Scheme) -> Option<io::Loaded> {
    let dir = stories()?;
    let mut loaded = io::load(&dir, &RunSettings::default(), Device::Cpu).unwrap();
    quant::quantize_model(&mut loaded.model, scheme, true).unwrap();
    Some(loaded)
}

#[test]
fn save_load_round_trip_is_bit_identical() {
    for scheme in [Scheme::Int8, Scheme::Int4 { group_size: 32 }] {
        let Some(mut a) = quantized_stories(scheme) else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let (d1, d2) = (tmp.path().join("a"), tmp.path().join("b"));
        let qf = quant::save(&a.vs, &mut a.model, &d1).unwrap();
        assert_eq!(qf.scheme, scheme);
        assert_eq!(qf.layers.len(), 5 * 5 + 1); // 5 layers × (qkv, o, gate, up, down) + head
        let (mut b, qf_b) = quant::load(&d1, &RunSettings::default(), Device::Cpu).unwrap();
        assert_eq!(qf, qf_b);
        let x = Tensor::from_slice(&[1i64, 400, 30, 7, 99]).unsqueeze(0);
        let (la, lb) = (
            a.model.forward(&x, 0, None).unwrap(),
            b.model.forward(&x, 0, None).unwrap(),
        );
        assert!(la.equal(&lb), "{scheme:?}: logits differ after save/load");
        quant::save(&b.vs, &mut b.model, &d2).unwrap();
        for f in ["model.safetensors", "config.json", "quant.json"] {
            let (x, y) = (
                std::fs::read(d1.join(f)).unwrap(),
                std::fs::read(d2.join(f)).unwrap(),
            );
            assert!(x == y, "{scheme:?}: {f} differs after a second save");
        }
        for (name, lin) in quant::linears(&b.model) {
            let q = lin.quant.as_ref().unwrap();
            assert!(q.uses_kernel(), "{scheme:?}: {name} has no CPU kernel");
        }
        let bytes = quant::weight_bytes(&b.vs, &b.model);
        assert_eq!(
            bytes.total() as usize,
            quant::planned_weight_bytes(&b.model.cfg, scheme, 4)
        );
        let dense = quant::weight_bytes(
            &io::load(&stories().unwrap(), &RunSettings::default(), Device::Cpu)
                .unwrap()
                .vs,
            &io::load(&stories().unwrap(), &RunSettings::default(), Device::Cpu)
                .unwrap()
                .model,
        );
        assert!(
            bytes.matmul < dense.matmul / 3,
            "{scheme:?}: {bytes:?} vs dense {dense:?}"
        );
    }
}

/// Quality on stories260K, measured along the unquantized greedy continuation of BOS (the
/// 60 ids llama2.c produced; parity.rs): how many leading greedy ids the quantized model
/// reproduces, top-1 agreement with the sequence teacher-forced, and the mean KL(dense ‖ quantized).
fn stories_agreement(scheme: Scheme) -> Option<(usize, f64, f64)> {
    let m = quantized_stories(scheme)?;
    let r = reference(&stories().unwrap());
    let (prompt, want) = (ids(&r["prompt_token_ids"]), ids(&r["greedy_60"]));
    let seq: Vec<i64> = prompt.iter().chain(&want).copied().collect();
    let x = Tensor::from_slice(&seq[..seq.len() - 1]).unsqueeze(0);
    // Greedy reproduces `want` exactly as long as the argmax at each position of the
    // teacher-forced sequence is the next id of `want`: the leading run of those is the
    // greedy prefix, without a generation loop here (that one is `infer`'s).
    let next: Vec<i64> = Vec::try_from(
        m.model
            .forward(&x, 0, None)
            .unwrap()
            .argmax(-1, false)
            .squeeze_dim(0)
            .narrow(0, prompt.len() as i64 - 1, want.len() as i64),
    )
    .unwrap();
    let prefix = next.iter().zip(&want).take_while(|(a, b)| a == b).count();
    let dense = io::load(&stories().unwrap(), &RunSettings::default(), Device::Cpu)
        .unwrap()
        .model;
    let p = dense
        .forward(&x, 0, None)
        .unwrap()
        .log_softmax(-1, Kind::Float); // (1, T, V)
    let q = m
        .model
        .forward(&x, 0, None)
        .unwrap()
        .log_softmax(-1, Kind::Float);
    let top1 = p
        .argmax(-1, false)
        .eq_tensor(&q.argmax(-1, false))
        .to_kind(Kind::Float)
        .mean(Kind::Float);
    let kl = (p.exp() * (&p - &q))
        .sum_dim_intlist(-1, false, Kind::Float)
        .max();
    Some((prefix, top1.double_value(&[]), kl.double_value(&[])))
}

/// What int8 keeps of stories260K (measured when this test was written: greedy prefix 0/60,
/// teacher-forced top-1 0.917, mean KL 0.26 nats). The 260K-parameter model is fragile: the
/// first greedy step from BOS is a near tie (logits 9.49 vs 9.38) that int8's ~0.1 logit
/// noise flips, so free-running greedy ids part at once; the test guards the measured
/// agreement (top-1 ≥ 0.9, KL < 0.5) and that int4 loses more than int8. Dequantized weights
/// in the dense model give the same KL, so the loss is the rounding, not the kernel.
#[test]
fn stories260k_int8_agrees_with_unquantized() {
    let Some((prefix, top1, kl)) = stories_agreement(Scheme::Int8) else {
        return;
    };
    eprintln!("int8: greedy prefix {prefix}/60, teacher-forced top-1 {top1:.4}, mean KL {kl:.2e}");
    assert!(top1 >= 0.9, "top-1 agreement {top1}");
    assert!(kl < 0.5, "mean KL {kl}");
    let (prefix4, top4, kl4) = stories_agreement(Scheme::Int4 { group_size: 32 }).unwrap();
    eprintln!(
        "int4_g32: greedy prefix {prefix4}/60, teacher-forced top-1 {top4:.4}, mean KL {kl4:.2e}"
    );
    assert!(kl4 > kl, "int4 should lose more than int8");
}

#[test]
fn bad_input_is_a_clear_error() {
    let err = |r: anyhow::Result<QLinear>| format!("{:#}", r.unwrap_err());
    let w = weight(8, 96, 6);
    let e = err(QLinear::quantize(
        &w,
        Scheme::Int4 { group_size: 64 },
        Kind::Float,
        false,
    ));
    assert!(
        e.contains("group size 64 does not divide the input width 96"),
        "{e}"
    );
    let e = err(QLinear::quantize(
        &w,
        Scheme::Int4 { group_size: 48 },
        Kind::Float,
        true,
    ));
    assert!(e.contains("group size 48 is not supported"), "{e}");
    let e = err(QLinear::quantize(
        &w.to_kind(Kind::Int),
        Scheme::Int8,
        Kind::Float,
        true,
    ));
    assert!(e.contains("dtype") && e.contains("not supported"), "{e}");
    let e = err(QLinear::quantize(
        &w.view([2, 4, 96]),
        Scheme::Int8,
        Kind::Float,
        true,
    ));
    assert!(e.contains("2-D"), "{e}");
    let e = format!("{:#}", Scheme::parse("int8", Some(32)).unwrap_err());
    assert!(e.contains("--group-size 32"), "{e}");
    let e = format!("{:#}", Scheme::parse("int3", None).unwrap_err());
    assert!(e.contains("expected int8 or int4"), "{e}");
    assert!(Scheme::parse("int4", Some(100)).is_err());

    // A model whose widths the group size does not divide, without padding: names the layer.
    let cfg = ModelConfig::preset("llama_tiny").unwrap();
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let mut m = Gpt::new(&vs.root(), &cfg, &RunSettings::default()).unwrap();
    let g = [32, 64, 128, 256]
        .into_iter()
        .find(|g| cfg.n_embd as i64 % g != 0)
        .unwrap();
    let e = format!(
        "{:#}",
        quant::quantize_model(&mut m, Scheme::Int4 { group_size: g }, false).unwrap_err()
    );
    assert!(
        e.contains("h.0.attn.c_attn.weight") && e.contains("does not divide"),
        "{e}"
    );
    quant::quantize_model(&mut m, Scheme::Int8, false).unwrap();
    let e = format!(
        "{:#}",
        quant::quantize_model(&mut m, Scheme::Int8, false).unwrap_err()
    );
    assert!(e.contains("already quantized"), "{e}");

    // A folder without quant.json.
    let tmp = tempfile::tempdir().unwrap();
    io::save_native(&tch::nn::VarStore::new(Device::Cpu), &cfg, tmp.path()).unwrap();
    let e = format!(
        "{:#}",
        quant::load(tmp.path(), &RunSettings::default(), Device::Cpu)
            .err()
            .unwrap()
    );
    assert!(e.contains("quant.json"), "{e}");
}
