//! LOAD DATA LOCAL INFILE: the capture keeps the content the client sent, up to
//! --max-infile-bytes, so a replay can send it again.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::Path;

use captures::{Cmd, LocalFile, Outcome};
use common::{capturing, commands, read_capture, url};
use mysql_async::prelude::*;
use mysql_async::{Opts, OptsBuilder};
use testkit::MariaDb;

/// Loads `file` into a fresh table through a recorder started with `extra` flags (and
/// the client's `url_extra` parameters); returns the captured LOAD command and outcome.
async fn load_through_recorder(
    file: &Path,
    extra: &[&str],
    url_extra: &str,
) -> (Cmd, Outcome, usize) {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("infile").unwrap();
    let (_dir, cap, rec) = capturing(extra).await;
    let opts = Opts::from_url(&format!("{}{url_extra}", url(rec.addr, &db))).unwrap();
    let opts = OptsBuilder::from_opts(opts).local_infile_handler(Some(
        mysql_async::WhiteListFsHandler::new(std::slice::from_ref(&file.to_path_buf())),
    ));
    let mut conn = mysql_async::Conn::new(opts).await.unwrap();
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, s VARCHAR(64))")
        .await
        .unwrap();
    conn.query_drop(format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE t FIELDS TERMINATED BY ','",
        file.display()
    ))
    .await
    .unwrap();
    let rows: Option<i64> = conn.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    conn.disconnect().await.unwrap();
    rec.stop().await;
    let (cmd, outcome) = commands(&read_capture(&cap))
        .into_iter()
        .find(|(c, _)| c.sql().is_some_and(|s| s.starts_with(b"LOAD DATA")))
        .unwrap();
    (cmd, outcome, usize::try_from(rows.unwrap()).unwrap())
}

/// A file of `n` CSV lines, with bytes that are not UTF-8 in the text column.
fn csv(dir: &Path, n: usize) -> (std::path::PathBuf, Vec<u8>) {
    let mut content = Vec::new();
    for i in 0..n {
        content.extend_from_slice(format!("{i},row {i} ").as_bytes());
        content.extend_from_slice(&[0xc3, 0xa9, b'\n']);
    }
    let path = dir.join("rows.csv");
    std::fs::write(&path, &content).unwrap();
    (path, content)
}

#[tokio::test]
async fn the_capture_holds_the_exact_content() {
    let dir = tempfile::tempdir().unwrap();
    // About 2 MiB: mysql_async sends it in many packets.
    let (path, content) = csv(dir.path(), 100_000);
    // Plain, then compressed (the content then crosses in compressed frames).
    for url_extra in ["", "&compression=fast"] {
        let (cmd, outcome, rows) = load_through_recorder(&path, &[], url_extra).await;
        assert_eq!(rows, 100_000);
        assert!(
            matches!(
                outcome,
                Outcome::Ok {
                    affected_rows: 100_000,
                    ..
                }
            ),
            "{outcome:?}"
        );
        let Cmd::LoadLocal { sql, files } = cmd else {
            panic!("{url_extra}: not a LoadLocal: {cmd:?}")
        };
        assert!(sql.starts_with(b"LOAD DATA LOCAL INFILE"));
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].size, content.len() as u64);
        assert!(
            files[0].content.as_deref() == Some(&content[..]),
            "{url_extra}: the content differs"
        );
    }
}

#[tokio::test]
async fn content_over_the_bound_is_recorded_by_size_only() {
    let dir = tempfile::tempdir().unwrap();
    let (path, content) = csv(dir.path(), 100);
    let (cmd, _, rows) = load_through_recorder(&path, &["--max-infile-bytes", "100"], "").await;
    // Relayed in full all the same.
    assert_eq!(rows, 100);
    let Cmd::LoadLocal { files, .. } = cmd else {
        panic!("not a LoadLocal: {cmd:?}")
    };
    assert_eq!(
        files,
        vec![LocalFile {
            size: content.len() as u64,
            content: None
        }]
    );
}
