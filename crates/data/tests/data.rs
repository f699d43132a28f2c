//! Tokenizers (GPT-2 ids from tiktoken / HF), prepare (nanoGPT's 90/10 character split,
//! reuse), batches (nanoGPT's get_batch) and the errors a user can run into.
use data::{prepare, CharTokenizer, DataError, Gpt2Tokenizer, TokenFile, Tokenizer, TokenizerKind};
use runtime::Rng;
use tch::Device;

#[test]
fn gpt2_ids_for_known_strings() {
    let t = Gpt2Tokenizer;
    assert_eq!(t.encode("Hello world").unwrap(), vec![15496, 995]);
    assert_eq!(
        t.encode("Hello, I'm a language model,").unwrap(),
        vec![15496, 11, 314, 1101, 257, 3303, 2746, 11]
    );
    assert_eq!(t.encode("<|endoftext|>").unwrap(), vec![50256]);
    let text = "Ladder climbs from GPT-2 to Llama 3 — one rung at a time. ✓";
    assert_eq!(t.decode(&t.encode(text).unwrap()), text);
    assert_eq!((t.vocab_size(), t.eot()), (50257, Some(50256)));
    assert_eq!(t.decode(&[15496, 50256, 995]), "Hello<|endoftext|> world");
    // Byte-level tokens: a lone token may hold half a character; the bytes concatenate.
    let ids = t.encode("✓").unwrap();
    let parts: Vec<u8> = ids.iter().flat_map(|&i| t.decode_bytes(&[i])).collect();
    assert_eq!(parts, "✓".as_bytes());
    // Ids past the vocabulary (padded logits) are skipped, not a panic.
    assert_eq!(t.decode(&[15496, 50300]), "Hello");
}

#[test]
fn tokenizer_kind_parses_and_serialises() {
    assert_eq!(
        "gpt2".parse::<TokenizerKind>().unwrap(),
        TokenizerKind::Gpt2
    );
    assert_eq!(
        "Char".parse::<TokenizerKind>().unwrap(),
        TokenizerKind::Char
    );
    let e = "bpe".parse::<TokenizerKind>().unwrap_err().to_string();
    assert!(e.contains("bpe") && e.contains("char or gpt2"), "{e}");
    assert_eq!(
        serde_json::to_string(&TokenizerKind::Gpt2).unwrap(),
        "\"gpt2\""
    );
    assert_eq!(TokenizerKind::Char.to_string(), "char");
}

#[test]
fn char_tokenizer_round_trip_and_unknown_character() {
    let t = CharTokenizer::from_text("hello world");
    assert_eq!(t.chars(), &[' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
    let ids = t.encode("hold row").unwrap();
    assert_eq!(t.decode(&ids), "hold row");
    let e = t.encode("hex").unwrap_err();
    assert!(e.to_string().contains("'x'"), "{e}");
    assert!(matches!(
        e.downcast_ref::<DataError>(),
        Some(DataError::UnknownChar { ch: 'x', vocab: 8 })
    ));
}

#[test]
fn tiny_shakespeare_has_65_characters() {
    let p = runtime::resources::shared_dir().join("data/tinyshakespeare.txt");
    if !p.exists() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI: {} missing",
            p.display()
        );
        eprintln!("skipping: {} missing", p.display());
        return;
    }
    let text = std::fs::read_to_string(&p).unwrap();
    let t = CharTokenizer::from_text(&text);
    assert_eq!(t.vocab_size(), 65);
    assert_eq!(t.decode(&t.encode(&text[..1000]).unwrap()), &text[..1000]);
}

