//! Machine facts and the precision rule, with injected facts and peaks (no timing asserted).
use runtime::hardware::{self, Facts, GpuFacts, MachineRecord, Measured};
use runtime::{DType, Precision};
use std::cell::Cell;
use std::path::Path;
use std::sync::{Arc, Mutex};

fn facts(flags: &[&str]) -> Facts {
    Facts {
        cpu_model: "Test CPU".into(),
        arch: "x86_64".into(),
        logical_cores: 2,
        cpu_flags: flags.iter().map(|s| s.to_string()).collect(),
        device: "cpu".into(),
        gpu: None,
        threads: 2,
    }
}

fn measured(fp32_gflops: f64, bf16_gflops: f64) -> Measured {
    Measured {
        fp32_flops: fp32_gflops * 1e9,
        fp32_matmul_n: 2048,
        bf16_flops: bf16_gflops * 1e9,
        bf16_matmul_n: 512,
        bandwidth_bytes_per_s: 20e9,
        bandwidth_buffer_bytes: 1 << 28,
        measure_s: 1.0,
        measured_at: "2026-11-28T00:00:00Z".into(),
    }
}

fn record(flags: &[&str], fp32: f64, bf16: f64) -> MachineRecord {
    MachineRecord {
        facts: facts(flags),
        measured: measured(fp32, bf16),
    }
}

#[test]
fn cpuinfo_flags_are_parsed_for_x86_and_arm() {
    let x86 = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx2 fma avx512f avx512_bf16\n";
    let (model, flags) = hardware::parse_cpuinfo(x86);
    assert_eq!(model.as_deref(), Some("AMD EPYC 7B13"));
    assert_eq!(flags, ["avx2", "fma", "avx512f", "avx512_bf16"]);
    let arm = "processor\t: 0\nFeatures\t: fp asimd evtstrm bf16 i8mm sve\n";
    let (model, flags) = hardware::parse_cpuinfo(arm);
    assert_eq!(model, None);
    assert_eq!(flags, ["asimd", "bf16", "i8mm", "sve"]);
}

#[test]
fn a_record_is_reused_only_for_identical_facts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub/machine.json");
    let calls = Cell::new(0);
    let measure = |v: f64| {
        calls.set(calls.get() + 1);
        measured(v, v)
    };
    let avx2 = facts(&["avx2", "fma"]);
    let r1 = hardware::load_or_measure_with(&path, &avx2, || measure(70.0)).unwrap();
    assert_eq!(calls.get(), 1);
    let r2 = hardware::load_or_measure_with(&path, &avx2, || measure(1.0)).unwrap();
    assert_eq!(calls.get(), 1, "same facts: read back, not measured");
    assert_eq!(r1, r2);
    // Same CPU name, one more flag (the AVX2 EPYC vs the bf16 EPYC): measured again.
    let bf16 = facts(&["avx2", "fma", "avx512_bf16"]);
    let r3 = hardware::load_or_measure_with(&path, &bf16, || measure(190.0)).unwrap();
    assert_eq!(calls.get(), 2);
    assert_eq!(r3.measured.fp32_flops, 190e9);
    // A different thread count is a different key too.
    let mut one = bf16.clone();
    one.threads = 1;
    hardware::load_or_measure_with(&path, &one, || measure(95.0)).unwrap();
    assert_eq!(calls.get(), 3);
    // The cache keeps one record per set of facts: back on the first, nothing is measured.
    let again = hardware::load_or_measure_with(&path, &avx2, || measure(1.0)).unwrap();
    assert_eq!((calls.get(), again), (3, r1));
    // A broken file is measured over, not trusted.
    std::fs::write(&path, "{ not json").unwrap();
    hardware::load_or_measure_with(&path, &one, || measure(95.0)).unwrap();
    assert_eq!(calls.get(), 4);
}

