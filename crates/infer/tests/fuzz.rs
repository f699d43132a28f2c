//! Hostile model folders: mutated copies of the shared `gpt2-tiny` and `stories260K`
//! (the safetensors header's length, JSON, dtypes, shapes and offsets; truncation;
//! `config.json` sizes; weight values) fed to the `infer` binary. Each must end in a
//! non-zero exit whose message names the file (or key) at fault, or in a clean run whose
//! ids are all inside the vocabulary; never a panic, a signal, or garbage with exit 0.
//! Deterministic (fixed seeds) and bounded (a few dozen runs).
use std::path::Path;
use std::process::Command;

/// SplitMix64 (Steele et al. 2014): a fixed, dependency-free stream.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn base(name: &str) -> Option<std::path::PathBuf> {
    let p = runtime::resources::shared_resource(&format!("models/{name}")).unwrap();
    if p.is_none() {
        eprintln!("skipping: shared models/{name} missing");
    }
    p
}

/// The header (JSON) of a safetensors file and the byte offset where the data starts.
fn header(bytes: &[u8]) -> (serde_json::Map<String, serde_json::Value>, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let v: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (v.as_object().unwrap().clone(), 8 + n)
}

fn with_header(bytes: &[u8], h: &serde_json::Map<String, serde_json::Value>) -> Vec<u8> {
    let (_, data) = header(bytes);
    let mut j = serde_json::to_vec(h).unwrap();
    while !j.len().is_multiple_of(8) {
        j.push(b' ');
    }
    let mut out = (j.len() as u64).to_le_bytes().to_vec();
    out.extend(j);
    out.extend(&bytes[data..]);
    out
}

/// One mutation of `(config.json text, model.safetensors bytes)`, and its label.
fn mutate(rng: &mut Rng, cfg: &mut serde_json::Value, st: &mut Vec<u8>) -> String {
    let (mut h, data) = header(st);
    let names: Vec<String> = h.keys().filter(|k| *k != "__metadata__").cloned().collect();
    let name = names[rng.below(names.len())].clone();
    match rng.below(9) {
        0 => {
            let v: u64 = [0, 3, 1 << 40, u64::MAX, st.len() as u64][rng.below(5)];
            st[..8].copy_from_slice(&v.to_le_bytes());
            format!("header length {v}")
        }
        1 => {
            let i = 8 + rng.below(data - 8);
            st[i] = [b'{', b'"', b'9', b']', 0xff][rng.below(5)];
            format!("header byte {i}")
        }
        2 => {
            let dt = ["I32", "U8", "BOOL", "I64", "F8_E4M3", "Q4"][rng.below(6)];
            h[&name]["dtype"] = dt.into();
            *st = with_header(st, &h);
            format!("dtype of {name} = {dt}")
        }
        3 => {
            let shape = h[&name]["shape"].as_array().unwrap().clone();
            let mut s: Vec<i64> = shape.iter().map(|d| d.as_i64().unwrap()).collect();
            let i = rng.below(s.len().max(1));
            match s.get_mut(i) {
                Some(d) => *d = [0, *d + 1, *d * 2, 1 << 40][rng.below(4)],
                None => s.push(2),
            }
            h[&name]["shape"] = serde_json::json!(s);
            *st = with_header(st, &h);
            format!("shape of {name} = {s:?}")
        }
        4 => {
            let offs = h[&name]["data_offsets"].as_array().unwrap().clone();
            let e = offs[1].as_u64().unwrap();
            let new = [e + 4, e * 1000, u64::MAX][rng.below(3)];
            h[&name]["data_offsets"] = serde_json::json!([offs[0], new]);
            *st = with_header(st, &h);
            format!("data_offsets of {name} end {new}")
        }
        5 => {
            let n = rng.below(st.len());
            st.truncate(n);
            format!("truncated at {n}")
        }
        6 => {
            let keys = [
                "vocab_size",
                "n_embd",
                "n_layer",
                "n_head",
                "n_positions",
                "hidden_size",
                "intermediate_size",
                "num_hidden_layers",
                "num_attention_heads",
                "num_key_value_heads",
                "max_position_embeddings",
            ];
            let present: Vec<&str> = keys
                .iter()
                .copied()
                .filter(|k| cfg.get(*k).is_some())
                .collect();
            let k = present[rng.below(present.len())];
            let vals = [
                serde_json::json!(0),
                serde_json::json!(-1),
                serde_json::json!(1u64 << 40),
                serde_json::json!(1e300),
                serde_json::json!(3),
                serde_json::json!("64"),
                serde_json::Value::Null,
            ];
            let v = vals[rng.below(vals.len())].clone();
            cfg[k] = v.clone();
            format!("config.json {k} = {v}")
        }
        _ => {
            // Values: a float of the data section becomes NaN, ±inf, or huge but finite.
            let o = h[&name]["data_offsets"].as_array().unwrap();
            let (b, e) = (
                o[0].as_u64().unwrap() as usize,
                o[1].as_u64().unwrap() as usize,
            );
            let at = data + b + 4 * rng.below((e - b) / 4);
            let v = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 3e38, -3e38][rng.below(5)];
            st[at..at + 4].copy_from_slice(&v.to_le_bytes());
            format!("value in {name} = {v}")
        }
    }
}

fn check(dir: &Path, label: &str, vocab: u64) {
    let out = Command::new(env!("CARGO_BIN_EXE_infer"))
        .args(["--model", dir.to_str().unwrap()])
        .args([
            "--prompt-ids",
            "1,2",
            "--max-new-tokens",
            "4",
            "--temperature",
            "0",
        ])
        .args([
            "--threads",
            "1",
            "--device",
            "cpu",
            "--format",
            "json",
            "--kv-cache",
        ])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let code = out.status.code();
    assert!(code.is_some(), "{label}: killed by a signal\n{err}");
    assert!(
        code != Some(101) && !err.contains("panicked"),
        "{label}: panic\n{err}"
    );
    if out.status.success() {
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{label}: exit 0 without JSON ({e})"));
        for id in v["ids"][0].as_array().unwrap() {
            let id = id.as_u64().unwrap_or(u64::MAX);
            assert!(
                id < vocab,
                "{label}: exit 0 with id {id} outside 0..{vocab}"
            );
        }
    } else {
        assert!(
            err.contains("model.safetensors") || err.contains("config.json"),
            "{label}: the error names neither file\n{err}"
        );
    }
}

fn fuzz(name: &str, seed: u64, cases: usize) {
    let Some(src) = base(name) else { return };
    let cfg_text = std::fs::read_to_string(src.join("config.json")).unwrap();
    let st = std::fs::read(src.join("model.safetensors")).unwrap();
    let cfg0: serde_json::Value = serde_json::from_str(&cfg_text).unwrap();
    let vocab = cfg0["vocab_size"].as_u64().unwrap();
    let mut rng = Rng(seed);
    for i in 0..cases {
        let (mut cfg, mut bytes) = (cfg0.clone(), st.clone());
        let label = format!(
            "{name} case {i}: {}",
            mutate(&mut rng, &mut cfg, &mut bytes)
        );
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), cfg.to_string()).unwrap();
        std::fs::write(dir.path().join("model.safetensors"), &bytes).unwrap();
        check(dir.path(), &label, vocab);
    }
}

#[test]
fn mutated_stories260k_never_panics_or_lies() {
    fuzz("stories260K", 18, 16);
}

#[test]
fn mutated_gpt2_tiny_never_panics_or_lies() {
    fuzz("gpt2-tiny", 1818, 10);
}
