//! Sliding-window attention (Mistral): W ≥ context is full attention; SDPA == naive; cached
//! prefill + decode (full-length cache and rolling buffer of W slots) == the full forward
//! with the window mask; one layer's output at position i depends on the last W tokens only;
//! window 0 is a config error naming the key.
mod common;
use common::{max_abs_diff, random_ids};
use model::{AttnKernel, Gpt, KvCache, ModelConfig, RunSettings};
use tch::{nn, Device, Tensor};

fn windowed(w: Option<usize>) -> ModelConfig {
    ModelConfig {
        sliding_window: w,
        ..ModelConfig::llama_tiny()
    }
}

fn build(cfg: &ModelConfig, kernel: AttnKernel, seed: i64) -> (nn::VarStore, Gpt) {
    tch::manual_seed(seed);
    let vs = nn::VarStore::new(Device::Cpu);
    let m = Gpt::new(&vs.root(), cfg, &RunSettings::default().with_kernel(kernel)).unwrap();
    (vs, m)
}

/// `cfg` with the weights of `vs`, run with `kernel`.
fn same_weights(vs: &nn::VarStore, cfg: &ModelConfig, kernel: AttnKernel) -> (nn::VarStore, Gpt) {
    let (mut vs2, m) = build(cfg, kernel, 0);
    vs2.copy(vs).unwrap();
    (vs2, m)
}

const KERNELS: [AttnKernel; 2] = [AttnKernel::Naive, AttnKernel::Sdpa];

#[test]
fn window_at_least_the_context_is_full_attention() {
    let x = random_ids(256, 2, 17, 1);
    for kernel in KERNELS {
        let (vs, full) = build(&windowed(None), kernel, 2);
        let a = full.forward(&x, 0, None).unwrap();
        for w in [17, 18, 64] {
            let (_v, m) = same_weights(&vs, &windowed(Some(w)), kernel);
            let d = max_abs_diff(&a, &m.forward(&x, 0, None).unwrap());
            assert!(d < 1e-6, "{kernel:?} W={w}: {d}");
        }
        // A window shorter than the context changes the output (so the above can fail).
        let (_v, m) = same_weights(&vs, &windowed(Some(4)), kernel);
        assert!(max_abs_diff(&a, &m.forward(&x, 0, None).unwrap()) > 1e-4);
    }
}

#[test]
fn sdpa_equals_naive_with_a_window() {
    let x = random_ids(256, 2, 20, 3);
    let (vs, naive) = build(&windowed(Some(5)), AttnKernel::Naive, 4);
    let (_v, sdpa) = same_weights(&vs, &windowed(Some(5)), AttnKernel::Sdpa);
    let d = max_abs_diff(
        &naive.forward(&x, 0, None).unwrap(),
        &sdpa.forward(&x, 0, None).unwrap(),
    );
    assert!(d < 1e-5, "{d}");
}

#[test]
fn one_layer_sees_exactly_the_last_w_tokens() {
    let cfg = ModelConfig {
        n_layer: 1,
        ..windowed(Some(4))
    };
    for kernel in KERNELS {
        let (_vs, m) = build(&cfg, kernel, 5);
        let x = random_ids(256, 1, 12, 6);
        let full = m.forward_last(&x, 0, None).unwrap();
        // The same last 4 tokens at their positions, alone.
        let tail = m.forward_last(&x.narrow(1, 8, 4), 8, None).unwrap();
        assert!(max_abs_diff(&full, &tail) < 1e-5, "{kernel:?}");
        // Adding the fifth-last token changes nothing: the window is W, not W + 1.
        let five = m.forward_last(&x.narrow(1, 7, 5), 7, None).unwrap();
        assert!(
            max_abs_diff(&five, &tail) < 1e-5,
            "{kernel:?}: the 5th-last token leaked"
        );
        let y = x.copy();
        let _ = y.narrow(1, 8, 1).fill_(3); // change a token inside the window
        assert!(max_abs_diff(&full, &m.forward_last(&y, 0, None).unwrap()) > 1e-5);
        let z = x.copy();
        let _ = z.narrow(1, 0, 8).fill_(3); // change every token outside it
        assert!(max_abs_diff(&full, &m.forward_last(&z, 0, None).unwrap()) < 1e-5);
    }
}

