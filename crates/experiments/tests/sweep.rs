//! The speed sweep: a `--quick` run on the toy preset end to end (CSV rows and columns,
//! charts, the generated text, nothing written to results/ or docs/), the summary and target
//! logic on injected rows, and the speed ladder's decode rows coming from `infer`'s loop.
use experiments::speed::sweep::row::{read_rows, Row, Section, Status, Variant};
use experiments::speed::sweep::summary::{self, Crossover};
use experiments::speed::sweep::targets;
use experiments::speed::Phase;
use model::AttnKernel;
use runtime::hardware::{self, MachineRecord, Measured};
use runtime::DType;
use std::path::Path;
use std::process::Command;

/// This machine's facts (1 thread, as the binaries run below) with chosen rates, so no
/// test spends seconds measuring the machine.
fn record() -> MachineRecord {
    tch::set_num_threads(1);
    MachineRecord {
        facts: hardware::detect(tch::Device::Cpu),
        measured: Measured {
            fp32_flops: 100e9,
            fp32_matmul_n: 1024,
            bf16_flops: 10e9,
            bf16_matmul_n: 256,
            bandwidth_bytes_per_s: 1e10,
            bandwidth_buffer_bytes: 1 << 28,
            measure_s: 0.0,
            measured_at: "2026-11-29T00:00:00Z".into(),
        },
    }
}

fn machine_file(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("machine.json");
    hardware::write_record(&path, &record()).unwrap();
    path
}

#[test]
fn a_quick_sweep_writes_csv_charts_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let machine = machine_file(dir.path());
    let out = dir.path().join("sweep");
    let o = Command::new(env!("CARGO_BIN_EXE_speed_sweep"))
        .args([
            "--quick",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--warmup",
            "1",
        ])
        .args(["--repeats", "2", "--point-seconds", "3"])
        .arg("--out")
        .arg(&out)
        .env("LADDER_MACHINE_FILE", &machine)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("dtype auto → fp32"), "{err}");
    assert!(err.contains("speed sweep: 24 points in"), "{err}");

    let att = read_rows(&out.join("attention.csv")).unwrap();
    assert_eq!(
        att.len(),
        2 * 3 * 2,
        "train/prefill × T 32, 64, 128 × naive/SDPA"
    );
    for r in &att {
        assert_eq!(
            (r.section, r.status, r.dtype),
            (Section::Attention, Status::Ok, DType::Fp32),
            "{r:?}"
        );
        assert!(r.tokens_per_sec > 0.0 && r.peak_rss_bytes > 0, "{r:?}");
        assert_eq!(r.batch * r.seq_len, 128.max(r.seq_len));
        assert_eq!(r.score_bytes > 0, r.variant == Variant::Naive);
    }
    let dec = read_rows(&out.join("decode.csv")).unwrap();
    assert_eq!(
        dec.len(),
        2 * 2 * 3,
        "batch 1, 4 × context 16, 64 × MHA/GQA-4/MQA"
    );
    for r in &dec {
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert_eq!(
            r.n_kv_heads,
            match r.variant {
                Variant::Mha => 8,
                Variant::Gqa4 => 4,
                _ => 1,
            }
        );
        // K and V of every layer for context + new − 1 positions (the last token is not fed back).
        assert_eq!(
            r.kv_cache_bytes as usize,
            2 * 2 * r.n_kv_heads * 8 * 4 * r.batch * (r.seq_len + 4)
        );
        assert!(
            r.roofline_tokens_per_sec > 0.0 && r.roofline_fraction > 0.0,
            "{r:?}"
        );
    }
    let header = std::fs::read_to_string(out.join("decode.csv")).unwrap();
    for col in [
        "section",
        "variant",
        "seq_len",
        "tokens_per_sec",
        "peak_rss_bytes",
        "kv_cache_bytes",
        "roofline_tokens_per_sec",
        "roofline_fraction",
        "status",
        "note",
    ] {
        assert!(
            header.lines().next().unwrap().split(',').any(|c| c == col),
            "{col}"
        );
    }
    for svg in [
        "attention_train.svg",
        "attention_prefill.svg",
        "attention_memory.svg",
        "decode_batch1.svg",
        "decode_batch4.svg",
        "decode_batch4_roofline.svg",
    ] {
        let text = std::fs::read_to_string(out.join(svg)).unwrap();
        assert!(text.contains("<svg") && text.contains("log2"), "{svg}");
    }
    let readme = std::fs::read_to_string(out.join("README.md")).unwrap();
    for want in [
        "## Targets",
        "**Attention**",
        "**Decode**",
        "SDPA/naive tokens/sec by T",
        "GQA-4/MHA by context",
        "of the bandwidth roofline",
        "wall-clock",
    ] {
        assert!(readme.contains(want), "{want}: {readme}");
    }
    assert!(!dir.path().join("docs").exists() && !dir.path().join("results").exists());
}

