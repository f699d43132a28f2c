//! The speed ladder's binaries end to end on a toy preset (seconds), on a machine record that
//! says bf16 is emulated and on one that says it is native: the precision each rung runs
//! in, the reduced and marked rung 2, the time budget, and the report's machine line.
use experiments::speed::report::{read_rows, Row};
use experiments::speed::Phase;
use runtime::hardware::{self, MachineRecord, Measured};
use runtime::DType;
use std::path::Path;
use std::process::Command;

/// This machine's facts (1 thread, as the binaries run below) with chosen peaks.
fn record(fp32_gflops: f64, bf16_gflops: f64) -> MachineRecord {
    tch::set_num_threads(1);
    MachineRecord {
        facts: hardware::detect(tch::Device::Cpu),
        measured: Measured {
            fp32_flops: fp32_gflops * 1e9,
            fp32_matmul_n: 1024,
            bf16_flops: bf16_gflops * 1e9,
            bf16_matmul_n: 256,
            bandwidth_bytes_per_s: 1e10,
            bandwidth_buffer_bytes: 1 << 28,
            measure_s: 0.0,
            measured_at: "2026-11-28T00:00:00Z".into(),
        },
    }
}

/// Run one rung binary on the toy preset; returns its stderr.
fn rung(bin: &str, machine: &Path, out: &Path) -> String {
    let o = Command::new(bin)
        .args([
            "--preset",
            "gpt2_tiny",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--batch",
            "2",
            "--seq-len",
            "16",
            "--prompt-len",
            "8",
            "--new-tokens",
            "8",
            "--warmup",
            "1",
            "--repeats",
            "3",
            "--decode-repeats",
            "2",
            "--max-seconds",
            "20",
        ])
        .arg("--out")
        .arg(out)
        .env("LADDER_MACHINE_FILE", machine)
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{bin}: {err}");
    err
}

fn rows(out: &Path, rung: &str) -> Vec<Row> {
    read_rows(&out.join("rungs").join(format!("{rung}.csv"))).unwrap()
}

#[test]
fn on_an_emulating_cpu_rung_2_is_reduced_and_marked_and_auto_is_fp32() {
    let dir = tempfile::tempdir().unwrap();
    let machine = dir.path().join("machine.json");
    hardware::write_record(&machine, &record(70.0, 1.0)).unwrap();
    let out = dir.path().join("speed");
    let err = rung(env!("CARGO_BIN_EXE_speed_2_bf16"), &machine, &out);
    assert!(
        err.contains("70× slower"),
        "the explicit bf16 rung warns: {err}"
    );
    let r2 = rows(&out, "2_bf16");
    assert_eq!(r2.len(), 3);
    for r in &r2 {
        assert_eq!(r.dtype, DType::Bf16);
        assert!(r.note.contains("emulated"), "{r:?}");
        assert!(r.repeats >= 2 && r.repeats <= 3, "{r:?}");
    }
    let train = r2.iter().find(|r| r.phase == Phase::Train).unwrap();
    let decode = r2.iter().find(|r| r.phase == Phase::Decode).unwrap();
    assert_eq!((train.batch, decode.new_tokens), (1, 4), "reduced workload");

    let err = rung(env!("CARGO_BIN_EXE_speed_3_flash"), &machine, &out);
    assert!(err.contains("dtype auto → fp32"), "{err}");
    for r in rows(&out, "3_flash") {
        assert_eq!((r.dtype, r.note.as_str()), (DType::Fp32, ""));
        assert_eq!(r.batch, if r.phase == Phase::Train { 2 } else { 1 });
    }
    // The record the rows were measured against travels with them.
    let copied: MachineRecord =
        serde_json::from_str(&std::fs::read_to_string(out.join("machine.json")).unwrap()).unwrap();
    assert!(!copied.native_bf16());

    // The report marks the reduced rows and names the machine by its flags.
    let o = Command::new(env!("CARGO_BIN_EXE_speed_report"))
        .arg("--out")
        .arg(&out)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(readme.contains("| 2_bf16 † |"), "{readme}");
    // "emulated" unless this CPU has bf16 instructions (then the record says which).
    let rec = record(70.0, 1.0);
    let expected = match rec.bf16_flag() {
        None => "emulated, 70× slower than fp32".to_string(),
        Some(f) => format!("not native here: 70.0× slower than fp32, though the CPU reports {f}"),
    };
    assert!(readme.contains(&expected), "{expected}: {readme}");
    assert!(readme.contains("CPU flags"), "{readme}");
}

#[test]
fn on_a_native_bf16_machine_auto_is_bf16_and_nothing_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let machine = dir.path().join("machine.json");
    hardware::write_record(&machine, &record(190.0, 413.0)).unwrap();
    let out = dir.path().join("speed");
    let err = rung(env!("CARGO_BIN_EXE_speed_3_flash"), &machine, &out);
    assert!(err.contains("dtype auto → bf16"), "{err}");
    for r in rows(&out, "3_flash") {
        assert_eq!((r.dtype, r.note.as_str()), (DType::Bf16, ""));
    }
}

#[test]
fn a_bad_budget_is_a_clear_error() {
    let o = Command::new(env!("CARGO_BIN_EXE_speed_1_original"))
        .args(["--preset", "gpt2_tiny", "--max-seconds", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.starts_with("error: --max-seconds 0"), "{err}");
    assert!(
        !err.contains("backtrace"),
        "a user mistake is one line, not a trace: {err}"
    );
}
