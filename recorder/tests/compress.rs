//! The compressed protocol through the recorder: clients that ask for it get it, and the
//! capture holds the decompressed commands.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use captures::{Cmd, Outcome};
use common::{capturing, commands, mariadb_cli, read_capture, url};
use mysql_async::prelude::*;
use testkit::MariaDb;

#[tokio::test]
async fn mysql_async_compressed_traffic_is_relayed_and_captured_decompressed() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("compress").unwrap();
    let (_dir, cap, rec) = capturing(&[]).await;
    let mut conn = mysql_async::Conn::from_url(format!("{}&compression=fast", url(rec.addr, &db)))
        .await
        .unwrap();

    let status: Option<(String, String)> = conn
        .query_first("SHOW STATUS LIKE 'Compression'")
        .await
        .unwrap();
    assert_eq!(status.unwrap().1, "ON");
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v LONGBLOB)")
        .await
        .unwrap();
    // Multi-statement: two results in one response.
    let mut result = conn.query_iter("SELECT 1; SELECT 2").await.unwrap();
    let first: Vec<i32> = result.collect().await.unwrap();
    let second: Vec<i32> = result.collect().await.unwrap();
    drop(result);
    assert_eq!((first, second), (vec![1], vec![2]));
    // 20 MiB through a prepared statement, and back: more than one frame each way (a
    // frame holds at most 16 MiB), with packets straddling frames.
    let big: Vec<u8> = (0..20 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let stmt = conn
        .prep("INSERT INTO t (id, v) VALUES (?, ?)")
        .await
        .unwrap();
    conn.exec_drop(&stmt, (1, big.clone())).await.unwrap();
    let back: Option<Vec<u8>> = conn
        .exec_first("SELECT v FROM t WHERE id = ?", (1,))
        .await
        .unwrap();
    assert!(back.unwrap() == big, "20 MiB value survives the relay");
    // The same size as a text query: one 20 MiB COM_QUERY packet.
    let hex: String = big[..10 * 1024 * 1024]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let sql = format!("INSERT INTO t (id, v) VALUES (2, x'{hex}')");
    conn.query_drop(&sql).await.unwrap();
    let len: Option<i64> = conn
        .query_first("SELECT LENGTH(v) FROM t WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(len, Some(10 * 1024 * 1024));
    // Session commands, COM_CHANGE_USER's authentication exchange included, stay
    // compressed.
    conn.reset().await.unwrap();
    conn.change_user(mysql_async::ChangeUserOpts::default().with_db_name(Some(db.clone())))
        .await
        .unwrap();
    let status: Option<(String, String)> = conn
        .query_first("SHOW STATUS LIKE 'Compression'")
        .await
        .unwrap();
    assert_eq!(status.unwrap().1, "ON");
    conn.disconnect().await.unwrap();

    rec.stop().await;
    let cmds = commands(&read_capture(&cap));
    let find = |sql: &[u8]| cmds.iter().find(|(c, _)| c.sql() == Some(sql)).cloned();
    let (_, multi) = find(b"SELECT 1; SELECT 2").unwrap();
    assert!(matches!(multi, Outcome::Rows { count: 2, .. }), "{multi:?}");
    assert!(
        find(sql.as_bytes()).is_some(),
        "the 20 MiB query, decompressed"
    );
    let execute = cmds
        .iter()
        .find_map(|(c, o)| match c {
            Cmd::Execute { params, .. } if params.len() == 2 => Some(o),
            _ => None,
        })
        .unwrap();
    assert!(matches!(
        execute,
        Outcome::Ok {
            affected_rows: 1,
            ..
        }
    ));
}

#[tokio::test]
async fn the_mariadb_cli_gets_compression_through_the_recorder() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("compress_cli").unwrap();
    let (_dir, cap, rec) = capturing(&[]).await;
    let out = mariadb_cli(
        rec.addr.port(),
        &["-uroot", "--compress", &db],
        "SHOW STATUS LIKE 'Compression'; CREATE TABLE t (a INT); \
         INSERT INTO t VALUES (1), (2); SELECT SUM(a) FROM t; \
         PREPARE s FROM 'SELECT ? + 40'; SET @a = 2; EXECUTE s USING @a",
    )
    .await;
    assert!(out.contains("Compression\tON"), "{out}");
    assert!(out.contains("\n3\n"), "{out}");
    assert!(out.ends_with("\n42\n"), "{out}");
    rec.stop().await;
    let records = read_capture(&cap);
    assert!(common::captured(&records, "SELECT SUM(a) FROM t"));
}
