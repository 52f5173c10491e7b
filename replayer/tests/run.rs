//! `replayer run` against a real MariaDB: semantics, outcomes, failures.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use captures::{Cmd, Divergence, Outcome, Param, Value};
use common::*;
use replayer::target::Speed;
use testkit::MariaDb;

fn setup(prefix: &str) -> (&'static MariaDb, String) {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database(prefix).unwrap();
    server
        .sql(&format!(
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY, name VARCHAR(50), d DATETIME NULL, b BLOB NULL);
             INSERT INTO `{db}`.t VALUES (1,'one',NULL,NULL),(2,'two',NULL,NULL),(3,'drei',NULL,NULL);"
        ))
        .unwrap();
    (server, db)
}

#[tokio::test]
async fn text_and_prepared_statements_replay_with_their_outcomes() {
    let (server, db) = setup("prep");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db)
        .query(1, MS, "SELECT * FROM t WHERE id > 1", rows(2))
        .query(
            1,
            2 * MS,
            "INSERT INTO t (id, name) VALUES (10, 'ten')",
            ok(1),
        )
        .cmd(
            1,
            3 * MS,
            Cmd::Prepare {
                sql: b"SELECT name FROM t WHERE id = ?".to_vec(),
                stmt_id: 77,
                params: 1,
                columns: 1,
            },
            ok(0),
        )
        .cmd(
            1,
            4 * MS,
            Cmd::Execute {
                stmt_id: 77,
                flags: 0,
                params: vec![int(10)],
            },
            rows(1),
        )
        .cmd(
            1,
            5 * MS,
            Cmd::Execute {
                stmt_id: 77,
                flags: 0,
                params: vec![int(99)],
            },
            rows(0),
        )
        .cmd(
            1,
            6 * MS,
            Cmd::Prepare {
                sql: b"INSERT INTO t (id, name, d, b) VALUES (?, ?, ?, ?)".to_vec(),
                stmt_id: 78,
                params: 4,
                columns: 0,
            },
            ok(0),
        )
        .cmd(
            1,
            7 * MS,
            Cmd::Execute {
                stmt_id: 78,
                flags: 0,
                params: vec![
                    int(11),
                    Param {
                        column_type: 253,
                        unsigned: false,
                        value: Value::Bytes("ünïcødé ✓".as_bytes().to_vec()),
                    },
                    Param {
                        column_type: 12,
                        unsigned: false,
                        value: Value::Date(2026, 11, 24, 10, 0, 0, 0),
                    },
                    Param {
                        column_type: 252,
                        unsigned: false,
                        value: Value::Null,
                    },
                ],
            },
            ok(1),
        )
        .cmd(
            1,
            8 * MS,
            Cmd::StmtClose { stmt_id: 77 },
            Outcome::NoResponse,
        )
        .query(
            1,
            9 * MS,
            "INSERT INTO t (id) VALUES (1)",
            Outcome::Err {
                code: 1062,
                sqlstate: "23000".into(),
                message: String::new(),
            },
        )
        .cmd(1, 10 * MS, Cmd::Ping, ok(0))
        .close(1, 11 * MS);
    s.write(&cap, false);

    let out = tmp(&dir, "r.sqlres");
    // One serial connection: the statements depend on each other's effects.
    let summary = replay(captured(config(&cap, &server.url(), &out, Speed::Max))).await;
    assert_eq!(summary.errors, 1, "only the captured duplicate key");
    assert_eq!(summary.diverged_commands(), 0);
    let (execs, classes) = executed(&out);
    assert_eq!(execs.len(), 10);
    assert!(execs.iter().all(|e| e.divergence == Divergence::None));
    assert_eq!(execs.iter().filter(|e| e.error == Some(1062)).count(), 1);
    assert!(
        classes.contains(&"select name from t where id = ?".to_string()),
        "{classes:?}"
    );
    let name = server
        .sql(&format!("SELECT name, d FROM `{db}`.t WHERE id = 11"))
        .unwrap();
    assert_eq!(name.trim(), "ünïcødé ✓\t2026-11-24 10:00:00");
}

#[tokio::test]
async fn outcome_mismatches_are_flagged() {
    let (server, db) = setup("mism");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db)
        .query(1, MS, "SELECT * FROM t", rows(5))
        .query(1, 2 * MS, "UPDATE t SET name = 'x' WHERE id = 1", ok(0))
        .query(1, 3 * MS, "SELECT * FROM nope", ok(0))
        .close(1, 4 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let summary = replay(config(&cap, &server.url(), &out, Speed::Max)).await;
    let (execs, _) = executed(&out);
    assert_eq!(execs[0].divergence, Divergence::RowCount);
    assert_eq!(execs[0].rows, 3);
    assert_eq!(execs[1].divergence, Divergence::Affected);
    assert_eq!(execs[2].divergence, Divergence::ErrorNew);
    assert_eq!(execs[2].error, Some(1146));
    assert_eq!(summary.diverged_commands(), 3);
}

