//! `replayer compare`: verdicts, exit codes and reports, on real replays and on
//! synthetic results files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use captures::{
    CmdKind, Divergence, Executed, ResultRecord, ResultsWriter, RunMeta, WriterOptions,
};
use common::*;
use replayer::compare::{Verdict, compare, load_run};
use replayer::target::Speed;
use testkit::MariaDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A results file whose class `c` has latencies `f(i)` µs for i in 0..n.
fn synthetic(path: &Path, label: &str, classes: &[(u64, &dyn Fn(u64) -> u64)], n: u64) {
    synthetic_with(path, label, classes, n, &|_, _| Divergence::None);
}

/// [`synthetic`], execution `i` of class `c` diverging as `divergence(c, i)` says.
fn synthetic_with(
    path: &Path,
    label: &str,
    classes: &[(u64, &dyn Fn(u64) -> u64)],
    n: u64,
    divergence: &dyn Fn(u64, u64) -> Divergence,
) {
    let meta = RunMeta {
        tool: "t".into(),
        run_id: label.into(),
        label: label.into(),
        target: "t".into(),
        server_version: "x".into(),
        speed: Some(1.0),
        scale: 1,
        capture: "c".into(),
        captured_ns: 0,
        started_unix_ns: 0,
        labels: Default::default(),
    };
    let mut w = ResultsWriter::create(path, &meta, WriterOptions::default()).unwrap();
    for (c, _) in classes {
        w.append(&ResultRecord::Class {
            class: *c,
            fingerprint: format!("select {c}"),
            example: None,
        })
        .unwrap();
    }
    for i in 0..n {
        for (c, f) in classes {
            let lat = f(i) * 1000;
            w.append(&ResultRecord::Exec(Executed {
                conn: 1,
                seq: i,
                class: *c,
                kind: CmdKind::Query,
                scheduled_ns: i * 1_000_000,
                sent_ns: i * 1_000_000,
                finished_ns: i * 1_000_000 + lat,
                rows: 1,
                error: None,
                warnings: 0,
                digest: None,
                divergence: divergence(*c, i),
            }))
            .unwrap();
        }
    }
    w.close().unwrap();
}

fn verdicts(paths: &[PathBuf]) -> Vec<Verdict> {
    let runs: Vec<_> = paths.iter().map(|p| load_run(p).unwrap()).collect();
    let c = compare(&runs, &compare_args(paths.to_vec()).options());
    c.classes
        .iter()
        .map(|k| {
            k.runs[1]
                .as_ref()
                .unwrap()
                .vs_base
                .as_ref()
                .unwrap()
                .verdict
        })
        .collect()
}

