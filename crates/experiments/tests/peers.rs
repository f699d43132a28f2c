//! `speed_peers`' table (issue #16) from hand-made rows: each workload is matched with its
//! peer, the ratio points the right way (tokens/s vs ms/step), and the verdicts follow the
//! targets (1.3× the PyTorch reference and nano-gpt eager, 75 % of the roofline, faster than
//! transformers; none for the `torch.compile`d column).
use experiments::speed::peers::{self, PeerRow};
use std::path::Path;

fn put(dir: &Path, file: &str, text: &str) {
    let p = dir.join(file);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

#[test]
fn rows_pair_workloads_with_their_peers_and_judge_the_targets() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let head = "phase,dtype,attention,tokens_per_sec,tokens_per_sec_min,tokens_per_sec_max";
    put(
        dir,
        "train_preset/rungs/1_original.csv",
        &format!("{head}\ntrain,fp32,naive,140,130,150\n"),
    );
    put(
        dir,
        "train_preset/rungs/3_flash.csv",
        &format!("{head}\ntrain,bf16,sdpa,110,100,120\n"),
    );
    put(
        dir,
        "train_preset/sdpa/rungs/1_original.csv",
        &format!("{head}\ntrain,fp32,sdpa,130,120,140\n"),
    );
    put(
        dir,
        "train_preset/pytorch.csv",
        &format!(
            "impl,{head}\npytorch,train,fp32,naive,100,90,110\npytorch,train,bf16,sdpa,100,95,105\n\
             nano-gpt,train,fp32,sdpa,90,80,95\nnano-gpt+compile,train,fp32,sdpa,120,110,125\n"
        ),
    );
    // ms/step: rows before step 10 are left out; the median of the rest counts.
    put(
        dir,
        "char/ladder_fp32.csv",
        "step,ms_per_step\n0,999\n10,70\n20,75\n30,80\n",
    );
    put(
        dir,
        "char/pytorch_fp32.csv",
        "step,ms_per_step\n0,999\n10,100\n20,100\n",
    );
    put(dir, "decode/real_size.csv", "status,batch,dtype,tokens_per_sec,tokens_per_sec_min,tokens_per_sec_max,roofline_tokens_per_sec\nok,1,fp32,40,39,41,50\nskipped,1,bf16,0,0,0,100\n");
    put(dir, "decode/transformers.csv", "dtype,tokens_per_sec,tokens_per_sec_min,tokens_per_sec_max,transformers_version\nfp32,50,49,51,5.0\n");

    let preset = peers::preset_rows(dir).unwrap();
    assert_eq!(preset.len(), 4, "{preset:#?}");
    assert!(
        (preset[0].ratio - 1.4).abs() < 1e-9 && preset[0].met == Some(true),
        "{:?}",
        preset[0]
    );
    assert!(
        (preset[1].ratio - 1.1).abs() < 1e-9 && preset[1].met == Some(false),
        "{:?}",
        preset[1]
    );
    // The fp32 SDPA run (train_preset/sdpa) meets the nano-gpt peers, matched on the kernel.
    assert!(preset[2].peer.contains("nano-gpt") && preset[2].peer.contains("eager"));
    assert!((preset[2].ratio - 130.0 / 90.0).abs() < 1e-9 && preset[2].met == Some(true));
    assert!(preset[3].peer.contains("torch.compile"));
    assert!((preset[3].ratio - 130.0 / 120.0).abs() < 1e-9 && preset[3].met.is_none());

    put(
        dir,
        "char/ladder_auto_fp32.csv",
        "step,ms_per_step\n10,50\n",
    );
    put(
        dir,
        "char/ladder_auto_fp32.summary.json",
        r#"{"settings": {"attention": "naive"}}"#,
    );
    // nano-gpt at the char shape: 32 × 128 = 4,096 tokens per step, so 40,960 tok/s is 100 ms.
    put(
        dir,
        "char/nano_gpt.csv",
        "impl,dtype,batch,seq_len,tokens_per_sec,tokens_per_sec_min,tokens_per_sec_max\n\
         nano-gpt,fp32,32,128,40960,20480,81920\nnano-gpt,bf16,32,128,1,1,1\n",
    );
    let char_rows = peers::char_rows(dir).unwrap();
    let (nano, char_rows): (Vec<_>, Vec<_>) = char_rows
        .into_iter()
        .partition(|r| r.peer.contains("nano-gpt"));
    assert_eq!(char_rows.len(), 2, "sdpa and auto; no bf16 files");
    assert_eq!(
        nano.len(),
        2,
        "each Ladder run vs nano-gpt eager: {nano:#?}"
    );
    assert!((nano[0].peer_value - 100.0).abs() < 1e-9);
    assert_eq!((nano[0].peer_min, nano[0].peer_max), (50.0, 200.0));
    assert!((nano[0].ratio - 100.0 / 75.0).abs() < 1e-9 && nano[0].met == Some(true));
    assert!(
        char_rows[1].workload.contains("auto (chose naive)"),
        "{:?}",
        char_rows[1]
    );
    assert!((char_rows[1].ratio - 2.0).abs() < 1e-9);
    // 100 ms for the peer over 75 ms (the median from step 10 on) for us.
    assert!((char_rows[0].ratio - 100.0 / 75.0).abs() < 1e-9 && char_rows[0].met == Some(true));
    assert_eq!(
        (char_rows[0].ladder_min, char_rows[0].ladder_max),
        (70.0, 80.0)
    );

    let decode = peers::decode_rows(dir).unwrap();
    assert_eq!(
        decode.len(),
        2,
        "the skipped bf16 point is not reported: {decode:?}"
    );
    assert!(
        (decode[0].ratio - 0.8).abs() < 1e-9 && decode[0].met == Some(true),
        "80 % of the roofline"
    );
    assert!(
        (decode[1].ratio - 0.8).abs() < 1e-9 && decode[1].met == Some(false),
        "slower than transformers"
    );

    let out = dir.join("peers.md");
    let rows: Vec<_> = preset
        .into_iter()
        .chain(char_rows)
        .chain(nano)
        .chain(decode)
        .collect();
    peers::write(&rows, &out, "test", "a machine", &["abc1234".to_string()]).unwrap();
    let md = std::fs::read_to_string(&out).unwrap();
    assert_eq!(md.matches("| yes |").count(), 7, "{md}");
    assert_eq!(md.matches("| **no** |").count(), 2, "{md}");
    assert_eq!(md.matches("| — |").count(), 1, "{md}");
    assert!(dir.join("peers.csv").exists());
}

