//! Checkpoints under crashes, a full disk and two runs on one folder (issue 18, items 2-4):
//! a `train` child is aborted at each step of a save (`LADDER_TEST_CRASH_AT`) or run under
//! a file-size limit, and the files left on disk are checked.
mod common;
use common::*;
use experiments::checkpoint;
use std::path::Path;

/// A finished base run in `dir/run` stopped at step 4 (checkpoint `ckpt-000004`).
fn base(dir: &Path) {
    let o = output(child(dir, &[], &["--stop-at", "4"], &[]));
    assert!(o.status.success(), "{}", stderr(&o));
    let run = dir.join("run");
    assert_eq!(ckpt_names(&run), ["ckpt", "ckpt-000004"]);
    assert_eq!(link_target(&run), "ckpt-000004");
}

/// After a complete resume to step 8: one checkpoint, no temporaries, rows 1..=8 once each.
fn assert_clean_finish(run: &Path) {
    assert_eq!(
        ckpt_names(run),
        ["ckpt", "ckpt-000008"],
        "{}",
        run.display()
    );
    assert_eq!(link_target(run), "ckpt-000008");
    let pointer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoints.json")).unwrap())
            .unwrap();
    assert_eq!(pointer["name"], "ckpt-000008");
    assert_eq!(pointer["step"], 8);
    let found = checkpoint::latest(run).unwrap();
    assert_eq!(found.step(), 8);
    assert_eq!(metric_steps(run), (1..=8).collect::<Vec<_>>());
    assert_eq!(jsonl_steps(run, "step"), (1..=8).collect::<Vec<_>>());
    assert_eq!(jsonl_steps(run, "eval"), [0, 2, 4, 6, 8]);
}

#[test]
fn a_crash_at_every_point_of_a_save_leaves_a_checkpoint_that_resume_finds() {
    let Some(_) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    // (crash point, the step resume must find afterwards)
    for (point, step) in [
        ("ckpt-files", 4),
        ("ckpt-renamed", 6),
        ("ckpt-pointer", 6),
        ("ckpt-linked", 6),
    ] {
        let d = dir.path().join(point);
        copy_dir(&dir.path().join("cache"), &d.join("cache"));
        copy_dir(&dir.path().join("run"), &d.join("run"));
        let run = d.join("run");
        let o = output(child(
            &d,
            &[],
            &["--resume", "--stop-at", "6"],
            &[("LADDER_TEST_CRASH_AT", point)],
        ));
        assert!(
            !o.status.success() && o.status.code().is_none(),
            "{point}: not aborted: {}",
            stderr(&o)
        );
        // On disk: a verified checkpoint, and `ckpt` still names a complete folder.
        let found = checkpoint::latest(&run).unwrap_or_else(|| panic!("{point}: none found"));
        assert_eq!(found.step(), step, "{point}");
        assert!(
            run.join("ckpt/model.safetensors").is_file(),
            "{point}: ckpt link broken"
        );
        assert!(
            run.join("ckpt-000004/manifest.json").is_file(),
            "{point}: predecessor deleted early"
        );
        // The lock died with the process; the resume finishes and cleans up.
        let o = output(child(&d, &[], &["--resume"], &[]));
        assert!(o.status.success(), "{point}: {}", stderr(&o));
        assert_clean_finish(&run);
    }
}

#[test]
fn older_layouts_left_by_a_crash_are_found_and_replaced() {
    let Some(_) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    // The old swap crashed between its renames: no ckpt/, a complete ckpt.tmp and ckpt.old.
    // Or a plain old ckpt/ folder. Neither has a manifest.
    for layout in [&["ckpt.tmp", "ckpt.old"][..], &["ckpt"][..]] {
        let d = dir.path().join(layout[0]);
        copy_dir(&dir.path().join("cache"), &d.join("cache"));
        let run = d.join("run");
        std::fs::create_dir_all(&run).unwrap();
        for name in layout {
            copy_dir(&dir.path().join("run/ckpt-000004"), &run.join(name));
            std::fs::remove_file(run.join(name).join("manifest.json")).unwrap();
        }
        let (found, why) = experiments::manifest::candidates(&run);
        assert_eq!(
            found.first().map(|f| f.step()),
            Some(4),
            "{layout:?}: {why:?}"
        );
        run_ok(&d, &["--resume"]);
        assert_eq!(ckpt_names(&run), ["ckpt", "ckpt-000008"], "{layout:?}");
        assert!(std::fs::symlink_metadata(run.join("ckpt"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

fn run_ok(d: &Path, args: &[&str]) {
    let o = output(child(d, &[], args, &[]));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_second_run_on_the_same_out_dir_is_refused_naming_the_holder() {
    let Some(_) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let lock = experiments::lock::acquire(&run).unwrap();
    let o = output(child(dir.path(), &[], &[], &[]));
    let e = stderr(&o);
    assert!(!o.status.success(), "{e}");
    assert!(
        e.contains("in use by another run") && e.contains(&format!("PID {}", std::process::id())),
        "{e}"
    );
    // The refused run wrote nothing.
    assert_eq!(names(&run), [".lock"]);
    drop(lock);
    run_ok(dir.path(), &["--stop-at", "2"]);
    assert_eq!(ckpt_names(&run), ["ckpt", "ckpt-000002"]);
}

/// `RLIMIT_FSIZE` in the child: writes past `bytes` fail (EFBIG) as on a full disk.
fn limit_file_size(c: &mut std::process::Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
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

#[test]
fn a_full_disk_names_the_file_removes_the_partial_save_and_keeps_the_last() {
    let Some(_) = corpus() else { return };
    let dir = tempfile::tempdir().unwrap();
    base(dir.path());
    let run = dir.path().join("run");
    let before = snapshot(&run.join("ckpt-000004"));
    // The model file fits, the optimizer state (twice its size) does not.
    let model = std::fs::metadata(run.join("ckpt-000004/model.safetensors"))
        .unwrap()
        .len();
    let mut c = child(dir.path(), &[], &["--resume"], &[]);
    limit_file_size(&mut c, model + model / 2);
    let o = c.output().unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("optimizer.safetensors") && e.contains("previous checkpoint is kept"),
        "{e}"
    );
    // No partial folder keeps the disk full; the last checkpoint is intact and verified.
    assert_eq!(ckpt_names(&run), ["ckpt", "ckpt-000004"]);
    assert_eq!(snapshot(&run.join("ckpt-000004")), before);
    assert_eq!(checkpoint::latest(&run).unwrap().step(), 4);
    complete_lines(&run.join("log.jsonl"));
    complete_lines(&run.join("metrics.csv"));
    // With room again, the run resumes from there and finishes cleanly.
    run_ok(dir.path(), &["--resume"]);
    assert_clean_finish(&run);
}
