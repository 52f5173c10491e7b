//! Answers that changed, end to end against real MariaDB: traffic recorded through the
//! recorder, replayed against a copy of its database and against a copy where one row
//! differs, a table is missing and rows are stored in another order; `compare` says
//! which classes diverged, how, and which of that is noise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use captures::Divergence;
use common::*;
use mysql_async::prelude::*;
use replayer::command::compare::CompareArgs;
use replayer::compare::{compare, load_run};
use replayer::target::{Speed, Target};
use testkit::MariaDb;

/// The same data in every copy, except what `differ` changes. `g` has ties; `ord` is
/// stored in id order here and in another order where `differ` rebuilds it.
const SCHEMA: &str = "
    CREATE TABLE product (id INT PRIMARY KEY, name VARCHAR(20), price DECIMAL(8,2));
    INSERT INTO product VALUES (1,'tea',3.50),(2,'mug',7.00),(3,'pot',21.00),(4,'cup',2.25);
    CREATE TABLE customer (id INT PRIMARY KEY, name VARCHAR(20));
    INSERT INTO customer VALUES (1,'ann'),(2,'bob');
    CREATE TABLE ord (id INT PRIMARY KEY, v CHAR(1), g INT);
    INSERT INTO ord VALUES (1,'c',1),(2,'b',1),(3,'a',1),(4,'d',2);
    CREATE TABLE legacy (id INT PRIMARY KEY);";

/// Product 3 renamed, `legacy` gone, `ord` clustered by `v` (same rows, other order).
const DIFFER: &str = "
    UPDATE product SET name = 'kettle' WHERE id = 3;
    DROP TABLE legacy;
    CREATE TABLE ord2 (v CHAR(1) PRIMARY KEY, id INT, g INT);
    INSERT INTO ord2 SELECT v, id, g FROM ord;
    DROP TABLE ord;
    CREATE TABLE ord (v CHAR(1) PRIMARY KEY, id INT, g INT);
    INSERT INTO ord SELECT v, id, g FROM ord2;
    DROP TABLE ord2;";

/// Statements by what they should show against the differing copy.
const READS_ROW_3: [&str; 2] = [
    "SELECT name FROM product WHERE id = 3",
    "SELECT id, name FROM product ORDER BY id",
];
const UNTOUCHED: [&str; 2] = [
    "SELECT price FROM product WHERE id = 1",
    "SELECT name FROM customer ORDER BY id",
];
const NO_ORDER_BY: &str = "SELECT id, v FROM ord LIMIT 10";
const TIES: &str = "SELECT id, g FROM ord ORDER BY g";
const VOLATILE: &str = "SELECT NOW(6)";
const MISSING: &str = "SELECT COUNT(*) FROM legacy";
const PREPARED: &str = "SELECT name, price FROM product WHERE id = ?";

async fn database(server: &MariaDb, prefix: &str, extra: &str) -> String {
    let db = server.fresh_database(prefix).unwrap();
    let mut conn = mysql_async::Conn::from_url(server.url_for(&db))
        .await
        .unwrap();
    conn.query_drop(format!("{SCHEMA}{extra}")).await.unwrap();
    conn.disconnect().await.unwrap();
    db
}

/// Records each statement twice (text), and the prepared one with id 3 and id 1.
async fn record(server: &MariaDb, db: &str, cap: &Path) {
    let recorder = Recorder::start(server, cap).await;
    // Not over the server's socket, which the driver would switch to by default.
    let url = format!(
        "mysql://root@127.0.0.1:{}/{db}?prefer_socket=false",
        recorder.port
    );
    let mut conn = mysql_async::Conn::from_url(url).await.unwrap();
    let texts = READS_ROW_3
        .iter()
        .chain(&UNTOUCHED)
        .chain(&[NO_ORDER_BY, TIES, VOLATILE, MISSING]);
    for sql in texts.clone().chain(texts) {
        conn.query_drop(*sql).await.unwrap();
    }
    let stmt = conn.prep(PREPARED).await.unwrap();
    conn.exec_drop(&stmt, (3,)).await.unwrap();
    conn.exec_drop(&stmt, (1,)).await.unwrap();
    conn.disconnect().await.unwrap();
    recorder.stop().await;
}

async fn replay_into(server: &MariaDb, cap: &Path, from: &str, to: &str, out: PathBuf) -> PathBuf {
    let mut cfg = config(cap, &server.url(), &out, Speed::Max);
    cfg.target = Target::parse(&server.url(), None, &[format!("{from}={to}")]).unwrap();
    cfg.label = to.into();
    replay(cfg).await;
    out
}

/// `compare` as these tests run it: gated on wrong answers.
fn args(runs: Vec<PathBuf>) -> CompareArgs {
    CompareArgs {
        fail_on_divergence: true,
        ..compare_args(runs)
    }
}