/// Prefill 5, a chunk of 7 (longer than W), a chunk of 3, then one at a time to 24.
fn cached(m: &Gpt, x: &Tensor, cache: &mut KvCache) -> Tensor {
    let mut parts = vec![m.forward(&x.narrow(1, 0, 5), 0, Some(&mut *cache)).unwrap()];
    parts.push(m.forward(&x.narrow(1, 5, 7), 5, Some(&mut *cache)).unwrap());
    parts.push(
        m.forward(&x.narrow(1, 12, 3), 12, Some(&mut *cache))
            .unwrap(),
    );
    for p in 15..24 {
        parts.push(
            m.forward(&x.narrow(1, p, 1), p as usize, Some(&mut *cache))
                .unwrap(),
        );
    }
    Tensor::cat(&parts, 1)
}

#[test]
fn cached_decode_equals_the_windowed_full_forward() {
    let cfg = windowed(Some(6));
    for kernel in KERNELS {
        let (_vs, m) = build(&cfg, kernel, 7);
        let x = random_ids(256, 2, 24, 8);
        let full = m.forward(&x, 0, None).unwrap();
        // Room for 24 positions: a rolling buffer of 6 slots.
        let mut rolling = KvCache::new(&m, 2, 24, Device::Cpu);
        assert!(rolling.is_rolling() && rolling.slots() == 6);
        let d = max_abs_diff(&full, &cached(&m, &x, &mut rolling));
        assert!(d < 1e-4, "{kernel:?} rolling: {d}");
        assert_eq!(rolling.len(), 24);
        // The same with a window as long as the cache: a plain cache and the mask.
        let (_v, m2) = build(&windowed(Some(24)), kernel, 7);
        let mut plain = KvCache::new(&m2, 2, 24, Device::Cpu);
        assert!(!plain.is_rolling());
        let d = max_abs_diff(
            &m2.forward(&x, 0, None).unwrap(),
            &cached(&m2, &x, &mut plain),
        );
        assert!(d < 1e-4, "{kernel:?} plain: {d}");
        // Greedy generation through the rolling cache: crates/infer/tests/generate.rs.
    }
}

#[test]
fn the_rolling_cache_is_bounded_by_the_window() {
    let (_vs, full) = build(&windowed(None), AttnKernel::Sdpa, 9);
    let (_vs2, win) = build(&windowed(Some(16)), AttnKernel::Sdpa, 9);
    let a = KvCache::new(&full, 1, 64, Device::Cpu);
    let b = KvCache::new(&win, 1, 64, Device::Cpu);
    assert_eq!(b.bytes() * 4, a.bytes());
    assert_eq!((b.slots(), b.capacity()), (16, 64));
    // Asked for no more than W positions, it is a plain cache.
    let c = KvCache::new(&win, 1, 10, Device::Cpu);
    assert!(!c.is_rolling() && c.slots() == 10);
}

#[test]
fn window_zero_is_an_error_naming_the_key() {
    let mut v = serde_json::to_value(windowed(Some(8))).unwrap();
    assert_eq!(v["sliding_window"], 8);
    assert!(serde_json::to_value(windowed(None))
        .unwrap()
        .get("sliding_window")
        .is_none());
    v["sliding_window"] = serde_json::json!(0);
    let e = ModelConfig::from_json_value(v).unwrap_err().to_string();
    assert!(
        e.contains("sliding_window") && e.contains("at least 1"),
        "{e}"
    );
    assert!(Gpt::new(
        &nn::VarStore::new(Device::Cpu).root(),
        &windowed(Some(0)),
        &RunSettings::default()
    )
    .is_err());
}
