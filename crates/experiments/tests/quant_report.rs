//! `quant_report`: the CSV, README and chart come from the rungs' JSON, and the targets are
//! judged from the numbers (a missed target says by how much).
use experiments::quant::charval::CharVal;
use experiments::quant::{report, Quality, RungResult, Speed};

fn rung(name: &str, scheme: &str, tps: f64, kl: f64) -> RungResult {
    RungResult {
        rung: name.into(),
        scheme: scheme.into(),
        dtype: "bf16".into(),
        speed: vec![Speed {
            model: "gpt2_124m".into(),
            weight_bytes: 1000,
            matmul_bytes: 800,
            decode_tps_b1: tps,
            decode_tps_b8: 4.0 * tps,
            prefill_tps: 100.0,
        }],
        quality: Some(Quality {
            positions: 512,
            kl_mean: kl,
            kl_max: 2.0 * kl,
            top1_agreement: 0.9,
            greedy_match: 7,
            greedy_prefix: 3,
        }),
        git_rev: "abc".into(),
        time_utc: "2026-11-28T00:00:00Z".into(),
        cpu: "test cpu".into(),
        flags: "avx2".into(),
        threads: 2,
        wall_s: 1.0,
        args: String::new(),
        char_val: Some(CharVal {
            checkpoint: "runs/x/ckpt-000100".into(),
            step: 100,
            tokens: 1000,
            dense_val_loss: 2.0,
            val_loss: 2.0 * (1.0 + kl), // +kl·100 %
        }),
    }
}

#[test]
fn report_judges_targets_from_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("rungs");
    std::fs::create_dir_all(&dir).unwrap();
    for r in [
        rung("1_bf16", "dense", 10.0, 0.0),
        rung("2_int8", "int8", 20.0, 5e-4),
        rung("4_int4_g32", "int4_g32", 20.0, 0.1),
    ] {
        let text = serde_json::to_string(&r).unwrap();
        std::fs::write(dir.join(format!("{}.json", r.rung)), text).unwrap();
    }
    report::write(tmp.path(), "test command", Some(3)).unwrap();
    let csv = std::fs::read_to_string(tmp.path().join("summary.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let md = std::fs::read_to_string(tmp.path().join("README.md")).unwrap();
    assert!(
        md.contains("`test command`") && md.contains("test cpu"),
        "{md}"
    );
    // int8: 2.00× ≥ 1.6× met, KL 5e-4 < 1e-3 met; int4 g32: 2.00× of 2.5× missed (80 %).
    assert!(md.contains("| 2.00× | met |"), "{md}");
    assert!(md.contains("missed (reached 80 % of the target)"), "{md}");
    // The miss is explained from the bytes: same bytes per step, so no memory-bound gain.
    assert!(
        md.contains("4_int4_g32 reads 0.0 MB of weights per decode step against 1_bf16's 0.0 MB, so a purely memory-bound step could be 1.00× faster; it is 2.00×"),
        "{md}"
    );
    assert!(
        !md.contains("2_int8 reads"),
        "a met target needs no why: {md}"
    );
    assert!(tmp.path().join("chart.svg").is_file());
    // The char model's val loss: int8 +0.050 % < +0.5 % is met, and every rung has its row.
    assert!(
        md.contains("| Tiny Shakespeare char model val loss: 2_int8 < +0.5 % | +0.050 % | met |"),
        "{md}"
    );
    assert!(
        md.contains("| 4_int4_g32 | 2.0000 | 2.2000 | +10.000 % |"),
        "{md}"
    );
}
