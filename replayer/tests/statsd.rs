//! statsd output checked by a real UDP listener: names, DogStatsD tags, counts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::*;
use replayer::target::Speed;
use testkit::MariaDb;

#[tokio::test]
async fn latency_lag_and_errors_arrive_as_tagged_statsd_lines() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("statsd").unwrap();
    let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let cap = tmp(&dir, "c.sqlcap");
    let mut s = Script::default();
    s.open(1, 0, &db);
    for i in 0..20u64 {
        s.query(1, (1 + i) * MS, "SELECT 1", rows(1));
    }
    s.query(1, 30 * MS, "SELECT * FROM missing_table", rows(0))
        .close(1, 31 * MS);
    s.write(&cap, false);
    let mut cfg = config(&cap, &server.url(), &tmp(&dir, "r.sqlres"), Speed::Max);
    cfg.metrics = Some(replayer::metrics::Metrics::new(&addr, "mariadb", "run-1").unwrap());
    let summary = replay(cfg).await;
    assert_eq!(summary.commands, 21);

    let mut lines = Vec::new();
    let mut buf = [0u8; 2048];
    while let Ok(n) = listener.recv(&mut buf) {
        assert!(n <= 1432, "datagram of {n} bytes");
        lines.extend(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(str::to_string),
        );
    }
    let latency: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("replay.query.latency:"))
        .collect();
    let lag = lines
        .iter()
        .filter(|l| l.starts_with("replay.query.lag:"))
        .count();
    assert_eq!(latency.len(), 21, "{lines:#?}");
    assert_eq!(lag, 21);
    let select_class =
        captures::fingerprint::class_id_hex(captures::fingerprint::class_id("select ?"));
    let l = latency[0];
    assert!(l.contains("|h|#"), "{l}");
    for tag in [
        format!("class:{select_class}"),
        "cmd:query".into(),
        "target:mariadb".into(),
        "run:run-1".into(),
    ] {
        assert!(l.contains(&tag), "{tag} missing in {l}");
    }
    let errors: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("replay.errors:1|c|#"))
        .collect();
    assert_eq!(errors.len(), 1, "{lines:#?}");
    assert!(errors[0].contains("code:1146"));
}
