//! Ctrl-C during `replayer run` (the binary, a real MariaDB): the replay stops at once,
//! even while every connection waits for a far-off command, and the results and the
//! summary of what did run are still written.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use common::*;
use testkit::MariaDb;

#[test]
fn sigint_stops_a_waiting_replay_and_keeps_its_results() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("sigint").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let capture = tmp(&dir, "c.sqlcap");
    // One query at once, the next ones 30 s and 60 s later.
    let mut s = Script::default();
    s.open(1, 0, &db);
    for at_s in [0u64, 30, 60] {
        s.query(1, 1_000_000 + at_s * 1_000_000_000, "SELECT 1", rows(1));
    }
    s.close(1, 61_000_000_000);
    s.write(&capture, false);

    let results = tmp(&dir, "r.sqlres");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_replayer"))
        .args(["run", capture.to_str().unwrap(), "--target", &server.url()])
        .arg("--out")
        .arg(&results)
        .arg("--quiet")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let sent = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // Waiting for the 30 s query would be the bug; allow generous slack for a busy CI.
    let deadline = sent + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "replayer still running after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stopped early: interrupted"), "{stdout}");
    let (execs, _) = executed(&results);
    assert_eq!(
        execs.len(),
        1,
        "the query before the interrupt is in the results"
    );
    assert_eq!(execs[0].error, None);
}