#[tokio::test]
async fn commands_follow_the_captured_timeline_scaled_by_speed() {
    let (server, db) = setup("time");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db).open(2, 0, &db);
    for i in 0..6u64 {
        s.query(1 + i % 2, (100 + i * 200) * MS, "SELECT 1", rows(1));
    }
    s.close(1, 1400 * MS).close(2, 1400 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let summary = replay(config(&cap, &server.url(), &out, Speed::Factor(2.0))).await;
    let (execs, _) = executed(&out);
    assert_eq!(execs.len(), 6);
    let mut scheduled: Vec<u64> = execs.iter().map(|e| e.scheduled_ns).collect();
    scheduled.sort_unstable();
    for (i, sch) in scheduled.iter().enumerate() {
        // (100 + 200 i) ms captured after the first record (t = 0) / 2.
        let want = (100 + 200 * i as u64) * MS / 2;
        assert!(
            sch.abs_diff(want) < MS,
            "command {i}: scheduled {sch} want {want}"
        );
    }
    for e in &execs {
        assert!(e.sent_ns >= e.scheduled_ns);
        assert!(e.lag_ns() < 20 * MS, "lag {} ns", e.lag_ns());
    }
    // 600 ms of capture at 2× is ~300 ms of replay, not back to back.
    assert!(summary.wall.as_millis() >= 340, "{:?}", summary.wall);
}

#[tokio::test]
async fn scale_replays_each_connection_k_times() {
    let (server, db) = setup("scale");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db)
        .query(1, MS, "SELECT COUNT(*) FROM t", rows(1))
        .close(1, 2 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let mut cfg = config(&cap, &server.url(), &out, Speed::Max);
    cfg.scale = 3;
    let summary = replay(cfg).await;
    assert_eq!(summary.commands, 3);
    assert_eq!(summary.connections, 3);
    let (execs, _) = executed(&out);
    let mut conns: Vec<u64> = execs.iter().map(|e| e.conn).collect();
    conns.dedup();
    assert_eq!(conns.len(), 3);
}

#[tokio::test]
async fn db_map_points_captured_databases_elsewhere() {
    let (server, db) = setup("map");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, "production")
        .query(1, MS, "SELECT * FROM t", rows(3))
        .close(1, 2 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let mut cfg = config(&cap, &server.url(), &out, Speed::Max);
    cfg.target =
        replayer::target::Target::parse(&server.url(), None, &[format!("production={db}")])
            .unwrap();
    let summary = replay(cfg).await;
    assert_eq!(
        (
            summary.commands,
            summary.errors,
            summary.diverged_commands()
        ),
        (1, 0, 0)
    );
}

#[tokio::test]
async fn unreachable_target_is_an_error_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, "x").query(1, MS, "SELECT 1", rows(1));
    s.write(&cap, false);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = tmp(&dir, "r.sqlres");
    let err = replayer::run::run(config(
        &cap,
        &format!("mysql://root@127.0.0.1:{port}"),
        &out,
        Speed::Max,
    ))
    .await
    .unwrap_err();
    assert!(err.to_string().contains("cannot reach the target"), "{err}");
    assert!(
        !out.exists(),
        "no results file for a run that never started"
    );
}

#[tokio::test]
async fn redacted_captures_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    Script::default().write(&cap, true);
    let out = tmp(&dir, "r.sqlres");
    let err = replayer::run::run(config(&cap, "mysql://root@127.0.0.1:1", &out, Speed::Max))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("redacted capture"), "{err}");
}

#[tokio::test]
async fn a_truncated_capture_replays_its_good_part() {
    let (server, db) = setup("trunc");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db);
    for i in 0..5000u64 {
        s.query(1, (1 + i) * 1000, &format!("SELECT {i}"), rows(1));
    }
    s.write(&cap, false);
    let len = std::fs::metadata(&cap).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&cap).unwrap();
    f.set_len(len - 10).unwrap();
    let out = tmp(&dir, "r.sqlres");
    let summary = replay(config(&cap, &server.url(), &out, Speed::Max)).await;
    assert!(
        summary.commands > 0 && summary.commands < 5000,
        "{}",
        summary.commands
    );
    assert!(
        summary
            .capture_problem
            .as_deref()
            .unwrap_or("")
            .contains("truncated"),
        "{:?}",
        summary.capture_problem
    );
}

