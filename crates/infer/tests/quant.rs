//! `infer --quant int8|int4 [--group-size N] [--save-quant DIR]`: the plan counts quantized
//! bytes, a saved quantized folder generates exactly what the in-memory quantization did,
//! and misuse of the flags is a clear error.
use std::process::Command;

fn infer(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_infer"))
        .args(args)
        .current_dir(std::env::temp_dir())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), s(&out.stdout), s(&out.stderr))
}

fn json(args: &[&str]) -> serde_json::Value {
    let (ok, out, err) = infer(args);
    assert!(ok, "{args:?}: {err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn plan_weights(extra: &str) -> u64 {
    let args: Vec<&str> = format!("--plan --format json {extra}")
        .leak()
        .split_whitespace()
        .collect();
    let v = json(&args);
    v["rows"][0]["weight_bytes"].as_u64().unwrap()
}

#[test]
fn plan_counts_quantized_bytes() {
    let dense = plan_weights("--dtype bf16");
    let int8 = plan_weights("--dtype bf16 --quant int8");
    let g128 = plan_weights("--dtype bf16 --quant int4 --group-size 128");
    let g32 = plan_weights("--dtype bf16 --quant int4");
    // GPT-2 small: the tied head's quantized copy rides beside the dense wte, so int8 saves
    // less than half; every step down still saves bytes.
    assert!(
        dense > int8 && int8 > g32 && g32 > g128,
        "{dense} {int8} {g32} {g128}"
    );
    let (ok, out, _) = infer(&["--plan", "--quant", "int4"]);
    assert!(ok && out.contains("weights int4_g32"), "{out}");
}

#[test]
fn saved_quantized_model_generates_the_same_ids() {
    let Some(dir) = runtime::resources::shared_resource("models/stories260K").unwrap() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (d, q) = (dir.display().to_string(), tmp.path().join("q"));
    let qs = q.display().to_string();
    let base =
        "--prompt-ids 1 --temperature 0 --max-new-tokens 30 --kv-cache --format json --dtype fp32";
    for quant in ["int8", "int4"] {
        let mut a: Vec<&str> = vec!["--model", &d, "--quant", quant, "--save-quant", &qs];
        a.extend(base.split_whitespace());
        let first = json(&a);
        assert!(q.join("quant.json").is_file());
        let mut b: Vec<&str> = vec!["--model", &qs];
        b.extend(base.split_whitespace());
        let again = json(&b);
        assert_eq!(first["ids"], again["ids"], "{quant}");
        assert_eq!(
            first["settings"]["weight_bytes"],
            again["settings"]["weight_bytes"]
        );
        let label = again["settings"]["quant"].as_str().unwrap().to_string();
        assert!(label.starts_with(quant), "{label}");
        // Planning the saved folder counts what loading it holds.
        let p = json(&[
            "--plan", "--format", "json", "--model", &qs, "--dtype", "fp32",
        ]);
        assert_eq!(
            p["rows"][1]["weight_bytes"], again["settings"]["weight_bytes"],
            "{p}"
        );
    }
}

#[test]
fn misuse_is_a_clear_error() {
    for (args, want) in [
        ("--group-size 32", "--group-size 32 needs --quant int4"),
        (
            "--quant int8 --group-size 32",
            "int8 has one scale per output channel",
        ),
        ("--quant int3", "expected int8 or int4"),
        (
            "--quant int4 --group-size 48",
            "group size 48 is not supported",
        ),
    ] {
        let mut a: Vec<&str> = "--preset gpt2_tiny --max-new-tokens 2"
            .split_whitespace()
            .collect();
        a.extend(args.split_whitespace());
        let (ok, _, err) = infer(&a);
        assert!(
            !ok && err.contains(want) && !err.contains("panicked"),
            "{args}: {err}"
        );
    }
}
