//! The token cache survives a crash and a full disk (issue 18, item 3): `meta.json` goes
//! first and comes back last, every file is written through a unique temporary name that
//! a failed write removes, and a half-rewritten cache is never reused.
use data::{prepare, TokenizerKind};
use std::os::unix::process::CommandExt;
use std::path::Path;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_cache_left_half_rewritten_by_a_crash_is_tokenised_again() {
    let dir = tempfile::tempdir().unwrap();
    let (corpus, out) = (dir.path().join("c.txt"), dir.path().join("out"));
    std::fs::write(&corpus, "abcdefghij".repeat(100)).unwrap();
    prepare(&corpus, &out, TokenizerKind::Char).unwrap();
    assert_eq!(names(&out), ["meta.json", "train.bin", "val.bin"]);
    // A rewrite for a new corpus crashed after train.bin: no meta, a stale val.bin.
    std::fs::write(&corpus, "xyz".repeat(100)).unwrap();
    std::fs::remove_file(out.join("meta.json")).unwrap();
    std::fs::write(out.join("train.bin"), [0u8; 540]).unwrap();
    let m = prepare(&corpus, &out, TokenizerKind::Char).unwrap();
    assert_eq!((m.vocab_size, m.train_tokens, m.val_tokens), (3, 270, 30));
    assert_eq!(std::fs::metadata(out.join("val.bin")).unwrap().len(), 60);
    assert_eq!(names(&out), ["meta.json", "train.bin", "val.bin"]);
}

#[test]
fn a_full_disk_names_the_file_and_leaves_no_partial_or_reusable_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (corpus, out) = (dir.path().join("c.txt"), dir.path().join("out"));
    std::fs::write(&corpus, "abcdefghij".repeat(5000)).unwrap(); // train.bin: 90 kB
    let run = |limit: Option<u64>| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_prepare"));
        c.arg("--data").arg(&corpus).arg("--out").arg(&out);
        if let Some(bytes) = limit {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                c.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let lim = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: bytes,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        c.output().unwrap()
    };
    let o = run(Some(50_000));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("train.bin"), "{err}");
    // No temporary left behind, and no meta: nothing half-written can be reused.
    assert!(names(&out).is_empty(), "{:?}", names(&out));
    let o = run(None);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(names(&out), ["meta.json", "train.bin", "val.bin"]);
}