#[test]
fn synthetic_runs_get_the_verdicts_they_deserve() {
    let dir = tempfile::tempdir().unwrap();
    let noise = |i: u64| 100 + (i * 7919) % 50;
    let base = tmp(&dir, "base.sqlres");
    let same = tmp(&dir, "same.sqlres");
    let slow = tmp(&dir, "slow.sqlres");
    synthetic(&base, "base", &[(1, &noise), (2, &noise)], 500);
    synthetic(&same, "same", &[(1, &|i| noise(i + 3)), (2, &noise)], 500);
    synthetic(
        &slow,
        "slow",
        &[(1, &|i| noise(i) * 2), (2, &|i| noise(i) / 2 + 1)],
        500,
    );
    assert_eq!(
        verdicts(&[base.clone(), same.clone()]),
        vec![Verdict::NoSignificantChange; 2]
    );
    assert_eq!(
        verdicts(&[base.clone(), slow.clone()]),
        vec![Verdict::Slower, Verdict::Faster]
    );

    // One run alone: its per-class table, every format, and no gate to fail.
    let mut alone = compare_args(vec![base.clone()]);
    alone.fail_on_regression = Some(1.0);
    alone.html = Some(tmp(&dir, "alone.html"));
    assert_eq!(
        replayer::command::compare::run(&alone).unwrap(),
        ExitCode::SUCCESS
    );
    assert!(
        std::fs::read_to_string(tmp(&dir, "alone.html"))
            .unwrap()
            .contains("<svg")
    );

    let few = tmp(&dir, "few.sqlres");
    synthetic(&few, "few", &[(1, &noise)], 10);
    assert_eq!(verdicts(&[few.clone(), few])[0], Verdict::Insufficient);

    // Exit codes with --fail-on-regression, and the JSON/HTML files.
    let mut a = compare_args(vec![base.clone(), slow.clone()]);
    a.fail_on_regression = Some(50.0);
    a.json = Some(tmp(&dir, "r.json"));
    a.html = Some(tmp(&dir, "r.html"));
    assert_eq!(
        replayer::command::compare::run(&a).unwrap(),
        ExitCode::from(1)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp(&dir, "r.json")).unwrap()).unwrap();
    assert_eq!(json["schema_version"], 2);
    assert_eq!(
        json["classes"][0]["runs"][1]["vs_base"]["verdict"],
        "slower"
    );
    let html = std::fs::read_to_string(tmp(&dir, "r.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("SLOWER"));
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "self-contained"
    );
    a.fail_on_regression = Some(150.0);
    assert_eq!(
        replayer::command::compare::run(&a).unwrap(),
        ExitCode::SUCCESS,
        "2× is not > 2.5×"
    );
    let mut b = compare_args(vec![slow, base]);
    b.fail_on_regression = Some(10.0);
    // Class 2 got slower in this direction (0.5× → 1×... ) but class 1 faster: fails on class 2.
    assert_eq!(
        replayer::command::compare::run(&b).unwrap(),
        ExitCode::from(1)
    );
    let mut c = compare_args(vec![same.clone(), same]);
    c.fail_on_regression = Some(10.0);
    assert_eq!(
        replayer::command::compare::run(&c).unwrap(),
        ExitCode::SUCCESS
    );
}

#[test]
fn a_routes_sidecar_puts_scatter_classes_in_every_report() {
    let dir = tempfile::tempdir().unwrap();
    let flat = |_: u64| 100;
    let base = tmp(&dir, "base.sqlres");
    let sharded = tmp(&dir, "sharded.sqlres");
    synthetic(&base, "base", &[(1, &flat), (2, &flat)], 100);
    synthetic(&sharded, "sharded", &[(1, &flat), (2, &|_| 300)], 100);
    // What `replayer run` writes after a replay against vtgate.
    let routes = serde_json::json!({
        captures::fingerprint::class_id_hex(1): {"opcode": "EqualUnique", "keyspace": "customer", "shards": "1"},
        captures::fingerprint::class_id_hex(2): {"opcode": "Scatter", "keyspace": "customer", "shards": "all"},
    });
    std::fs::write(
        format!("{}.routes.json", sharded.display()),
        routes.to_string(),
    )
    .unwrap();
    let runs: Vec<_> = [&base, &sharded]
        .iter()
        .map(|p| load_run(p).unwrap())
        .collect();
    let c = compare(
        &runs,
        &compare_args(vec![base.clone(), sharded.clone()]).options(),
    );
    let scatter = c.scatter_classes();
    assert_eq!(scatter.len(), 1, "{scatter:?}");
    assert_eq!(
        (scatter[0].class.fingerprint.as_str(), scatter[0].run),
        ("select 2", 1)
    );
    assert!((scatter[0].p50_ratio.unwrap() - 3.0).abs() < 0.1);
    let text = replayer::report::text::render(&c, 25);
    assert!(
        text.contains("scatter queries") && text.contains("Scatter  select 2"),
        "{text}"
    );
    let mut a = compare_args(vec![base, sharded]);
    a.html = Some(tmp(&dir, "r.html"));
    a.json = Some(tmp(&dir, "r.json"));
    replayer::command::compare::run(&a).unwrap();
    let html = std::fs::read_to_string(tmp(&dir, "r.html")).unwrap();
    assert!(html.contains("<h2>Scatter queries</h2>"));
    let json = std::fs::read_to_string(tmp(&dir, "r.json")).unwrap();
    assert!(
        json.contains("\"opcode\": \"Scatter\"") || json.contains("\"opcode\":\"Scatter\""),
        "{json}"
    );
}

