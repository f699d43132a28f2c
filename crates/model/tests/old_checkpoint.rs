//! A native checkpoint written before the architecture / run-settings split (its
//! `config.json` still holds `attention`, `dtype` and `dropout`) loads, and gives the logits
//! the code of that time computed for it (`native_v0_expected.safetensors`, written with
//! the same weights by the pre-split `Gpt::forward`, naive attention, fp32), to within float
//! rounding.
use model::{io, AttnKernel, RunSettings};
use std::path::Path;
use tch::{Device, Tensor};

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"))
}

fn expected() -> (Tensor, Tensor) {
    let t = Tensor::read_safetensors(fixtures().join("native_v0_expected.safetensors")).unwrap();
    let get = |k: &str| t.iter().find(|(n, _)| n == k).unwrap().1.shallow_clone();
    (get("ids"), get("logits"))
}

#[test]
fn pre_split_checkpoint_loads_with_identical_logits() {
    let dir = fixtures().join("native_v0");
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
    for k in RunSettings::KEYS {
        assert!(
            text.contains(&format!("\"{k}\"")),
            "the fixture must hold '{k}'"
        );
    }
    let (layout, cfg) = io::read_config(&dir).unwrap();
    assert_eq!(layout, io::Layout::Native);
    assert_eq!((cfg.n_layer, cfg.n_embd, cfg.vocab_size), (2, 32, 64));
    let (ids, want) = expected();
    // The kernel it was run with then: equal to within float rounding (bit-identical until
    // the GELU became our own kernel, which rounds differently from libtorch's tanh).
    let naive = RunSettings::default().with_kernel(AttnKernel::Naive);
    let m = io::load(&dir, &naive, Device::Cpu).unwrap().model;
    let got = tch::no_grad(|| m.forward(&ids, 0, None).unwrap());
    let d = (&got - &want).abs().max().double_value(&[]);
    assert!(
        d < 1e-5,
        "naive logits differ from the pre-split ones by {d}"
    );
    // Another kernel on the same weights: equal within float rounding.
    let m = io::load(&dir, &RunSettings::default(), Device::Cpu)
        .unwrap()
        .model;
    let got = tch::no_grad(|| m.forward(&ids, 0, None).unwrap());
    let d = (got - &want).abs().max().double_value(&[]);
    assert!(d < 1e-5, "sdpa logits differ by {d}");
}

#[test]
fn re_saving_drops_the_run_settings() {
    let dir = fixtures().join("native_v0");
    let loaded = io::load(&dir, &RunSettings::default(), Device::Cpu).unwrap();
    let out = tempfile::tempdir().unwrap();
    io::save_native(&loaded.vs, &loaded.model.cfg, out.path()).unwrap();
    let text = std::fs::read_to_string(out.path().join("config.json")).unwrap();
    for k in RunSettings::KEYS {
        assert!(!text.contains(&format!("\"{k}\"")), "'{k}' in {text}");
    }
    let (_, again) = io::read_config(out.path()).unwrap();
    assert_eq!(again, loaded.model.cfg);
}