#[test]
fn prepare_splits_90_10_and_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    std::fs::write(&corpus, "abcdefghij".repeat(100)).unwrap(); // 1000 chars
    let out = dir.path().join("out");
    let meta = prepare(&corpus, &out, TokenizerKind::Char).unwrap();
    assert_eq!(
        (meta.train_tokens, meta.val_tokens, meta.vocab_size),
        (900, 100, 10)
    );
    assert_eq!(meta.dtype, "u16");
    assert_eq!(
        std::fs::metadata(out.join("train.bin")).unwrap().len(),
        1800
    );
    let before = std::fs::metadata(out.join("train.bin"))
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(prepare(&corpus, &out, TokenizerKind::Char).unwrap(), meta);
    assert_eq!(
        std::fs::metadata(out.join("train.bin"))
            .unwrap()
            .modified()
            .unwrap(),
        before,
        "reused, not rewritten"
    );
    // A changed corpus is tokenised again.
    std::fs::write(&corpus, "xyz".repeat(100)).unwrap();
    let m2 = prepare(&corpus, &out, TokenizerKind::Char).unwrap();
    assert_eq!((m2.vocab_size, m2.train_tokens), (3, 270));
    // The meta rebuilds the same tokenizer.
    assert_eq!(m2.tokenizer().unwrap().decode(&[0, 1, 2]), "xyz");
    // Another tokenizer into the same folder is tokenised again, not reused.
    let m3 = prepare(&corpus, &out, TokenizerKind::Gpt2).unwrap();
    assert_eq!((m3.tokenizer, m3.vocab_size), (TokenizerKind::Gpt2, 50257));
    assert_eq!(data::Meta::read(&out.join("meta.json")).unwrap(), m3);
}

#[test]
fn prepare_splits_characters_not_bytes_and_gpt2_fits_u16() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    // 10 characters, 20 bytes: int(0.9 × 10) = 9 characters train, 1 val.
    std::fs::write(&corpus, "ééééééééé\u{e8}").unwrap();
    let meta = prepare(&corpus, &dir.path().join("c"), TokenizerKind::Char).unwrap();
    assert_eq!((meta.train_tokens, meta.val_tokens), (9, 1));
    assert_eq!(meta.chars.as_deref(), Some("èé"));
    let text = "Hello world. Hello world. Hello world. Hello world. Hello world!";
    std::fs::write(&corpus, text).unwrap();
    let out = dir.path().join("g");
    let meta = prepare(&corpus, &out, TokenizerKind::Gpt2).unwrap();
    assert_eq!(meta.dtype, "u16", "50257 ids fit in u16");
    let (train, val) = text.split_at(text.len() * 9 / 10);
    let t = Gpt2Tokenizer;
    let ids = |f: &str| {
        let f = TokenFile::open(&out.join(f), &meta).unwrap();
        (0..f.len()).map(|i| f.get(i)).collect::<Vec<u32>>()
    };
    assert_eq!(ids("train.bin"), t.encode(train).unwrap());
    assert_eq!(ids("val.bin"), t.encode(val).unwrap());
    assert_eq!(
        std::fs::metadata(out.join("val.bin")).unwrap().len() as usize,
        2 * meta.val_tokens
    );
}

#[test]
fn batches_are_shifted_and_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    let text: String = (0..2000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    std::fs::write(&corpus, &text).unwrap();
    let meta = prepare(&corpus, dir.path(), TokenizerKind::Char).unwrap();
    let f = TokenFile::open(&dir.path().join("train.bin"), &meta).unwrap();
    let (x, y) = f.get_batch(&mut Rng::new(7), 4, 16, Device::Cpu).unwrap();
    assert_eq!(x.size(), vec![4, 16]);
    // y is x shifted by one: the alphabet continues.
    assert!(y.narrow(1, 0, 15).equal(&x.narrow(1, 1, 15)));
    let (x2, _) = f.get_batch(&mut Rng::new(7), 4, 16, Device::Cpu).unwrap();
    assert!(x.equal(&x2));
    let (x3, _) = f.get_batch(&mut Rng::new(8), 4, 16, Device::Cpu).unwrap();
    assert!(!x.equal(&x3));
    // Resuming from a saved state continues the same batches.
    let mut r = Rng::new(7);
    let _ = f.get_batch(&mut r, 4, 16, Device::Cpu).unwrap();
    let mut resumed = Rng::from_state(r.state());
    let (a, _) = f.get_batch(&mut r, 4, 16, Device::Cpu).unwrap();
    let (b, _) = f.get_batch(&mut resumed, 4, 16, Device::Cpu).unwrap();
    assert!(a.equal(&b));
    // Every window lies inside the split: max start is len - block - 1.
    let mut r = Rng::new(1);
    let (x, y) = f.get_batch(&mut r, 64, 1799, Device::Cpu).unwrap();
    assert_eq!(y.size(), vec![64, 1799]);
    assert!(x.narrow(1, 1, 1798).equal(&y.narrow(1, 0, 1798)));
}

