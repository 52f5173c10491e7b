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
