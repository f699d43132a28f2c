//! The `infer` binary: JSON output, the reference model, and bad input as clear errors.
use std::process::Command;

fn infer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_infer"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn json_output_has_the_documented_keys() {
    let (ok, out, err) = infer(&[
        "--preset",
        "gpt2_tiny",
        "--prompt-ids",
        "1,2,3",
        "--max-new-tokens",
        "5",
        "--kv-cache",
        "--gqa",
        "2",
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    for k in [
        "ids",
        "text",
        "prefill_tokens_per_sec",
        "decode_tokens_per_sec",
        "kv_cache_bytes",
        "ttft_ms",
        "settings",
    ] {
        assert!(v.get(k).is_some(), "missing {k}: {v}");
    }
    assert_eq!(v["ids"][0].as_array().unwrap().len(), 5);
    assert_eq!(v["settings"]["n_kv_heads"], 2);
    // 2 · 2 layers · 2 KV heads · 16 dims · 4 bytes · (3 prompt + 4 fed) tokens.
    assert_eq!(v["kv_cache_bytes"], 2 * 2 * 2 * 16 * 4 * 7);
}

#[test]
fn stories260k_from_bos_matches_the_reference() {
    let Some(dir) = model::resources::shared_resource("models/stories260K").unwrap() else {
        return;
    };
    let d = dir.display().to_string();
    let (ok, out, err) = infer(&[
        "--model",
        &d,
        "--prompt-ids",
        "1",
        "--temperature",
        "0",
        "--max-new-tokens",
        "60",
        "--kv-cache",
        "--format",
        "json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    assert_eq!(v["ids"][0], r["greedy_60"]);
}

#[test]
fn bad_input_is_a_clear_error() {
    let cases: [(&[&str], &str); 6] = [
        (&["--preset", "gpt5"], "unknown preset 'gpt5'"),
        (&["--model", "/nonexistent/folder"], "does not exist"),
        (
            &["--preset", "gpt2_124m", "--gqa", "5", "--plan"],
            "--gqa 5",
        ),
        (
            &["--preset", "gpt2_tiny", "--gqa", "3"],
            "--gqa 3: must divide",
        ),
        (
            &[
                "--preset",
                "gpt2_tiny",
                "--prompt-ids",
                "1,2",
                "--max-new-tokens",
                "100",
            ],
            "exceeds the model's context",
        ),
        (
            &["--preset", "gpt2_tiny", "--prompt-ids", ","],
            "empty prompt",
        ),
    ];
    for (args, want) in cases {
        let (ok, _, err) = infer(args);
        assert!(!ok, "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let (ok, _, err) = infer(&["--preset", "gpt2_tiny", "--prompt", "hi"]);
    assert!(!ok && err.contains("--prompt-ids"), "{err}");
}

#[test]
fn plan_prints_the_gqa_saving() {
    let (ok, out, err) = infer(&[
        "--plan",
        "--memory-gb",
        "8",
        "--gqa",
        "4",
        "--dtype",
        "bf16",
    ]);
    assert!(ok, "{err}");
    // GPT-2 small in bf16: 36864 bytes per token with MHA, a third of that with 4 KV heads.
    assert!(
        out.contains("36864") && out.contains("12288") && out.contains("<- chosen"),
        "{out}"
    );
}
