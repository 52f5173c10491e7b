//! `replayer ramp` end to end (the binary, a real MariaDB): speeds go up until the
//! target cannot keep the schedule, and the report says where.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use common::*;
use testkit::MariaDb;

#[test]
fn ramp_stops_at_the_first_speed_the_target_cannot_keep_up_with() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("ramp").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let capture = tmp(&dir, "c.sqlcap");
    // One connection, a query every 10 ms for 0.5 s: 100/s at 1×. Each query sleeps
    // 2 ms on the server, so one connection can do at most ~500/s: fine at 1× and 2×,
    // impossible at 50×.
    let mut s = Script::default();
    s.open(1, 0, &db);
    for i in 0..50u64 {
        s.query(
            1,
            1_000_000 + i * 10_000_000,
            "SELECT SLEEP(0.002)",
            rows(1),
        );
    }
    s.close(1, 600_000_000);
    s.write(&capture, false);

    let out = dir.path().join("ramp");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_replayer"))
        .args([
            "ramp",
            capture.to_str().unwrap(),
            "--target",
            &server.url(),
            "--speeds",
            "1,2,50,100",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("knee: the target keeps up to 2x and saturates at 50x"),
        "{stdout}"
    );

    let steps: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("ramp.json")).unwrap()).unwrap();
    let steps = steps.as_array().unwrap();
    assert_eq!(
        steps.len(),
        3,
        "stops at the first saturated speed: {steps:?}"
    );
    assert_eq!(steps[2]["saturated"], true);
    assert!(
        steps[2]["achieved_qps"].as_f64().unwrap()
            < 0.9 * steps[2]["scheduled_qps"].as_f64().unwrap()
    );
    let html = std::fs::read_to_string(out.join("ramp.html")).unwrap();
    assert!(html.contains("<svg"), "capacity chart");
    for speed in ["1", "2", "50"] {
        assert!(out.join(format!("speed-{speed}x.results")).exists());
    }
}
