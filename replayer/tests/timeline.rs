//! `replayer timeline` (the binary) on a real replay: latency is cut into phases at the
//! events given, and the page shows them.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use captures::ResultsReader;
use common::*;
use replayer::target::Speed;
use testkit::MariaDb;

#[tokio::test]
async fn phases_split_at_events_and_show_the_change() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("timeline").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let capture = tmp(&dir, "c.sqlcap");
    // 0–0.5 s: fast queries; from 1 s: queries that take 10 ms. The event goes between.
    let mut s = Script::default();
    s.open(1, 0, &db);
    for i in 0..50u64 {
        s.query(1, (1 + i * 10) * MS, "SELECT 1", rows(1));
    }
    for i in 0..30u64 {
        s.query(1, (1000 + i * 15) * MS, "SELECT SLEEP(0.01)", rows(1));
    }
    s.close(1, 1500 * MS);
    s.write(&capture, false);
    let results = tmp(&dir, "r.sqlres");
    replay(config(
        &capture,
        &server.url(),
        &results,
        Speed::Factor(1.0),
    ))
    .await;

    let started = ResultsReader::open(&results)
        .unwrap()
        .header()
        .started_unix_ns;
    let events = tmp(&dir, "events.jsonl");
    std::fs::write(
        &events,
        format!(
            "{{\"unix_ns\": {}, \"label\": \"switch traffic\"}}\n\n",
            started + 750_000_000
        ),
    )
    .unwrap();
    let html = tmp(&dir, "t.html");
    let json = tmp(&dir, "t.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_replayer"))
        .args(["timeline", results.to_str().unwrap()])
        .arg("--events")
        .arg(&events)
        .arg("--html")
        .arg(&html)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("switch traffic"), "{stdout}");

    let t: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let phases = t["phases"].as_array().unwrap();
    assert_eq!(phases.len(), 2, "{phases:?}");
    assert_eq!(phases[0]["label"], "start");
    assert_eq!(phases[0]["commands"], 50);
    assert_eq!(phases[1]["label"], "switch traffic");
    assert_eq!(phases[1]["commands"], 30);
    assert!(phases[0]["p50_ms"].as_f64().unwrap() < 5.0, "{phases:?}");
    assert!(phases[1]["p50_ms"].as_f64().unwrap() >= 10.0, "{phases:?}");
    assert!(!t["buckets"].as_array().unwrap().is_empty());

    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg"), "chart");
    assert!(page.contains("switch traffic"), "event marked");
}

#[test]
fn a_malformed_events_file_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let events = tmp(&dir, "events.jsonl");
    std::fs::write(&events, "{\"unix_ns\": 1, \"label\": \"a\"}\nnot json\n").unwrap();
    let err = replayer::timeline::read_events(&events).unwrap_err();
    assert!(format!("{err:#}").contains("line 2"), "{err:#}");
}
