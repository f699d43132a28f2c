//! The `infer` binary: JSON output, the stories260K reference, the planner, and every user
//! mistake as a clear error that names the flag (non-zero exit, no panic).
use std::process::Command;

/// Run the binary from a scratch folder (so no `runs/` hint depends on the checkout).
fn infer(args: &[&str]) -> (bool, String, String) {
    let cwd = std::env::temp_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_infer"))
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Whitespace-separated arguments.
fn w(args: &str) -> Vec<&str> {
    args.split_whitespace().collect()
}

fn json(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = infer(args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[test]
fn json_output_has_the_documented_keys() {
    let v = json(&w("--preset gpt2_tiny --prompt-ids 1,2,3 --max-new-tokens 5 --kv-cache --gqa 2 --threads 1 --dtype fp32 --format json"));
    for k in [
        "ids",
        "text",
        "prompt_ids",
        "prefill_tokens_per_sec",
        "decode_tokens_per_sec",
        "ttft_ms",
        "kv_cache_bytes",
        "peak_rss_bytes",
        "settings",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    for k in [
        "source",
        "n_layer",
        "n_head",
        "n_kv_heads",
        "dtype",
        "attention",
        "kv_cache",
        "batch",
        "threads",
        "device",
        "temperature",
        "top_k",
        "top_p",
        "seed",
    ] {
        assert!(v["settings"].get(k).is_some(), "missing settings.{k}: {v}");
    }
    assert_eq!(v["ids"][0].as_array().unwrap().len(), 5);
    assert_eq!(v["prompt_ids"], serde_json::json!([1, 2, 3]));
    assert_eq!(v["settings"]["n_kv_heads"], 2);
    assert_eq!(v["settings"]["threads"], 1);
    assert_eq!(v["settings"]["device"], "cpu");
    assert_eq!(v["settings"]["dtype"], "fp32");
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 1_000_000);
    // gpt2_tiny's 256-id vocabulary has no tokenizer.
    assert!(v["text"].is_null());
    // 2 · 2 layers · 2 KV heads · 16 dims · 4 bytes · (3 prompt + 4 fed back) tokens.
    assert_eq!(v["kv_cache_bytes"], 2 * 2 * 2 * 16 * 4 * 7);
}

#[test]
fn batch_and_bf16_and_no_cache_run() {
    let v = json(&w("--preset llama_tiny --batch 3 --dtype bf16 --attention naive --max-new-tokens 4 --format json"));
    assert_eq!(v["ids"].as_array().unwrap().len(), 3);
    assert_eq!(v["prompt_ids"], serde_json::json!([1])); // Llama-style: BOS = 1
    assert_eq!(v["kv_cache_bytes"], 0);
    assert_eq!(v["settings"]["dtype"], "bf16");
    assert_eq!(v["settings"]["attention"], "naive");
}

#[test]
fn dtype_auto_is_resolved_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_infer"))
        .args(w(
            "--preset gpt2_tiny --prompt-ids 1 --max-new-tokens 2 --format json",
        ))
        .current_dir(dir.path())
        .env("LADDER_MACHINE_FILE", dir.path().join("machine.json"))
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dtype = v["settings"]["dtype"].as_str().unwrap();
    // The machine's choice, or, for a model this small on a machine that chose bf16, fp32
    // with its own line (`infer::limits::auto_dtype`).
    let small = err.contains("dtype auto → bf16") && err.contains("auto: fp32 (");
    assert!(
        err.contains(&format!("dtype auto → {dtype}")) || (small && dtype == "fp32"),
        "{err}"
    );
    // The measurement was recorded with the facts that key it.
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("machine.json")).unwrap())
            .unwrap();
    assert!(rec.to_string().contains("cpu_flags"), "{rec}");
}

#[test]
fn text_mode_streams_and_reports_on_stderr() {
    let (ok, out, err) = infer(&w(
        "--preset gpt2_tiny --prompt-ids 7 --temperature 0 --max-new-tokens 3 --kv-cache",
    ));
    assert!(ok, "{err}");
    assert_eq!(out.split_whitespace().count(), 4, "{out}"); // the prompt id and 3 new ids
    for k in [
        "random weights",
        "time to first token",
        "prefill",
        "decode",
        "KV cache",
        "peak memory",
    ] {
        assert!(err.contains(k), "missing {k}: {err}");
    }
}

