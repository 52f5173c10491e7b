//! The `replayer` binary at the edge of the process: how errors are printed, what a
//! closed stdout and a damaged input do to the exit status, plain-text logs off a
//! terminal. No server needed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::process::{Command, Output};

fn replayer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_replayer"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_missing_file_is_one_line_naming_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.sqlcap");
    let missing = missing.to_str().unwrap();
    for args in [
        vec!["inspect", missing],
        vec!["timeline", missing],
        vec!["compare", missing],
        vec!["fingerprint", missing],
        vec!["run", missing, "--target", "mysql://u@127.0.0.1:1", "--out"],
    ] {
        let mut args = args.clone();
        let out_file = dir.path().join("out.sqlres");
        if args.last() == Some(&"--out") {
            args.push(out_file.to_str().unwrap());
        }
        let out = replayer(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("replayer: "), "{args:?}: {err}");
        assert_eq!(err.matches(missing).count(), 1, "{args:?}: {err}");
        assert_eq!(err.matches("No such file").count(), 1, "{args:?}: {err}");
    }
}

/// A results file of `n` executions in small chunks (so a cut or a flipped byte leaves
/// most of them readable).
fn results_file(path: &std::path::Path, n: u64) {
    let meta = captures::RunMeta {
        tool: "test".into(),
        run_id: "r1".into(),
        label: "base".into(),
        target: "t".into(),
        server_version: "10.11".into(),
        speed: Some(1.0),
        scale: 1,
        capture: "c.sqlcap".into(),
        captured_ns: n * common::MS,
        started_unix_ns: 0,
        labels: Default::default(),
    };
    let options = captures::WriterOptions {
        chunk_bytes: 512,
        ..Default::default()
    };
    let mut w = captures::ResultsWriter::create(path, &meta, options).unwrap();
    w.append(&captures::ResultRecord::Class {
        class: 7,
        fingerprint: "select ?".into(),
        example: None,
    })
    .unwrap();
    for i in 0..n {
        w.append(&captures::ResultRecord::Exec(captures::Executed {
            conn: 1,
            seq: i,
            class: 7,
            kind: captures::CmdKind::Query,
            scheduled_ns: i * common::MS,
            sent_ns: i * common::MS,
            finished_ns: i * common::MS + 100_000,
            rows: 1,
            error: None,
            mismatch: captures::Mismatch::NONE,
        }))
        .unwrap();
    }
    w.close().unwrap();
}

/// The file cut in the middle of its last chunk: what a killed writer leaves.
fn truncate_tail(path: &std::path::Path) {
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() - 3]).unwrap();
}

#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r.sqlres");
    results_file(&results, 2000);
    truncate_tail(&results);
    // A truncated results file is read up to the cut, with a logged warning.
    let out = Command::new(env!("CARGO_BIN_EXE_replayer"))
        .args(["compare", "--log", "warn"])
        .arg(&results)
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("WARN"), "a warning is logged: {err}");
    assert!(!err.contains('\x1b'), "no ANSI escapes: {err:?}");
}