/// Three rounds (`round1/` … `round3/`): each comparison becomes one row whose ratio is the
/// median of the rounds' ratios, with their range, and whose verdict is the median's; the
/// cell says how many rounds met the target alone.
#[test]
fn rounds_are_judged_by_the_median_of_their_ratios() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let head = "phase,dtype,attention,tokens_per_sec,tokens_per_sec_min,tokens_per_sec_max";
    // Ladder vs PyTorch per round: 1.25×, 1.40×, 1.35× — one slow round, median 1.35×.
    for (i, (ours, theirs)) in [(125, 100), (140, 100), (135, 100)].iter().enumerate() {
        let r = format!("round{}", i + 1);
        put(
            dir,
            &format!("{r}/train_preset/rungs/1_original.csv"),
            &format!(
                "{head}\ntrain,fp32,naive,{ours},{},{}\n",
                ours - 5,
                ours + 5
            ),
        );
        put(
            dir,
            &format!("{r}/train_preset/pytorch.csv"),
            &format!("impl,{head}\npytorch,train,fp32,naive,{theirs},90,110\n"),
        );
        // Decode: 70 %, 80 %, 74 % of the roofline — median 74 %, not met.
        let tps = [70, 80, 74][i];
        put(dir, &format!("{r}/decode/real_size.csv"), &format!("status,batch,dtype,tokens_per_sec,tokens_per_sec_min,tokens_per_sec_max,roofline_tokens_per_sec\nok,1,fp32,{tps},{tps},{tps},100\n"));
    }
    // A folder that is not a round is not read.
    put(dir, "roundabout/decode/real_size.csv", "garbage");
    assert_eq!(peers::rounds::round_dirs(dir).unwrap().len(), 3);

    let rows = peers::rounds::measured_rows(dir).unwrap();
    assert_eq!(rows.len(), 2, "one row per comparison: {rows:#?}");
    let train = &rows[0];
    assert_eq!((train.rounds, train.rounds_met), (3, 2));
    assert!((train.ratio - 1.35).abs() < 1e-9, "{train:?}");
    assert!((train.ratio_min - 1.25).abs() < 1e-9 && (train.ratio_max - 1.40).abs() < 1e-9);
    assert_eq!(train.met, Some(true));
    // Ladder's figure is the median of the rounds' medians, its range every repeat's.
    assert_eq!(
        (train.ladder, train.ladder_min, train.ladder_max),
        (135.0, 120.0, 145.0)
    );
    let decode = &rows[1];
    assert_eq!((decode.rounds, decode.rounds_met), (3, 1));
    assert!((decode.ratio - 0.74).abs() < 1e-9 && decode.met == Some(false));

    let out = dir.join("peers.md");
    peers::write(&rows, &out, "test", "a machine", &["abc1234".to_string()]).unwrap();
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(md.contains("| 1.35× (1.25×–1.40×) |"), "{md}");
    assert!(md.contains("| yes (2 of 3 rounds) |"), "{md}");
    assert!(md.contains("| 74 % (70 %–80 %) |"), "{md}");
    assert!(md.contains("| **no** (1 of 3 rounds) |"), "{md}");
    assert!(md.contains("in 3 rounds"), "{md}");

    // An even count takes the mean of the middle two.
    let two = peers::rounds::over_rounds(&[
        vec![rows[0].clone()],
        vec![PeerRow {
            ratio: 1.27,
            ratio_min: 1.27,
            ratio_max: 1.27,
            ..rows[0].clone()
        }],
    ]);
    assert!(
        (two[0].ratio - 1.31).abs() < 1e-9 && two[0].met == Some(true),
        "{two:?}"
    );
}

