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
    let mut w = captures::ResultsWriter::create(path, &meta, small_chunks()).unwrap();
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
            warnings: 0,
            digest: None,
            divergence: captures::Divergence::None,
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
    s.write_with(path, false, small_chunks());
}

/// Chunks of 512 bytes: a cut or a flipped byte leaves most of a file readable.
fn small_chunks() -> captures::WriterOptions {
    captures::WriterOptions {
        chunk_bytes: 512,
        ..Default::default()
    }
}

/// Flips a byte in the middle of the file so that reading fails there with damage (not
/// truncation), and returns the error a reader meets.
fn damage(path: &std::path::Path, read: impl Fn(&std::path::Path) -> Option<captures::Error>) {
    let clean = std::fs::read(path).unwrap();
    for at in clean.len() / 2..clean.len() {
        let mut bytes = clean.clone();
        bytes[at] ^= 0x40;
        std::fs::write(path, &bytes).unwrap();
        if read(path).is_some_and(|e| !e.is_truncation()) {
            return;
        }
    }
    panic!("no byte flip damaged {}", path.display());
}

fn capture_error(path: &std::path::Path) -> Option<captures::Error> {
    captures::CaptureReader::open(path)
        .unwrap()
        .find_map(Result::err)
}

fn results_error(path: &std::path::Path) -> Option<captures::Error> {
    captures::ResultsReader::open(path)
        .unwrap()
        .find_map(Result::err)
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
fn a_damaged_capture_fails_inspect_after_the_readable_part() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("c.sqlcap");
    capture_file(&capture, 300);
    damage(&capture, capture_error);
    for json in [false, true] {
        let mut args = vec!["inspect", capture.to_str().unwrap()];
        if json {
            args.push("--json");
        }
        let out = replayer(&args);
        let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
        assert_eq!(out.status.code(), Some(1), "{stdout}\n{err}");
        assert!(
            stdout.contains("select c"),
            "the part before the damage: {stdout}"
        );
        assert!(err.contains("is damaged"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    // A dry run reads the capture the same way.
    let out = replayer(&[
        "run",
        capture.to_str().unwrap(),
        "--dry-run",
        "--target",
        "mysql://u@127.0.0.1:1",
        "--out",
        dir.path().join("r.sqlres").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn a_truncated_capture_is_inspected_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("c.sqlcap");
    capture_file(&capture, 300);
    truncate_tail(&capture);
    assert!(capture_error(&capture).unwrap().is_truncation());
    let out = replayer(&["inspect", capture.to_str().unwrap()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn a_damaged_results_file_fails_timeline_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r.sqlres");
    results_file(&results, 2000, 1);
    damage(&results, results_error);
    let out = replayer(&["timeline", results.to_str().unwrap()]);
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{err}");
    assert!(
        stdout.contains("latency by phase"),
        "the part before: {stdout}"
    );
    assert!(err.contains("is damaged"), "{err}");
    let out = replayer(&["compare", results.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn a_truncated_results_file_gives_a_timeline_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("r.sqlres");
    results_file(&results, 2000, 1);
    truncate_tail(&results);
    let out = replayer(&["timeline", results.to_str().unwrap()]);
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{err}");
    assert!(stdout.contains("latency by phase"), "{stdout}");
    assert!(
        err.contains("warning") && err.contains("truncated"),
        "{err}"
    );
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

#[test]
fn run_fails_on_a_damaged_capture_and_warns_on_a_truncated_one() {
    let server = testkit::MariaDb::shared().unwrap();
    let db = server.fresh_database("cli").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clean = dir.path().join("clean.sqlcap");
    let mut s = common::Script::default();
    s.open(1, 0, &db);
    for i in 0..2000u64 {
        s.query(1, (1 + i) * 1000, &format!("SELECT {i}"), common::rows(1));
    }
    s.write_with(&clean, false, small_chunks());
    let run = |capture: &std::path::Path| {
        let out = dir.path().join("r.sqlres");
        Command::new(env!("CARGO_BIN_EXE_replayer"))
            .arg("run")
            .arg(capture)
            .args(["--target", &server.url(), "--speed", "max", "--quiet"])
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };

    let damaged = dir.path().join("damaged.sqlcap");
    std::fs::copy(&clean, &damaged).unwrap();
    damage(&damaged, capture_error);
    let out = run(&damaged);
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{err}");
    assert!(stdout.contains("replay "), "the summary: {stdout}");
    assert!(err.contains("is damaged"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let truncated = dir.path().join("truncated.sqlcap");
    std::fs::copy(&clean, &truncated).unwrap();
    truncate_tail(&truncated);
    let out = run(&truncated);
    let (stdout, err) = (String::from_utf8_lossy(&out.stdout), stderr(&out));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{err}");
    assert!(
        err.contains("warning") && err.contains("truncated"),
        "{err}"
    );
}

#[test]
fn flags_that_would_lose_data_or_explode_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.sqlcap");
    capture_file(&cap, 3);
    let before = std::fs::read(&cap).unwrap();
    let cap_s = cap.to_str().unwrap();
    let target = "mysql://u@127.0.0.1:1";
    let other = dir.path().join("r.sqlres");
    let other_s = other.to_str().unwrap();
    for (args, says) in [
        (
            vec!["run", cap_s, "--target", target, "--out", cap_s],
            "is the capture itself",
        ),
        (
            vec![
                "run", cap_s, "--target", target, "--out", other_s, "--scale", "0",
            ],
            "--scale",
        ),
        (
            vec![
                "run", cap_s, "--target", target, "--out", other_s, "--scale", "100000",
            ],
            "--scale",
        ),
    ] {
        let out = replayer(&args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read(&cap).unwrap(),
        before,
        "the capture is untouched"
    );
}
