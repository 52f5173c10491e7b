//! The `recorder` binary at the edge of the process: how a startup error is printed.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::process::Command;

#[test]
fn an_out_file_that_cannot_be_created_is_one_line_naming_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("no-such-dir").join("c.sqlcap");
    let run = Command::new(env!("CARGO_BIN_EXE_recorder"))
        .args([
            "--upstream",
            "127.0.0.1:1",
            "--listen",
            "127.0.0.1:0",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("recorder: "), "{err}");
    assert_eq!(err.matches(out.to_str().unwrap()).count(), 1, "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}