#[test]
fn a_missed_training_target_says_how_close_ladder_runs_to_the_matmul_peak() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let head = "phase,dtype,attention,tokens_per_sec,tokens_per_sec_min,tokens_per_sec_max";
    put(
        dir,
        "train_preset/rungs/1_original.csv",
        &format!("{head},mfu,git_rev\ntrain,fp32,naive,120,110,130,0.8,abc1234\n"),
    );
    put(
        dir,
        "train_preset/pytorch.csv",
        &format!("impl,{head}\npytorch,train,fp32,naive,100,90,110\n"),
    );
    let rows = peers::preset_rows(dir).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(peers::rounds::measured_revs(dir).unwrap(), ["abc1234"]);
    assert_eq!((rows[0].met, rows[0].ladder_mfu), (Some(false), Some(0.8)));
    let out = dir.join("peers.md");
    peers::write(&rows, &out, "test", "a machine", &["abc1234".to_string()]).unwrap();
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(md.contains("## Where a target is missed"), "{md}");
    assert!(
        md.contains("rows measured on git abc1234 · table written on git"),
        "{md}"
    );
    // 1.2× against 1.3×; the peer at 0.8 ÷ 1.2 of the peak, so 1.3× it takes 87 %.
    assert!(md.contains("1.20× against 1.3×, 7.7 % short"), "{md}");
    assert!(
        md.contains("at 80 % of the measured fp32 matmul peak"),
        "{md}"
    );
    assert!(md.contains("the peer's at about 67 %"), "{md}");
    assert!(md.contains("would take 87 % of the peak"), "{md}");

    // Met everywhere: no such section.
    let met = vec![PeerRow {
        ratio: 1.4,
        met: Some(true),
        ..rows[0].clone()
    }];
    peers::write(&met, &out, "test", "a machine", &["abc1234".to_string()]).unwrap();
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(!md.contains("## Where a target is missed"), "{md}");
}