#[test]
fn rng_is_reference_splitmix64() {
    // The published SplitMix64 outputs for seed 1234567 (Vigna's splitmix64.c).
    let mut r = Rng::new(1234567);
    let got: Vec<u64> = (0..3).map(|_| r.next_u64()).collect();
    assert_eq!(
        got,
        [
            6457827717110365317,
            3203168211198807973,
            9817491932198370423
        ]
    );
    let mut r = Rng::new(9);
    let mut seen = [false; 5];
    for _ in 0..200 {
        let v = r.below(5);
        assert!(v < 5);
        seen[v as usize] = true;
    }
    assert!(seen.iter().all(|&s| s), "below(5) covers 0..5: {seen:?}");
    let json = serde_json::to_string(&r).unwrap();
    let mut back: Rng = serde_json::from_str(&json).unwrap();
    assert_eq!(back.next_u64(), r.next_u64());
}

#[test]
fn bad_corpora_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.txt");
    let e = format!(
        "{:#}",
        prepare(&missing, dir.path(), TokenizerKind::Char).unwrap_err()
    );
    assert!(e.contains("nope.txt") && e.contains("just data"), "{e}");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "  \n").unwrap();
    let e = prepare(&empty, dir.path(), TokenizerKind::Char)
        .unwrap_err()
        .to_string();
    assert!(e.contains("empty"), "{e}");
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "to be or not to be").unwrap();
    let meta = prepare(&short, &dir.path().join("s"), TokenizerKind::Char).unwrap();
    let f = TokenFile::open(&dir.path().join("s/val.bin"), &meta).unwrap();
    let e = f
        .get_batch(&mut Rng::new(0), 1, 8, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shorter than one block") && e.contains("val split") && e.contains("block of 8"),
        "{e}"
    );
    let e = prepare(&short, &dir.path().join("s"), TokenizerKind::Char).unwrap(); // reused
    assert_eq!(e, meta);
    let latin1 = dir.path().join("latin1.txt");
    std::fs::write(&latin1, b"caf\xe9 au lait").unwrap();
    let e = prepare(&latin1, &dir.path().join("l"), TokenizerKind::Gpt2)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("latin1.txt") && e.contains("UTF-8") && e.contains("offset 3"),
        "{e}"
    );
    let e = data::resolve_corpus(Some(&missing))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.txt") && e.contains("--data"), "{e}");
}

#[test]
fn prepare_binary_summarises_and_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = dir.path().join("c.txt");
    std::fs::write(&corpus, "abcdefghij".repeat(10)).unwrap();
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_prepare"))
            .args(args)
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LIB_BACKTRACE")
            .output()
            .unwrap()
    };
    let out = dir.path().join("out");
    let o = run(&[
        "--data".as_ref(),
        corpus.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout.contains("vocab 10, 90 train + 10 val tokens (u16)"),
        "{stdout}"
    );
    assert!(out.join("train.bin").is_file() && out.join("meta.json").is_file());
    let o = run(&["--data".as_ref(), dir.path().join("nope.txt").as_os_str()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nope.txt") && stderr.contains("just data"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
    let o = run(&["--tokenizer".as_ref(), "bpe".as_ref()]);
    assert_eq!(o.status.code(), Some(2), "clap usage error: {o:?}");
}