/// Forwards TCP to `upstream`, holding every client→server chunk for `delay`.
async fn delay_proxy(upstream: std::net::SocketAddr, delay: Duration) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async move {
                    let mut buf = vec![0u8; 65536];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let down = async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                tokio::join!(up, down);
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_slower_target_is_reported_slower_and_fails_the_gate() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("cmp").unwrap();
    server
        .sql(&format!(
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY); INSERT INTO `{db}`.t VALUES (1),(2),(3)"
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db);
    for i in 0..120u64 {
        s.query(
            1,
            (1 + i) * MS,
            &format!("SELECT * FROM t WHERE id = {}", i % 3 + 1),
            rows(1),
        );
    }
    s.close(1, 200 * MS);
    s.write(&cap, false);

    let fast1 = tmp(&dir, "fast1.sqlres");
    let fast2 = tmp(&dir, "fast2.sqlres");
    let slow = tmp(&dir, "slow.sqlres");
    // The two identical runs go side by side, so that whatever else the machine does
    // (other tests, CI neighbours) weighs on both alike.
    // One serial connection each: the comparison, not the pool, is under test.
    tokio::join!(
        replay(captured(config(&cap, &server.url(), &fast1, Speed::Max))),
        replay(captured(config(&cap, &server.url(), &fast2, Speed::Max))),
    );
    let proxy = delay_proxy(server.addr(), Duration::from_millis(3)).await;
    replay(captured(config(
        &cap,
        &format!("mysql://root@{proxy}"),
        &slow,
        Speed::Max,
    )))
    .await;

    assert_eq!(
        verdicts(&[fast1.clone(), slow.clone()]),
        vec![Verdict::Slower]
    );
    assert_eq!(
        verdicts(&[slow.clone(), fast1.clone()]),
        vec![Verdict::Faster]
    );
    let mut gate = compare_args(vec![fast1.clone(), slow.clone()]);
    gate.fail_on_regression = Some(20.0);
    assert_eq!(
        replayer::command::compare::run(&gate).unwrap(),
        ExitCode::from(1)
    );
    let mut reverse = compare_args(vec![slow, fast1.clone()]);
    reverse.fail_on_regression = Some(20.0);
    assert_eq!(
        replayer::command::compare::run(&reverse).unwrap(),
        ExitCode::SUCCESS
    );
    // Two replays against the same server: no verdict but "same" (p50 within 10 %…
    // or an interval that includes 1).
    let v = verdicts(&[fast1, fast2]);
    assert!(v.iter().all(|v| *v != Verdict::Slower), "{v:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_fell_behind_says_so_everywhere_and_fails_the_gate() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("behind").unwrap();
    server
        .sql(&format!(
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY); INSERT INTO `{db}`.t VALUES (1)"
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db);
    // A query every 2 ms: easy for the server, impossible through one connection
    // that adds 5 ms to each.
    for i in 0..100u64 {
        s.query(1, (1 + 2 * i) * MS, "SELECT * FROM t WHERE id = 1", rows(1));
    }
    s.close(1, 210 * MS);
    s.write(&cap, false);
    let base = tmp(&dir, "base.sqlres");
    let behind = tmp(&dir, "behind.sqlres");
    // The baseline flat out: no schedule to keep, whatever else the machine does.
    let flat_out = replay(config(&cap, &server.url(), &base, Speed::Max)).await;
    assert_eq!(flat_out.verdict, replayer::verdict::Verdict::BackToBack);
    let proxy = delay_proxy(server.addr(), Duration::from_millis(5)).await;
    let mut cfg = config(
        &cap,
        &format!("mysql://root@{proxy}"),
        &behind,
        Speed::Factor(1.0),
    );
    cfg.max_connections = Some(1);
    let slow = replay(cfg).await;
    assert!(slow.verdict.fell_behind(), "{}", slow.verdict);

    let runs = vec![load_run(&base).unwrap(), load_run(&behind).unwrap()];
    let mut a = compare_args(vec![base.clone(), behind.clone()]);
    let c = compare(&runs, &a.options());
    let text = replayer::report::text::render(&c, 10);
    assert!(text.contains("FELL BEHIND"), "{text}");
    assert!(text.contains("back to back"), "{text}");
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["runs"][0]["verdict"]["verdict"], "back_to_back");
    assert_eq!(json["runs"][1]["verdict"]["verdict"], "fell_behind");
    assert!(json["runs"][1]["from_schedule_p99_ms"].as_f64().unwrap() > 20.0);
    let html = replayer::report::html::render(&c, &runs);
    assert!(html.contains("Not every run kept its schedule"));
    assert!(html.contains("FELL BEHIND"));

    // No class regresses by a million %, but a run that fell behind fails the gate...
    a.fail_on_regression = Some(1e6);
    assert_eq!(
        replayer::command::compare::run(&a).unwrap(),
        ExitCode::from(1)
    );
    // ...unless that is accepted.
    a.allow_fell_behind = true;
    assert_eq!(
        replayer::command::compare::run(&a).unwrap(),
        ExitCode::SUCCESS
    );
}

