//! The private metrics path: statsd datagrams in, InfluxDB points out.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use testkit::MetricsStack;

#[test]
fn statsd_timings_with_dogstatsd_tags_reach_influxdb() {
    let stack = MetricsStack::start().expect("start influxd + telegraf");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for ms in 1..=50 {
        let line = format!("replay.query.latency:{ms}|ms|#class:0123abcd,target:mariadb,run:t1");
        socket
            .send_to(line.as_bytes(), stack.statsd_addr())
            .unwrap();
    }

    // Telegraf flushes every second; allow a slow machine a few flushes.
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = stack
            .query(r#"SELECT sum("count") FROM "replay.query.latency" WHERE "class" = '0123abcd' AND "target" = 'mariadb'"#)
            .unwrap();
        if out.contains("50") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(out.contains(r#""sum"]"#) && out.contains(",50]"), "{out}");

    let dir = stack.dir().to_path_buf();
    drop(stack);
    assert!(!dir.exists());
}
