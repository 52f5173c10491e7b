//! Result digests through the recorder, against a real MariaDB: the same data gives the
//! same digest as a text or a binary (prepared statement) result, order and content are
//! told apart, and `--no-result-digest` turns them off.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use captures::digest::Likeness;
use captures::{Cmd, Digest, Outcome};
use common::{commands, read_capture, start, url};
use mysql_async::prelude::*;
use testkit::MariaDb;

/// Every column type a shop's answers are made of, NULLs included, and values whose
/// text spelling is the server's choice (floats, fractional seconds, negative times).
const SCHEMA: &str = "CREATE TABLE t (
    id INT PRIMARY KEY, i BIGINT, u BIGINT UNSIGNED, ti TINYINT, d DECIMAL(10,2),
    f FLOAT, g DOUBLE, s VARCHAR(20), b BLOB, dt DATETIME(3), ts TIMESTAMP(6) NULL,
    dd DATE, tm TIME(2), y YEAR, e ENUM('a','b'), bits BIT(10), j JSON)";

const ROWS: &str = "INSERT INTO t VALUES
    (1, -9223372036854775808, 18446744073709551615, -128, -12345678.90, 0.1, 0.1,
     'ünï', x'00ff', '2024-02-29 13:05:09.120', '2024-02-29 13:05:09.000001',
     '2024-02-29', '-838:59:59.99', 2024, 'b', b'1010101010', '{\"k\": [1, 2]}'),
    (2, 0, 0, 0, 0, 3.4028e38, 1.7976931348623157e308, '', '', '1000-01-01 00:00:00',
     NULL, '9999-12-31', '00:00:00', 1901, 'a', b'0', 'null'),
    (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
     NULL, NULL, NULL),
    (4, 42, 7, 1, 0.5, -1.17549e-38, -2.2250738585072014e-308, 'x', 'y',
     '2000-01-01 00:00:00.999', '2038-01-19 03:14:07.999999', '2000-01-01',
     '123:45:06.5', 0, 'a', b'1111111111', '[]')";

const SELECT: &str = "SELECT * FROM t WHERE id > ? ORDER BY id";

fn digest_of(outcome: &Outcome) -> Digest {
    match outcome {
        Outcome::Rows {
            digest: Some(d), ..
        } => *d,
        other => panic!("no digest: {other:?}"),
    }
}

/// Captures the answers to `statements` (text) and `SELECT` (text and prepared).
async fn capture(extra: &[&str]) -> Vec<(Cmd, Outcome)> {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("digest").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.sqlcap");
    let rec = start(&server.addr().to_string(), Some(&cap), extra).await;
    let mut conn = mysql_async::Conn::from_url(url(rec.addr, &db))
        .await
        .unwrap();
    conn.query_drop("SET time_zone = '+00:00'").await.unwrap();
    conn.query_drop(SCHEMA).await.unwrap();
    conn.query_drop(ROWS).await.unwrap();
    conn.query_drop(SELECT.replace('?', "0")).await.unwrap();
    let stmt = conn.prep(SELECT).await.unwrap();
    conn.exec_drop(&stmt, (0,)).await.unwrap();
    conn.exec_drop(&stmt, (0,)).await.unwrap();
    conn.query_drop("SELECT * FROM t WHERE id > 0 ORDER BY id DESC")
        .await
        .unwrap();
    conn.query_drop("UPDATE t SET s = 'changed' WHERE id = 4")
        .await
        .unwrap();
    conn.exec_drop(&stmt, (0,)).await.unwrap();
    conn.disconnect().await.unwrap();
    rec.stop().await;
    commands(&read_capture(&cap))
        .into_iter()
        .filter(|(cmd, _)| match cmd {
            // Not the driver's own queries at connect.
            Cmd::Query { sql } => sql.windows(6).any(|w| w == b"FROM t"),
            _ => matches!(cmd, Cmd::Execute { .. }),
        })
        .filter(|(_, outcome)| matches!(outcome, Outcome::Rows { .. }))
        .collect()
}

#[tokio::test]
async fn text_and_binary_results_of_the_same_rows_digest_alike() {
    let answers = capture(&[]).await;
    let [text, binary, again, reversed, changed] = answers.as_slice() else {
        panic!("expected five results, got {answers:#?}");
    };
    assert!(matches!(text.0, Cmd::Query { .. }) && matches!(binary.0, Cmd::Execute { .. }));
    let digest = digest_of(&text.1);
    assert_eq!(digest_of(&binary.1), digest, "text vs prepared statement");
    assert_eq!(digest_of(&again.1), digest);
    assert_eq!(
        digest.likeness(&digest_of(&reversed.1)),
        Likeness::OrderOnly,
        "ORDER BY id DESC: the same rows in another order"
    );
    assert_eq!(
        digest.likeness(&digest_of(&changed.1)),
        Likeness::Different,
        "one value changed"
    );
}

#[tokio::test]
async fn no_result_digest_keeps_none() {
    let answers = capture(&["--no-result-digest"]).await;
    assert_eq!(answers.len(), 5);
    for (cmd, outcome) in answers {
        assert!(
            matches!(outcome, Outcome::Rows { digest: None, .. }),
            "{cmd:?}: {outcome:?}"
        );
    }
}