#[test]
fn html_reports_escape_what_they_quote() {
    let dir = tempfile::tempdir().unwrap();
    let evil = "<script>alert('x')</script>\" onmouseover='y'";
    let (a, b) = (tmp(&dir, "a.sqlres"), tmp(&dir, "b.sqlres"));
    synthetic(&a, evil, &[(7, &|_| 100)], 40);
    synthetic(&b, "plain", &[(7, &|_| 100)], 40);
    let mut args = compare_args(vec![a, b]);
    args.html = Some(tmp(&dir, "r.html"));
    replayer::command::compare::run(&args).unwrap();
    let html = std::fs::read_to_string(tmp(&dir, "r.html")).unwrap();
    assert!(!html.contains("<script>"), "the label went in raw");
    assert!(
        !html.contains("\" onmouseover"),
        "a quote in a value ends an attribute"
    );
    assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt;&quot; onmouseover='y'"));
}

#[test]
fn no_runs_compare_to_an_empty_comparison() {
    let c = compare(&[], &compare_args(vec![]).options());
    assert!(c.runs.is_empty() && c.classes.is_empty() && c.answers.classes.is_empty());
    // The renderers cope with it too.
    assert!(replayer::report::text::render(&c, 25).contains("answers that changed"));
    assert!(replayer::report::html::render(&c, &[]).contains("Answers that changed"));
}

#[test]
fn noise_is_judged_by_family_not_by_kind() {
    use Divergence::*;
    let dir = tempfile::tempdir().unwrap();
    let (base, run) = (tmp(&dir, "base.sqlres"), tmp(&dir, "run.sqlres"));
    let flat = |_| 100;
    // Class 1 races writes in the baseline already (its rows move); class 2 does not.
    synthetic_with(&base, "base", &[(1, &flat), (2, &flat)], 40, &|c, i| {
        if c == 1 && i < 2 { RowsDiffer } else { None }
    });
    synthetic_with(
        &run,
        "run",
        &[(1, &flat), (2, &flat)],
        40,
        &|c, i| match (c, i) {
            (1, 0..3) => RowCount, // the same race, another symptom: noise
            (1, 3..5) => Warnings, // a family the baseline never showed: wrong
            (2, 0..1) => Affected, // a class that was steady: wrong
            _ => None,
        },
    );
    let runs = vec![load_run(&base).unwrap(), load_run(&run).unwrap()];
    let c = compare(&runs, &compare_args(vec![base, run]).options());
    let summary = &c.answers.runs[1];
    assert_eq!((summary.wrong_classes, summary.wrong_commands), (2, 3));
    assert_eq!(
        (summary.volatile_classes, summary.volatile_commands),
        (1, 3)
    );
    let class1 = c.answers.classes.iter().find(|k| k.id.0 == 1).unwrap();
    assert!(class1.volatile);
    assert_eq!(class1.runs[1].as_ref().unwrap().wrong_commands, 2);
}