#[test]
fn stories260k_from_bos_matches_the_reference() {
    let Some(dir) = runtime::resources::shared_resource("models/stories260K").unwrap() else {
        return;
    };
    let d = dir.display().to_string();
    let v = json(&[
        "--model",
        &d,
        "--prompt-ids",
        "1",
        "--temperature",
        "0",
        "--max-new-tokens",
        "60",
        "--kv-cache",
        "--dtype",
        "fp32",
        "--format",
        "json",
    ]);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    assert_eq!(v["ids"][0], r["greedy_60"]);
    assert_eq!(v["settings"]["n_kv_heads"], 4);
    assert_eq!(v["settings"]["eos"], serde_json::json!([2]));
    // A matching --gqa is accepted; a different one is an error naming both numbers.
    assert!(infer(&["--model", &d, "--gqa", "4", "--max-new-tokens", "1"]).0);
    let (ok, _, err) = infer(&["--model", &d, "--gqa", "2"]);
    assert!(
        !ok && err.contains("--gqa 2 conflicts") && err.contains("n_kv_heads = 4"),
        "{err}"
    );
    let (ok, _, err) = infer(&["--model", &d, "--prompt", "Once upon a time"]);
    assert!(!ok && err.contains("--prompt-ids"), "{err}");
}

#[test]
fn bad_input_is_a_clear_error() {
    let cases = [
        (
            "--preset gpt5",
            "unknown preset 'gpt5' (expected one of: gpt2_124m",
        ),
        ("--model /nonexistent/folder", "--model /nonexistent/folder"),
        (
            "--checkpoint /nonexistent/ckpt",
            "--checkpoint /nonexistent/ckpt",
        ),
        (
            "--gqa 5 --plan",
            "--gqa 5: the number of KV heads must divide the number of query heads, n_head = 12",
        ),
        ("--preset gpt2_tiny --gqa 3", "--gqa 3"),
        ("--preset gpt2_tiny --gqa 0", "--gqa 0"),
        (
            "--preset gpt2_tiny --prompt-ids 1,2 --max-new-tokens 100",
            "prompt (2 tokens) + --max-new-tokens (100) = 102 exceeds the model's context of 64",
        ),
        ("--preset gpt2_tiny --prompt-ids ,", "empty prompt"),
        (
            "--preset gpt2_tiny --prompt-ids 1,x",
            "--prompt-ids: 'x' is not a token id",
        ),
        ("--preset gpt2_tiny --prompt-ids 1,-3", "--prompt-ids: '-3'"),
        (
            "--preset gpt2_tiny --prompt-ids 300",
            "--prompt-ids: id 300 is outside",
        ),
        ("--preset gpt2_tiny --prompt hi", "use --prompt-ids"),
        (
            "--preset gpt2_tiny --max-new-tokens 0",
            "--max-new-tokens must be at least 1",
        ),
        ("--preset gpt2_tiny --batch 0", "--batch"),
        ("--preset gpt2_tiny --top-p 0", "--top-p"),
        ("--preset gpt2_tiny --temperature -1", "--temperature"),
        ("--preset gpt2_tiny --device tpu", "--device 'tpu'"),
        ("--preset gpt2_tiny --dtype fp8", "fp8"),
        ("--preset gpt2_tiny --attention flashy", "flashy"),
        ("--plan --memory-gb -1", "--memory-gb"),
        ("--preset gpt2_tiny --model x", "--model"),
    ];
    let empty = ["--preset", "gpt2_small_cpu", "--prompt", ""];
    let cases = cases
        .iter()
        .map(|(a, want)| (w(a), *want))
        .chain([(empty.to_vec(), "empty prompt")]);
    for (args, want) in cases {
        let (ok, _, err) = infer(&args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: want '{want}' in: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn the_prompt_text_uses_the_gpt2_tokenizer() {
    let v = json(&[
        "--preset",
        "gpt2_small_cpu",
        "--prompt",
        "Hello, world",
        "--max-new-tokens",
        "2",
        "--kv-cache",
        "--format",
        "json",
    ]);
    assert_eq!(v["prompt_ids"], serde_json::json!([15496, 11, 995])); // r50k_base
    assert_eq!(v["text"].as_array().unwrap().len(), 1);
}

#[test]
fn plan_prints_the_gqa_saving() {
    let (ok, out, err) = infer(&w("--plan --memory-gb 8 --gqa 4 --dtype bf16"));
    assert!(ok, "{err}");
    // GPT-2 small in bf16: 36864 bytes per token with MHA, a third of that with 4 KV heads.
    assert!(
        out.contains("36864") && out.contains("12288") && out.contains("<- chosen"),
        "{out}"
    );
    let v = json(&w(
        "--plan --memory-gb 8 --gqa 4 --dtype fp32 --format json",
    ));
    let rows = v["rows"].as_array().unwrap();
    let kinds: Vec<&str> = rows.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["MHA", "GQA", "MQA"]);
    assert_eq!(rows[1]["kv_bytes_per_token"], 2 * 12 * 4 * 64 * 4);
    assert_eq!(rows[1]["chosen"], true);
    // (8e9 − weights) / per-token bytes, rounded down.
    let w = rows[1]["weight_bytes"].as_u64().unwrap();
    assert_eq!(
        rows[1]["tokens_that_fit"].as_u64().unwrap(),
        (8_000_000_000 - w) / 24576
    );
}