#[test]
fn auto_is_bf16_only_where_bf16_is_native() {
    let native = record(&["amx_bf16"], 190.0, 413.0);
    let emulated = record(&["avx2"], 70.0, 1.0);
    assert!(native.native_bf16());
    assert!(!emulated.native_bf16());
    assert_eq!(Precision::Auto.resolve(&native).dtype, DType::Bf16);
    let r = Precision::Auto.resolve(&emulated);
    assert_eq!(r.dtype, DType::Fp32);
    assert!(
        r.reason.contains("fp32") && r.reason.contains("avx2"),
        "{}",
        r.reason
    );
    assert_eq!(Precision::Fp32.resolve(&native).dtype, DType::Fp32);
    // CUDA: decided by the compute capability, not by CPU peaks.
    let mut gpu = record(&["avx2"], 70.0, 1.0);
    gpu.facts.device = "cuda:0".into();
    gpu.facts.gpu = Some(GpuFacts {
        name: "A100".into(),
        memory_bytes: 40 << 30,
        compute_capability: "8.0".into(),
    });
    assert_eq!(Precision::Auto.resolve(&gpu).dtype, DType::Bf16);
    gpu.facts.gpu.as_mut().unwrap().compute_capability = "7.5".into();
    assert_eq!(Precision::Auto.resolve(&gpu).dtype, DType::Fp32);
}

/// A CPU with bf16 instructions whose libtorch bf16 matmul is still the slower one (a Xeon
/// reporting avx512_bf16 without AMX, 2026-12-07: 273 vs 157 GFLOP/s) is not called
/// "emulated": the rates line says which flag it has, and `auto` still keeps fp32.
#[test]
fn bf16_instructions_that_lose_to_fp32_are_not_called_emulated() {
    let slow = record(&["avx2", "avx512f", "avx512_bf16"], 273.0, 157.0);
    assert!(!slow.native_bf16());
    assert_eq!(slow.bf16_flag(), Some("avx512_bf16"));
    let line = slow.describe_rates();
    assert!(
        line.contains("not native here: 1.7× slower than fp32, though the CPU reports avx512_bf16"),
        "{line}"
    );
    assert!(!line.contains("emulated"), "{line}");
    assert_eq!(Precision::Auto.resolve(&slow).dtype, DType::Fp32);
    let plain = record(&["avx2"], 70.0, 1.0);
    assert_eq!(plain.bf16_flag(), None);
    assert!(plain
        .describe_rates()
        .contains("emulated, 70× slower than fp32"));
}

#[test]
fn explicit_bf16_on_an_emulating_cpu_warns_with_the_measured_slowdown() {
    let emulated = record(&["avx2"], 70.0, 1.0);
    let r = Precision::Bf16.resolve(&emulated);
    assert_eq!(r.dtype, DType::Bf16, "an explicit choice is honoured");
    let w = r.warning.expect("a warning");
    assert!(w.contains("70× slower"), "{w}");
    assert!(Precision::Bf16
        .resolve(&record(&["amx_bf16"], 190.0, 413.0))
        .warning
        .is_none());

    // And it reaches the log.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let sub = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let dtype =
        tracing::subscriber::with_default(sub, || Precision::Bf16.resolve_logged(&emulated));
    assert_eq!(dtype, DType::Bf16);
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    assert!(log.contains("WARN") && log.contains("slower"), "{log}");
}

#[test]
fn precision_parses_and_rejects() {
    assert_eq!("auto".parse::<Precision>(), Ok(Precision::Auto));
    assert_eq!("bfloat16".parse::<Precision>(), Ok(Precision::Bf16));
    assert!("fp16"
        .parse::<Precision>()
        .unwrap_err()
        .contains("expected auto, fp32 or bf16"));
}

#[test]
fn measuring_is_bounded_and_positive() {
    let (flops, n) = hardware::measure_matmul(
        tch::Kind::Float,
        tch::Device::Cpu,
        256,
        std::time::Duration::from_millis(50),
    );
    assert_eq!(n, 256);
    assert!(flops > 0.0);
    let bw = hardware::measure_bandwidth(
        tch::Device::Cpu,
        1 << 20,
        std::time::Duration::from_millis(50),
    );
    assert!(bw > 0.0);
}

#[test]
fn the_cache_never_depends_on_the_current_directory() {
    // No other test in this binary reads these variables.
    std::env::remove_var("LADDER_MACHINE_FILE");
    std::env::set_var("XDG_CACHE_HOME", "");
    let p = hardware::cache_path();
    assert!(p.is_absolute(), "{}", p.display());
    assert!(p.ends_with("ladder/machine.json"), "{}", p.display());
    std::env::set_var("LADDER_MACHINE_FILE", "/tmp/elsewhere.json");
    assert_eq!(hardware::cache_path(), Path::new("/tmp/elsewhere.json"));
    std::env::remove_var("LADDER_MACHINE_FILE");
}
