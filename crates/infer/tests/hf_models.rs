//! `infer --model` on the Hugging Face folders beyond Llama (`qwen2-tiny`, `mistral-tiny`,
//! `mixtral-tiny`, written by transformers): the greedy ids of their `reference.json`, with
//! and without `--kv-cache` (Mistral's 48 positions run past its 16-position window: a
//! rolling cache; Mixtral routes each token to 2 of 4 experts).
use std::process::Command;

fn infer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_infer"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Run `name` greedily from its reference prompt, with and without the cache; the JSON
/// report of the cached run.
fn greedy_matches_reference(name: &str) -> Option<serde_json::Value> {
    let dir = runtime::resources::shared_resource(&format!("models/{name}")).unwrap()?;
    let mut cached = None;
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let prompt: Vec<String> = r["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.to_string())
        .collect();
    let (d, prompt) = (dir.display().to_string(), prompt.join(","));
    for kv in [true, false] {
        let mut args = vec![
            "--model",
            &d,
            "--prompt-ids",
            &prompt,
            "--temperature",
            "0",
            "--max-new-tokens",
            "40",
            "--dtype",
            "fp32",
            "--format",
            "json",
        ];
        if kv {
            args.push("--kv-cache");
        }
        let (ok, out, err) = infer(&args);
        assert!(ok, "{name} kv {kv}: {err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(v["ids"][0], r["greedy_40"], "{name}, kv cache {kv}");
        assert_eq!(v["kv_cache_bytes"].as_u64().unwrap() > 0, kv, "{name}: {v}");
        if kv {
            cached = Some(v);
        }
    }
    cached
}

#[test]
fn qwen2_tiny_greedy_matches_transformers() {
    let _ = greedy_matches_reference("qwen2-tiny");
}

#[test]
fn mistral_tiny_greedy_matches_transformers() {
    let Some(v) = greedy_matches_reference("mistral-tiny") else {
        return;
    };
    // 2 (K, V) · 3 layers · 2 KV heads · 8 dims · 4 bytes = 384 bytes per position, and the
    // rolling buffer holds 16 of the 8 + 40 − 1 positions.
    assert_eq!(v["kv_cache_capacity_bytes"], 384 * 16, "{v}");
    assert_eq!(v["kv_cache_bytes"], 384 * 16, "{v}");
}

#[test]
fn mixtral_tiny_greedy_matches_transformers() {
    let Some(v) = greedy_matches_reference("mixtral-tiny") else {
        return;
    };
    // Full attention: 384 bytes per position (as Mistral's shape), 8 + 40 − 1 positions
    // cached, at most the 8 + 40 the cache was sized for.
    let used = v["kv_cache_bytes"].as_u64().unwrap();
    assert!((384 * 47..=384 * 48).contains(&used), "{v}");
}

#[test]
fn plan_counts_the_rolling_cache_of_a_sliding_window() {
    let Some(dir) = runtime::resources::shared_resource("models/mistral-tiny").unwrap() else {
        return;
    };
    let d = dir.display().to_string();
    let args = [
        "--model",
        &d,
        "--plan",
        "--memory-gb",
        "1",
        "--dtype",
        "fp32",
    ];
    let (ok, out, err) = infer(&[&args[..], &["--format", "json"]].concat());
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["sliding_window"], 16);
    assert_eq!(v["kv_positions_per_sequence"], 16); // not the 256 of max_position_embeddings
    let (ok, text, err) = infer(&args);
    assert!(ok && text.contains("rolling buffer"), "{text}{err}");
    // Full attention (qwen2-tiny): a sequence at full context caches all 256 positions.
    let q = dir.with_file_name("qwen2-tiny").display().to_string();
    let (ok, out, err) = infer(&["--model", &q, "--plan", "--format", "json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(v["sliding_window"].is_null());
    assert_eq!(v["kv_positions_per_sequence"], 256);
}