/// The divergences of each class (by fingerprint) in run `i`, and whether it is
/// volatile / wrong there.
fn by_class(
    c: &replayer::compare::Comparison,
    i: usize,
) -> BTreeMap<String, (Vec<Divergence>, bool, bool)> {
    c.answers
        .classes
        .iter()
        .filter_map(|class| {
            let r = class.runs[i].as_ref().filter(|r| !r.kinds.is_empty())?;
            let kinds = r.kinds.iter().map(|k| k.kind).collect();
            Some((class.fingerprint.clone(), (kinds, class.volatile, r.wrong)))
        })
        .collect()
}

fn fp(sql: &str) -> String {
    captures::fingerprint::Fingerprinter::default()
        .fingerprint(sql.as_bytes())
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_rows_order_errors_and_noise_are_told_apart() {
    let server = MariaDb::shared().unwrap();
    let source = database(server, "ans_src", "").await;
    let same = database(server, "ans_same", "").await;
    let differ = database(server, "ans_diff", DIFFER).await;
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    record(server, &source, &cap).await;
    let base = replay_into(server, &cap, &source, &same, tmp(&dir, "same.sqlres")).await;
    let run = replay_into(server, &cap, &source, &differ, tmp(&dir, "differ.sqlres")).await;

    let runs = vec![load_run(&base).unwrap(), load_run(&run).unwrap()];
    let c = compare(&runs, &args(vec![base.clone(), run.clone()]).options());
    let baseline = by_class(&c, 0);
    // Against an identical copy only the clock differs (text and prepared alike).
    assert_eq!(
        baseline.keys().collect::<Vec<_>>(),
        vec![&fp(VOLATILE)],
        "{baseline:#?}"
    );
    let diverged = by_class(&c, 1);
    use Divergence::*;
    for sql in READS_ROW_3.iter().chain([&PREPARED]) {
        assert_eq!(diverged[&fp(sql)], (vec![RowsDiffer], false, true), "{sql}");
    }
    for sql in UNTOUCHED {
        assert!(!diverged.contains_key(&fp(sql)), "{sql}: {diverged:#?}");
    }
    assert_eq!(diverged[&fp(NO_ORDER_BY)], (vec![OrderOnly], false, false));
    assert_eq!(diverged[&fp(TIES)], (vec![OrderOnly], false, false));
    assert_eq!(diverged[&fp(VOLATILE)], (vec![RowsDiffer], true, false));
    assert_eq!(diverged[&fp(MISSING)], (vec![ErrorNew], false, true));
    // The prepared class: its first diverging execution is the one with id 3.
    let prepared = c
        .answers
        .classes
        .iter()
        .find(|c| c.fingerprint == fp(PREPARED))
        .unwrap();
    let first = prepared.runs[1].as_ref().unwrap().kinds[0]
        .first
        .as_ref()
        .unwrap();
    assert!(
        first.statement.ends_with("-- parameters: (3)"),
        "{}",
        first.statement
    );
    assert_eq!((first.captured.rows, first.replayed.rows), (1, 1));
    assert_ne!(first.captured.digest, first.replayed.digest);
    let summary = &c.answers.runs[1];
    assert_eq!((summary.wrong_classes, summary.order_only_classes), (4, 2));
    // Row 3 read twice by each of two classes, once by the prepared one; two errors.
    assert_eq!(summary.wrong_commands, 7);
    assert_eq!(summary.volatile_classes, 1);

    // The command line: the gate fails, unless the wrong classes are ignored; text, JSON
    // and HTML open with the section.
    let mut a = args(vec![base.clone(), run.clone()]);
    a.json = Some(tmp(&dir, "c.json"));
    a.html = Some(tmp(&dir, "c.html"));
    assert_eq!(
        replayer::command::compare::run(&a).unwrap(),
        ExitCode::from(1)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp(&dir, "c.json")).unwrap()).unwrap();
    assert_eq!(json["answers"]["runs"][1]["wrong_classes"], 4);
    // Digests in JSON are spelled unordered/ordered, 16 hex digits each.
    let first_digest = json["answers"]["classes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["runs"].as_array().unwrap().iter())
        .flat_map(|r| r["kinds"].as_array().into_iter().flatten())
        .find_map(|k| k["first"]["captured"]["digest"].as_str())
        .unwrap();
    assert_eq!((first_digest.len(), &first_digest[16..17]), (33, "/"));
    let html = std::fs::read_to_string(tmp(&dir, "c.html")).unwrap();
    assert!(html.contains("Answers that changed") && html.contains("rows differ"));
    // As a user would pass them: the ids the report printed.
    let wrong: Vec<captures::fingerprint::ClassId> = c
        .answers
        .classes
        .iter()
        .filter(|c| c.runs[1].as_ref().is_some_and(|r| r.wrong))
        .map(|c| c.id.to_string().parse().unwrap())
        .collect();
    let mut ignoring = args(vec![base, run]);
    ignoring.ignore_class = wrong;
    assert_eq!(
        replayer::command::compare::run(&ignoring).unwrap(),
        ExitCode::SUCCESS
    );
}