#[allow(clippy::too_many_arguments)]
fn row(
    section: Section,
    phase: Phase,
    variant: Variant,
    batch: usize,
    x: usize,
    tps: f64,
    peak: u64,
) -> Row {
    Row {
        section,
        preset: "gpt2_long_cpu".into(),
        phase,
        variant,
        dtype: DType::Bf16,
        attention: if variant == Variant::Naive {
            AttnKernel::Naive
        } else {
            AttnKernel::Sdpa
        },
        n_kv_heads: variant.kv_heads(12),
        batch,
        seq_len: x,
        new_tokens: 16,
        status: Status::Ok,
        tokens_per_sec: tps,
        tokens_per_sec_min: tps,
        tokens_per_sec_max: tps,
        ms_per_step: 1e3 * batch as f64 / tps,
        peak_rss_bytes: peak,
        score_bytes: if variant == Variant::Naive {
            (batch * 12 * x * x * 4) as u64
        } else {
            0
        },
        kv_cache_bytes: 0,
        bytes_per_step: 0,
        bandwidth_bytes_per_s: 0.0,
        roofline_tokens_per_sec: 0.0,
        roofline_fraction: 0.0,
        repeats: 3,
        point_s: 1.0,
        budget_hit: false,
        note: String::new(),
        threads: 2,
        device: "cpu".into(),
        git_rev: "test".into(),
        timestamp: "now".into(),
    }
}

/// Training naive vs SDPA at T = 512 … 4096 (naive skipped at 4096), decode at batch 8.
fn injected() -> Vec<Row> {
    use Phase::{Decode as Dec, Train};
    use Section::{Attention, Decode};
    use Variant::*;
    let g = 1_000_000_000u64;
    let mut rows = vec![
        row(Attention, Train, Naive, 4, 512, 1000.0, 3 * g),
        row(Attention, Train, Sdpa, 4, 512, 950.0, 3 * g),
        row(Attention, Train, Naive, 2, 1024, 900.0, 4 * g),
        row(Attention, Train, Sdpa, 2, 1024, 1000.0, 3 * g),
        row(Attention, Train, Naive, 1, 2048, 700.0, 8 * g),
        row(Attention, Train, Sdpa, 1, 2048, 980.0, 3 * g),
        row(Attention, Train, Sdpa, 1, 4096, 900.0, 3 * g),
    ];
    let mut skipped = row(Attention, Train, Naive, 1, 4096, 0.0, 0);
    skipped.status = Status::Skipped;
    skipped.note = "would not fit memory: estimated 40.0 GB > 19.0 GB allowed".into();
    rows.push(skipped);
    for (v, tps, bytes, frac) in [
        (Mha, 100.0, 2_000_000_000u64, 0.4),
        (Gqa4, 160.0, 700_000_000, 0.3),
        (Mqa, 150.0, 200_000_000, 0.1),
    ] {
        for ctx in [1024, 4096] {
            let mut r = row(
                Decode,
                Dec,
                v,
                8,
                ctx,
                if ctx == 1024 { 200.0 } else { tps },
                g,
            );
            r.bytes_per_step = bytes;
            r.roofline_fraction = frac;
            r.roofline_tokens_per_sec = tps / frac;
            rows.push(r);
        }
    }
    let mut b1 = row(Decode, Dec, Mha, 1, 4096, 50.0, g);
    b1.roofline_fraction = 0.62;
    b1.bytes_per_step = 100_000_000;
    rows.push(b1);
    rows
}

