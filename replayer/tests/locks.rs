//! A replay never creates a lock wait the capture did not have: sysbench read_write,
//! recorded through the recorder, replayed at 1× and flat out.
//!
//! The failure this guards against: the capture reader waited on one lane's full queue
//! while the lane holding a row lock had its COMMIT behind that wait, so every lock
//! wait lasted until `innodb_lock_wait_timeout` (errors 1205, minutes of lag).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::process::Command;

use common::*;
use replayer::target::Speed;
use testkit::MariaDb;

/// Lock waits give up after this long here (the server default is 50 s): a stall shows
/// as 1205 errors within the test's time.
const LOCK_WAIT_TIMEOUT_S: u32 = 5;

fn sysbench(port: u16, db: &str, what: &[&str]) {
    let status = Command::new("sysbench")
        .args([
            "--db-driver=mysql",
            "--mysql-host=127.0.0.1",
            &format!("--mysql-port={port}"),
            "--mysql-user=root",
            &format!("--mysql-db={db}"),
            "--tables=2",
            "--table-size=1000",
            "--threads=4",
            "--report-interval=0",
        ])
        .args(what)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("sysbench runs (scripts/install-deps.sh installs it)");
    assert!(status.success(), "sysbench {what:?}: {status}");
}

/// Records `secs` of sysbench oltp_read_write through an in-process recorder.
async fn record(server: &MariaDb, db: &str, cap: &std::path::Path, secs: u32) {
    let recorder = Recorder::start(server, cap).await;
    let port = recorder.port;
    let db = db.to_string();
    tokio::task::spawn_blocking(move || {
        sysbench(
            port,
            &db,
            &[&format!("--time={secs}"), "oltp_read_write", "run"],
        );
    })
    .await
    .unwrap();
    recorder.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oltp_read_write_replays_without_lock_stalls() {
    let server = MariaDb::shared().unwrap();
    server
        .sql(&format!(
            "SET GLOBAL innodb_lock_wait_timeout = {LOCK_WAIT_TIMEOUT_S}"
        ))
        .unwrap();
    let db = server.fresh_database("locks").unwrap();
    sysbench(server.addr().port(), &db, &["oltp_read_write", "prepare"]);
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "rw.sqlcap");
    record(server, &db, &cap, 6).await;

    // Small lane queues, so lanes behind a lock overflow and the reader must go on.
    for (name, captured_mode) in [("pooled", false), ("captured", true)] {
        let out = tmp(&dir, &format!("{name}-1x.sqlres"));
        let mut cfg = config(&cap, &server.url(), &out, Speed::Factor(1.0));
        cfg.read_ahead = 16;
        if captured_mode {
            cfg = captured(cfg);
        }
        let s = replay(cfg).await;
        let timeouts: u64 = s
            .error_codes
            .iter()
            .filter(|(c, _)| *c == 1205)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(
            timeouts, 0,
            "{name}: lock wait timeouts {:?}",
            s.error_codes
        );
        // The stall this guards against ends each wait with a 1205 (above). The wall
        // time only has to stay sane: on a busy machine a replay of 10 k statements/s
        // can fall behind without any stall (bench/replayer.sh measures fidelity).
        let schedule = s.captured_span.as_secs_f64();
        let wall = s.wall.as_secs_f64();
        assert!(
            wall <= schedule * 3.0,
            "{name}: wall {wall:.2}s for {schedule:.2}s captured ({}; errors {:?}; {:?})",
            s.verdict,
            s.error_codes,
            s.end
        );
    }
    let out = tmp(&dir, "max.sqlres");
    let mut cfg = captured(config(&cap, &server.url(), &out, Speed::Max));
    cfg.read_ahead = 16;
    let s = replay(cfg).await;
    assert!(
        !s.error_codes.iter().any(|(c, _)| *c == 1205),
        "flat out: {:?}",
        s.error_codes
    );
    // Flat out is bound by the server, as the capture was: no lock wait timeout (above)
    // and no wait as long as one.
    assert!(
        s.wall < s.captured_span * 3,
        "flat out takes {:?} for {:?} captured: stalled",
        s.wall,
        s.captured_span
    );
}
