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

/// A results file of `n` executions of `classes` classes in small chunks (so a cut or a
/// flipped byte leaves most of them readable).
fn results_file(path: &std::path::Path, n: u64, classes: u64) {
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
    for class in 0..classes {
        w.append(&captures::ResultRecord::Class {
            class,
            fingerprint: format!("select c{class} from t"),
            example: None,
        })
        .unwrap();
    }
    for i in 0..n {
        w.append(&captures::ResultRecord::Exec(captures::Executed {
            conn: 1,
            seq: i,
            class: i % classes,
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
    results_file(&results, 2000, 1);
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

/// A capture of `classes` distinct query classes, in small chunks.
fn capture_file(path: &std::path::Path, classes: u64) {
    let mut s = common::Script::default();
    s.open(1, 0, "app");
    for i in 0..classes {
        let sql = format!("SELECT c{i} FROM t{i} WHERE id = {i}");
        s.query(1, (i + 1) * common::MS, &sql, common::rows(1));
    }
    s.close(1, (classes + 2) * common::MS);
    let mut w = captures::CaptureWriter::create(
        path,
        &common::meta(false),
        captures::WriterOptions {
            chunk_bytes: 512,
            ..Default::default()
        },
    )
    .unwrap();
    for r in &s.records {
        w.append(r).unwrap();
    }
    w.close().unwrap();
}

/// Spawns the command with stdout piped, reads one line, closes the pipe.
fn read_one_line_and_leave(args: &[&std::ffi::OsStr]) -> Output {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_replayer"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "one line of output");
    drop(stdout);
    child.wait_with_output().unwrap()
}

#[test]
fn a_reader_that_leaves_early_ends_inspect_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("c.sqlcap");
    // Two tables of 20 000 classes: far more than a pipe holds.
    capture_file(&capture, 20_000);
    let out = read_one_line_and_leave(&[
        "inspect".as_ref(),
        capture.as_os_str(),
        "--top".as_ref(),
        "100000".as_ref(),
    ]);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err, "", "nothing to say to a reader that left");
}

#[test]
fn a_reader_that_leaves_early_ends_fingerprint_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("q.sql");
    let sql: String = (0..100_000)
        .map(|i| format!("SELECT c{i} FROM t WHERE id = {i};\n"))
        .collect();
    std::fs::write(&input, sql).unwrap();
    let out = read_one_line_and_leave(&[
        "fingerprint".as_ref(),
        "--sql".as_ref(),
        "--text".as_ref(),
        input.as_os_str(),
    ]);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err, "", "nothing to say to a reader that left");
}

#[test]
fn a_reader_that_leaves_early_ends_compare_quietly() {
    // compare still prints with print!: the panic hook is what ends it quietly.
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r.sqlres");
    results_file(&results, 4_000, 2_000);
    let out = read_one_line_and_leave(&[
        "compare".as_ref(),
        results.as_os_str(),
        "--top".as_ref(),
        "100000".as_ref(),
    ]);
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
