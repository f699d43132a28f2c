//! `speed_overhead --decode-only` (issue #16) decodes stories260K in fp32 at one and two
//! threads (and in bf16 at one where the CPU has it natively) and writes its CSV and README,
//! with a verdict against llama2.c's speed for each fp32 row.
use std::process::Command;

#[test]
fn speed_overhead_decode_only_writes_rows_and_verdicts() {
    let Some(_) = runtime::resources::shared_resource("models/stories260K").unwrap() else {
        return;
    };
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(env!("CARGO_BIN_EXE_speed_overhead"))
        .args([
            "--decode-only",
            "--kernel-runs",
            "0",
            "--runs",
            "1",
            "--command",
            "test",
        ])
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let csv = std::fs::read_to_string(out.path().join("decode.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    let native_bf16 = runtime::hardware::machine(tch::Device::Cpu)
        .unwrap()
        .native_bf16();
    let mut want = vec![("fp32", "1"), ("fp32", "2")];
    if native_bf16 {
        want.push(("bf16", "1"));
    }
    assert_eq!(rows.len(), want.len(), "{csv}");
    for (row, (dtype, threads)) in rows.iter().zip(want) {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(cols[0], "stories260K");
        assert_eq!(cols[1], dtype);
        assert_eq!(cols[2], threads);
        let median: f64 = cols[6].parse().unwrap();
        assert!(median > 0.0 && median.is_finite(), "{row}");
    }
    let md = std::fs::read_to_string(out.path().join("README.md")).unwrap();
    assert!(md.contains("Command: `test`"), "{md}");
    assert_eq!(
        md.matches("| met |").count() + md.matches("| missed by").count(),
        2,
        "{md}"
    );
    assert!(!md.contains("training step"), "decode only: {md}");
}