#[tokio::test]
async fn a_target_that_dies_mid_run_gives_errors_not_a_hang() {
    let mut server = MariaDb::start().unwrap();
    server.sql("CREATE DATABASE d").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    for c in 1..=3u64 {
        s.open(c, 0, "d");
        for i in 0..40u64 {
            s.query(c, (1 + i) * 25 * MS, "SELECT 1", rows(1));
        }
        s.close(c, 1100 * MS);
    }
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let url = server.url();
    let run = tokio::spawn(replayer::run::run(config(
        &cap,
        &url,
        &out,
        Speed::Factor(1.0),
    )));
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    server.kill();
    let summary = run.await.unwrap().unwrap();
    assert_eq!(summary.commands, 120, "every command is accounted for");
    assert!(
        summary.errors > 30,
        "errors after the kill: {}",
        summary.errors
    );
    assert!(summary.errors < 120, "commands before the kill succeeded");
    assert!(
        summary.verdict.is_invalid(),
        "a dead target makes the run invalid, not faster: {}",
        summary.verdict
    );
    let run = replayer::compare::load_run(&out).unwrap();
    assert!(run.verdict().is_invalid());
}

/// Exec records readable from a results file still being written (its last chunk may be
/// missing: the reader stops at it).
fn executed_so_far(path: &std::path::Path) -> Vec<captures::Executed> {
    let Ok(reader) = captures::ResultsReader::open(path) else {
        return Vec::new();
    };
    reader
        .map_while(Result::ok)
        .filter_map(|r| match r {
            captures::ResultRecord::Exec(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_reach_the_file_while_the_replay_runs() {
    // Connection 1 is always busy (slow commands back to back, so it never waits for a
    // due time); connection 2 runs one command and then waits 3 s for its next;
    // connection 3 runs one command and closes 3 s later. None may hold its results
    // back until it ends.
    let (server, db) = setup("stream");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db).open(2, 0, &db).open(3, 0, &db);
    s.query(2, MS, "SELECT 2", rows(1));
    s.query(3, MS, "SELECT 3", rows(1));
    for i in 0..40u64 {
        s.query(1, (2 + i) * MS, "SELECT SLEEP(0.05)", rows(1));
    }
    s.query(2, 3000 * MS, "SELECT 2", rows(1));
    s.close(1, 3001 * MS)
        .close(2, 3001 * MS)
        .close(3, 3001 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let run = tokio::spawn(replay(config(
        &cap,
        &server.url(),
        &out,
        Speed::Factor(1.0),
    )));
    // 40 × 50 ms of sleeps take 2 s; at 1 s about 20 have run.
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;
    let midway = executed_so_far(&out);
    let of = |conn: u64| midway.iter().filter(|e| e.conn == conn).count();
    assert!(
        of(1) >= 5 && of(2) == 1 && of(3) == 1,
        "after 1 s the file has {} / {} / {} commands of connections 1 / 2 / 3",
        of(1),
        of(2),
        of(3)
    );
    let summary = run.await.unwrap();
    assert_eq!(summary.commands, 43);
    assert_eq!(executed(&out).0.len(), 43);
}

#[tokio::test]
async fn load_data_local_sends_the_captured_file_again() {
    let (server, db) = setup("infile");
    server
        .sql(&format!("CREATE TABLE `{db}`.l (a INT, b VARCHAR(10))"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let load = |content: Option<&[u8]>| Cmd::LoadLocal {
        sql: b"LOAD DATA LOCAL INFILE 'x.csv' INTO TABLE l FIELDS TERMINATED BY ','".to_vec(),
        files: vec![captures::LocalFile {
            size: 12,
            content: content.map(<[u8]>::to_vec),
        }],
    };
    let mut s = Script::default();
    s.open(1, 0, &db)
        .cmd(1, MS, load(Some(b"1,one\n2,two\n")), ok(2))
        // Over the recorder's bound: only the size was kept.
        .cmd(1, 2 * MS, load(None), ok(2))
        .close(1, 3 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let summary = replay(captured(config(&cap, &server.url(), &out, Speed::Max))).await;
    assert_eq!(
        (summary.errors, summary.diverged_commands()),
        (0, 0),
        "{:?}",
        summary.error_codes
    );
    assert_eq!(
        summary.skipped, 1,
        "the load without content is skipped and counted"
    );
    let rows = server
        .sql(&format!(
            "SELECT GROUP_CONCAT(a, b ORDER BY a) FROM `{db}`.l"
        ))
        .unwrap();
    assert_eq!(rows.trim(), "1one,2two");
}

#[tokio::test]
async fn duration_ends_the_replay_with_the_prefix_not_at_the_captured_close() {
    let (server, db) = setup("prefix");
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db)
        .query(1, MS, "SELECT 1", rows(1))
        .query(1, 50_000 * MS, "SELECT 2", rows(1))
        .close(1, 60_000 * MS);
    s.write(&cap, false);
    let out = tmp(&dir, "r.sqlres");
    let mut cfg = config(&cap, &server.url(), &out, Speed::Factor(1.0));
    cfg.duration = Some(std::time::Duration::from_secs(1));
    let started = std::time::Instant::now();
    let summary = replay(cfg).await;
    assert_eq!(summary.commands, 1);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "a 1 s prefix took {:?}",
        started.elapsed()
    );
}
