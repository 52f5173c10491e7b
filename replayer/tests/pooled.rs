//! Pooled replay, commit order and the schedule verdict, against a real MariaDB.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use captures::{Cmd, Divergence};
use common::*;
use replayer::target::Speed;
use replayer::verdict::{MAX_LAG_P99_MS, Verdict};
use testkit::MariaDb;

/// These tests judge timing (a schedule kept or not): one at a time, so that they do not
/// take the CPU from each other.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn setup(prefix: &str) -> (&'static MariaDb, String) {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database(prefix).unwrap();
    server
        .sql(&format!(
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, name VARCHAR(50));
             INSERT INTO `{db}`.t VALUES (1,'one'),(2,'two'),(3,'three');"
        ))
        .unwrap();
    (server, db)
}

/// One captured connection sending 100 short units a second for three seconds: a 2 ms
/// sleep, then a point select. (Long enough that the pool's first connections, opened
/// on demand, do not make its p99.)
fn busy_single_connection(db: &str) -> Script {
    let mut s = Script::default();
    s.open(1, 0, db);
    for i in 0..300u64 {
        let t = MS + i * 10 * MS;
        s.query(1, t, "SELECT SLEEP(0.002)", rows(1));
        s.query(1, t + 3 * MS, "SELECT name FROM t WHERE id = 2", rows(1));
    }
    s.close(1, 3_010 * MS);
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_8x_a_pooled_replay_keeps_the_schedule_a_serial_one_cannot() {
    let _serial = SERIAL.lock().await;
    let (server, db) = setup("keep");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    busy_single_connection(&db).write(&cap, false);

    let out = tmp(&dir, "captured.sqlres");
    let serial = replay(captured(config(
        &cap,
        &server.url(),
        &out,
        Speed::Factor(8.0),
    )))
    .await;
    assert!(
        serial.verdict.fell_behind(),
        "one serial connection cannot send 2.5 ms units every 1.25 ms: {}",
        serial.verdict
    );

    let out = tmp(&dir, "pooled.sqlres");
    let pooled = replay(config(&cap, &server.url(), &out, Speed::Factor(8.0))).await;
    assert_eq!(pooled.errors, 0);
    assert_eq!(pooled.commands, 600);
    assert!(pooled.verdict.kept(), "{}", pooled.verdict);
    let lag_p99_ms = pooled.lag.value_at_quantile(0.99) as f64 / 1000.0;
    assert!(lag_p99_ms < MAX_LAG_P99_MS, "lag p99 {lag_p99_ms} ms");
    assert!(
        pooled.end.peak_connections >= 2,
        "several target connections: {:?}",
        pooled.end
    );
    assert_eq!(pooled.end.connections, "pooled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_stays_on_one_target_connection() {
    let _serial = SERIAL.lock().await;
    let (server, db) = setup("tx");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db);
    // Ten transactions 20 ms apart, each with a 30 ms sleep inside: at 4× they overlap,
    // so the pool runs them on several connections. Each writes its connection id twice.
    for i in 0..10u64 {
        let t = MS + i * 20 * MS;
        let id = 100 + 2 * i;
        s.query(1, t, "BEGIN", ok(0))
            .query(
                1,
                t + MS,
                &format!("INSERT INTO t VALUES ({id}, CONNECTION_ID())"),
                ok(1),
            )
            .query(1, t + 2 * MS, "SELECT SLEEP(0.03)", rows(1))
            .query(
                1,
                t + 3 * MS,
                &format!("INSERT INTO t VALUES ({}, CONNECTION_ID())", id + 1),
                ok(1),
            )
            .query(1, t + 4 * MS, "COMMIT", ok(0));
    }
    s.close(1, 300 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let summary = replay(config(&cap, &server.url(), &out, Speed::Factor(4.0))).await;
    assert_eq!(summary.errors, 0);
    assert!(summary.end.peak_connections >= 2, "{:?}", summary.end);
    let pairs = server
        .sql(&format!(
            "SELECT COUNT(*), SUM(a.name = b.name), COUNT(DISTINCT a.name) FROM `{db}`.t a \
             JOIN `{db}`.t b ON b.id = a.id + 1 WHERE a.id >= 100 AND a.id % 2 = 0"
        ))
        .unwrap();
    let cols: Vec<u64> = pairs
        .split_whitespace()
        .map(|c| c.parse().unwrap())
        .collect();
    assert_eq!(cols[0], 10, "every transaction ran");
    assert_eq!(cols[1], 10, "both statements of each on one connection");
    assert!(cols[2] >= 2, "and not all on the same one: {pairs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_handed_over_before_its_end_is_read_stays_on_one_connection() {
    let _serial = SERIAL.lock().await;
    let (server, db) = setup("longtx");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db).open(2, 0, &db);
    s.query(1, MS, "BEGIN", ok(0)).query(
        1,
        2 * MS,
        "INSERT INTO t VALUES (300, CONNECTION_ID())",
        ok(1),
    );
    // Two hundred records of another connection before the transaction goes on: the
    // reader hands the open unit over with a queue, its later steps follow through it.
    for i in 0..200u64 {
        s.query(2, 3 * MS + i * MS, "SELECT 1", rows(1));
    }
    s.query(
        1,
        250 * MS,
        "INSERT INTO t VALUES (301, CONNECTION_ID())",
        ok(1),
    )
    .query(1, 251 * MS, "COMMIT", ok(0))
    .close(1, 260 * MS)
    .close(2, 260 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let summary = replay(config(&cap, &server.url(), &out, Speed::Factor(1.0))).await;
    assert_eq!(summary.errors, 0, "{:?}", summary.error_codes);
    let same = server
        .sql(&format!(
            "SELECT a.name = b.name FROM `{db}`.t a JOIN `{db}`.t b ON b.id = 301 WHERE a.id = 300"
        ))
        .unwrap();
    assert_eq!(same.trim(), "1", "both inserts on one connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_prepared_in_one_unit_executes_on_another_connection() {
    let _serial = SERIAL.lock().await;
    let (server, db) = setup("stmt");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db)
        .cmd(
            1,
            MS,
            Cmd::Prepare {
                sql: b"SELECT name FROM t WHERE id = ?".to_vec(),
                stmt_id: 5,
                params: 1,
                columns: 1,
            },
            ok(0),
        )
        // Takes the connection that prepared the statement (the only idle one)...
        .query(1, 2 * MS, "SELECT SLEEP(0.3)", rows(1))
        // ...so this unit runs on a new one, which has never seen statement 5.
        .cmd(
            1,
            3 * MS,
            Cmd::Execute {
                stmt_id: 5,
                flags: 0,
                params: vec![int(3)],
            },
            rows(1),
        )
        .close(1, 400 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let summary = replay(config(&cap, &server.url(), &out, Speed::Factor(1.0))).await;
    assert_eq!(summary.errors, 0, "{:?}", summary.error_codes);
    assert_eq!(summary.diverged_commands(), 0);
    assert!(summary.end.peak_connections >= 2, "{:?}", summary.end);
    let (execs, _) = executed(&out);
    let exec = execs.iter().find(|e| e.seq == 2).unwrap();
    assert_eq!((exec.rows, exec.error), (1, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sets_a_variable_is_pinned_and_sees_it() {
    let _serial = SERIAL.lock().await;
    let (server, db) = setup("pin");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db)
        .open(2, 0, &db)
        .query(1, MS, "SET @v = 42", ok(0))
        // Connection 2 keeps other target connections busy meanwhile.
        .query(2, 2 * MS, "SELECT SLEEP(0.2)", rows(1))
        .query(1, 3 * MS, "SELECT SLEEP(0.05)", rows(1))
        .query(1, 4 * MS, "INSERT INTO t VALUES (200, @v)", ok(1))
        .close(1, 300 * MS)
        .close(2, 300 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let summary = replay(config(&cap, &server.url(), &out, Speed::Factor(1.0))).await;
    assert_eq!(summary.errors, 0, "{:?}", summary.error_codes);
    assert_eq!(summary.end.pinned, vec![("user variable".to_string(), 1)]);
    let v = server
        .sql(&format!("SELECT name FROM `{db}`.t WHERE id = 200"))
        .unwrap();
    assert_eq!(v.trim(), "42");
}

/// Connection 1 inserts a row in a transaction and commits; connection 2 reads it 1 ms
/// after the commit. The target's insert is slowed by a trigger (50 ms).
fn read_after_commit(server: &MariaDb, db: &str, dir: &tempfile::TempDir) -> std::path::PathBuf {
    server
        .sql(&format!(
            "CREATE TRIGGER `{db}`.slow BEFORE INSERT ON `{db}`.t FOR EACH ROW SET @x = SLEEP(0.05)"
        ))
        .unwrap();
    let cap = tmp(dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, db)
        .open(2, 0, db)
        .query(1, MS, "BEGIN", ok(0))
        .query(1, 2 * MS, "INSERT INTO t VALUES (300, 'new')", ok(1))
        .query(1, 3 * MS, "COMMIT", ok(0))
        .query(
            2,
            3 * MS + 200_000,
            "SELECT name FROM t WHERE id = 300",
            rows(1),
        )
        .close(1, 10 * MS)
        .close(2, 10 * MS);
    s.write(&cap, false);
    cap
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_order_keeps_a_read_behind_the_write_it_depends_on() {
    let _serial = SERIAL.lock().await;
    let (server, db) = setup("sync");
    let dir = tempfile::tempdir().unwrap();
    let cap = read_after_commit(server, &db, &dir);

    let out = tmp(&dir, "free.sqlres");
    let free = replay(config(&cap, &server.url(), &out, Speed::Factor(1.0))).await;
    let (execs, _) = executed(&out);
    let read = execs.iter().find(|e| e.conn == 2).unwrap();
    assert_eq!(
        read.divergence,
        Divergence::RowCount,
        "without sync the read overtakes"
    );
    assert_eq!(free.end.sync_waits, 0);

    server
        .sql(&format!("DELETE FROM `{db}`.t WHERE id = 300"))
        .unwrap();
    let out = tmp(&dir, "sync.sqlres");
    let mut cfg = config(&cap, &server.url(), &out, Speed::Factor(1.0));
    cfg.sync_commits = true;
    let synced = replay(cfg).await;
    let (execs, _) = executed(&out);
    let read = execs.iter().find(|e| e.conn == 2).unwrap();
    assert_eq!((read.rows, read.divergence), (1, Divergence::None));
    assert_eq!(synced.end.sync_waits, 1, "{:?}", synced.end);
    assert!(synced.end.sync_wait_ns >= 30_000_000, "{:?}", synced.end);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_order_holds_in_captured_replay_too() {
    let _serial = SERIAL.lock().await;
    let (server, db) = setup("syncc");
    let dir = tempfile::tempdir().unwrap();
    let cap = read_after_commit(server, &db, &dir);
    let out = tmp(&dir, "sync.sqlres");
    let mut cfg = captured(config(&cap, &server.url(), &out, Speed::Factor(1.0)));
    cfg.sync_commits = true;
    let synced = replay(cfg).await;
    assert_eq!(synced.diverged_commands(), 0);
    assert_eq!(synced.end.sync_waits, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_against_a_target_too_slow_for_its_speed_fell_behind() {
    let _serial = SERIAL.lock().await;
    let (server, db) = setup("slow");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db);
    // 20 ms of work every 10 ms, on one pooled connection at most.
    for i in 0..20u64 {
        s.query(1, MS + i * 10 * MS, "SELECT SLEEP(0.02)", rows(1));
    }
    s.close(1, 250 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let mut cfg = config(&cap, &server.url(), &out, Speed::Factor(1.0));
    cfg.max_connections = Some(1);
    let summary = replay(cfg).await;
    assert!(
        matches!(summary.verdict, Verdict::FellBehind { .. }),
        "{}",
        summary.verdict
    );
    assert_eq!(summary.end.max_connections, 1);
}
