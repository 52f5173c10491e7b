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
    // Waiting for the 30 s query would be the bug; allow generous slack for a busy CI.
    let out = interrupt_after_a_while(&capture, server, &results, Duration::from_secs(15));
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

#[test]
fn sigint_stops_a_statement_in_flight_within_seconds() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("sigkill").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let capture = tmp(&dir, "c.sqlcap");
    // A statement that would run a minute (a lock wait behaves the same).
    let mut s = Script::default();
    s.open(1, 0, &db)
        .query(
            1,
            1_000_000,
            "SELECT SLEEP(60) AS sqlreplay_sigkill",
            rows(1),
        )
        .close(1, 61_000_000_000);
    s.write(&capture, false);

    let results = tmp(&dir, "r.sqlres");
    // A grace of 1 s, then KILL QUERY: well within 5 s (the statement had 58 s to go).
    let out = interrupt_after_a_while(&capture, server, &results, Duration::from_secs(5));
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (execs, _) = executed(&results);
    assert_eq!(
        execs.len(),
        1,
        "the interrupted statement is in the results"
    );
    assert_eq!(execs[0].error, Some(1317), "as interrupted");
    let running = server
        .sql("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE '%sqlreplay_sigkill%' AND INFO NOT LIKE '%PROCESSLIST%'")
        .unwrap();
    assert_eq!(running.trim(), "0", "the server stopped the statement");
}

/// Runs `replayer run` on `capture`, sends SIGINT after 1.5 s and waits at most `limit`
/// for it to exit; its output.
fn interrupt_after_a_while(
    capture: &std::path::Path,
    server: &MariaDb,
    results: &std::path::Path,
    limit: Duration,
) -> std::process::Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_replayer"))
        .args(["run", capture.to_str().unwrap(), "--target", &server.url()])
        .arg("--out")
        .arg(results)
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
    while child.try_wait().unwrap().is_none() {
        assert!(
            sent.elapsed() < limit,
            "replayer still running {limit:?} after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}