#[test]
fn crossovers_and_verdicts_come_from_the_rows() {
    let rows = injected();
    let tps = summary::ratios(
        &rows,
        Section::Attention,
        Phase::Train,
        (Variant::Sdpa, Variant::Naive),
        None,
        |r| r.tokens_per_sec,
    );
    assert_eq!(
        tps.iter().map(|p| p.0).collect::<Vec<_>>(),
        vec![512, 1024, 2048]
    );
    assert_eq!(summary::crossover(&tps), Crossover::From(1024));
    assert_eq!(summary::score_dominance(&rows).map(|d| d.0), Some(2048));
    let text = summary::paragraph(&rows);
    assert!(
        text.contains("SDPA overtakes naive from T = 1024 on"),
        "{text}"
    );
    assert!(text.contains("dominate its memory from T = 2048"), "{text}");
    assert!(
        text.contains("Not measured: train naive T = 4096 (would not fit memory"),
        "{text}"
    );
    assert!(text.contains("At batch 8, GQA-4 is ahead of MHA at every context measured (GQA-4/MHA by context: 1024: 1.00×, 4096: 1.60×)"), "{text}");
    assert!(
        text.contains("MQA is still behind GQA-4 at the largest context measured"),
        "{text}"
    );

    let v = targets::verdicts(&rows);
    let by = |what: &str| v.iter().find(|t| t.what.starts_with(what)).unwrap().clone();
    let sdpa = by("SDPA training ≥ 1.5×");
    assert_eq!(sdpa.met, Some(false));
    assert!(sdpa.measured.starts_with("1.40× at T = 2048"), "{sdpa:?}");
    assert!(
        sdpa.why.contains("short by 6.7 % (1.40× vs 1.5×)") && sdpa.why.contains("Amdahl"),
        "{sdpa:?}"
    );
    assert!(sdpa.why.contains("not run at T = [4096]"), "{sdpa:?}");
    assert_eq!(by("SDPA training peak memory").met, Some(true));
    let gqa = by("GQA-4 decode ≥ 1.3×");
    assert_eq!(gqa.met, Some(true), "{gqa:?}"); // 160 / 100
    let mqa = by("MQA decode ≥ GQA-4");
    assert_eq!(mqa.met, Some(false));
    assert!(
        mqa.why.contains("short by 6.") && mqa.why.contains("3.50×"),
        "{mqa:?}"
    );
    let roof = by("KV-cache decode at batch 1");
    assert_eq!(roof.met, Some(true), "{roof:?}");

    // The real-size point joins the roofline target, and misses it here by 20 points.
    let mut real = row(
        Section::RealSize,
        Phase::Decode,
        Variant::Mha,
        1,
        64,
        20.0,
        1 << 30,
    );
    (real.preset, real.new_tokens, real.roofline_fraction) = ("gpt2_124m".into(), 128, 0.3);
    real.bytes_per_step = 250_000_000;
    let mut with_real = rows.clone();
    with_real.push(real.clone());
    let roof = targets::verdicts(&with_real).pop().unwrap();
    assert_eq!(roof.met, Some(false), "{roof:?}");
    assert!(
        roof.measured
            .contains("ctx 4096: 62.0 %, gpt2_124m bf16: 30.0 %"),
        "{roof:?}"
    );
    assert!(
        roof.why
            .starts_with("worst: gpt2_124m bf16 at 30.0 % (20.0 pp short)"),
        "{roof:?}"
    );
    let text = experiments::speed::sweep::report::real_size_text(&[real], &record());
    assert!(
        text.contains("| gpt2_124m | bf16 | 1 | 64 | mha | 20.0"),
        "{text}"
    );
    let table = targets::table(&rows);
    assert!(
        table.contains("| **no** |") && table.contains("- *MQA decode"),
        "{table}"
    );
}

#[test]
fn the_ladder_decode_rows_come_from_infers_loop() {
    let dir = tempfile::tempdir().unwrap();
    let machine = machine_file(dir.path());
    let o = Command::new(env!("CARGO_BIN_EXE_speed_4_kv_cache"))
        .args([
            "--preset",
            "gpt2_tiny",
            "--device",
            "cpu",
            "--threads",
            "1",
            "--phases",
            "decode",
            "--seq-len",
            "16",
        ])
        .args([
            "--prompt-len",
            "8",
            "--new-tokens",
            "6",
            "--decode-repeats",
            "2",
            "--max-seconds",
            "10",
        ])
        .arg("--out")
        .arg(dir.path().join("speed"))
        .env("LADDER_MACHINE_FILE", &machine)
        .env("RUST_LOG", "info,infer=debug")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    // One warm-up and two measured generations, each `infer::decode` with 6 steps.
    assert!(
        err.matches("infer::decode: 6 steps × 1 sequences").count() >= 3,
        "{err}"
    );
}
