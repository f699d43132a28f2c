//! Tokenizers, prepare and batches.
use data::{prepare, CharTokenizer, Gpt2Tokenizer, Rng, TokenFile, Tokenizer, TokenizerKind};
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
}

#[test]
fn char_tokenizer_round_trip_and_unknown_character() {
    let t = CharTokenizer::from_text("hello world");
    assert_eq!(t.chars(), &[' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']);
    let ids = t.encode("hold row").unwrap();
    assert_eq!(t.decode(&ids), "hold row");
    let e = t.encode("hex").unwrap_err().to_string();
    assert!(e.contains("'x'"), "{e}");
}

#[test]
fn tiny_shakespeare_has_65_characters() {
    let p = data::shared_dir().join("data/tinyshakespeare.txt");
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
    // RNG state round trip.
    let mut r = Rng::new(3);
    r.next_u64();
    let mut r2 = Rng::from_state(r.state());
    assert_eq!(r.next_u64(), r2.next_u64());
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
    assert!(e.contains("shorter than one block"), "{e}");
}
