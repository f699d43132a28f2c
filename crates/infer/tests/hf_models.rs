//! `infer --model` on the Hugging Face folders beyond Llama (`qwen2-tiny`, `mistral-tiny`,
//! written by transformers): the greedy ids of their `reference.json`, with and without
//! `--kv-cache` (Mistral's 48 positions run past its 16-position window: a rolling cache).
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

/// Run `name` greedily from its reference prompt, with and without the cache.
fn greedy_matches_reference(name: &str) {
    let Some(dir) = runtime::resources::shared_resource(&format!("models/{name}")).unwrap() else {
        return;
    };
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
    }
}

#[test]
fn qwen2_tiny_greedy_matches_transformers() {
    greedy_matches_reference("qwen2-tiny");
}

#[test]
fn mistral_tiny_greedy_matches_transformers() {
    greedy_matches_reference("mistral-tiny");
}
