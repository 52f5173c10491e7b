//! The recorder under the failures of issue #19: clients that vanish, shutdown with
//! open connections, captures that end cleanly or not, unreachable upstreams, hostile
//! logins, full disks, secrets and bad flags.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use captures::{CloseReason, Outcome, Record};
use common::{read_capture, start, url};
use mysql_async::prelude::*;
use testkit::MariaDb;

/// How many statements containing `marker` the server is running.
async fn running(server: &'static MariaDb, marker: &str) -> usize {
    let sql = format!(
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST \
         WHERE INFO LIKE '%{marker}%' AND INFO NOT LIKE '%PROCESSLIST%'"
    );
    // The mariadb client blocks: not on the runtime the recorder runs on.
    tokio::task::spawn_blocking(move || server.sql(&sql).unwrap())
        .await
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// MariaDB's main.dirty_close: a client killed while its statement runs. Directly, the
/// server notices the closed socket and stops the statement (SLEEP checks every few
/// seconds); through the recorder it must too, so the recorder may not keep the
/// upstream open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_statement_stops_the_statement_on_the_server() {
    let server = MariaDb::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.sqlcap");
    let rec = start(&server.addr().to_string(), Some(&cap), &[]).await;
    let marker = "dirty_close_marker";
    let mut client = tokio::process::Command::new("mariadb")
        .args(["--no-defaults", "-h127.0.0.1", "-uroot", "-P"])
        .arg(rec.addr.port().to_string())
        .args(["-e", &format!("SELECT SLEEP(60), '{marker}'")])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while running(server, marker).await == 0 {
        assert!(Instant::now() < until, "the statement never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // kill -9: the socket closes with no COM_QUIT.
    client.start_kill().unwrap();
    client.wait().await.unwrap();
    let killed = Instant::now();
    // MariaDB checks for a vanished client every 5 s while sleeping; directly it is
    // gone within that, through a recorder that kept the upstream open it ran 60 s.
    while running(server, marker).await > 0 {
        assert!(
            killed.elapsed() < Duration::from_secs(8),
            "still running on the server {:?} after the client died",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("gone after {:?}", killed.elapsed());
    rec.stop().await;
    let records = read_capture(&cap);
    let sleep = records.iter().find_map(|r| match r {
        Record::Command(c) if c.cmd.sql().is_some_and(|s| s.starts_with(b"SELECT SLEEP")) => {
            Some(c)
        }
        _ => None,
    });
    assert_eq!(
        sleep.map(|c| &c.outcome),
        Some(&Outcome::Dropped),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::ConnClose(c) if c.reason == CloseReason::ClientGone)),
        "{records:?}"
    );
}

/// Waits until the server runs a statement containing `marker`.
async fn wait_running(server: &'static MariaDb, marker: &str) {
    let until = Instant::now() + Duration::from_secs(10);
    while running(server, marker).await == 0 {
        assert!(Instant::now() < until, "{marker} never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The captured command whose SQL contains `marker`.
fn command_with<'a>(records: &'a [Record], marker: &str) -> &'a captures::Command {
    records
        .iter()
        .find_map(|r| match r {
            Record::Command(c) if c.cmd.sql_lossy().is_some_and(|s| s.contains(marker)) => Some(c),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no {marker} in {records:?}"))
}

/// SIGTERM with connections open: the idle one closes at once, the busy one finishes its
/// statement within the grace period, the one still busy after it is cut; all three
/// end with a ConnClose saying Shutdown, and the commands in flight are captured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_connection_in_the_capture() {
    let server = MariaDb::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.sqlcap");
    let rec = start(
        &server.addr().to_string(),
        Some(&cap),
        &["--shutdown-grace", "2s"],
    )
    .await;
    let url = url(rec.addr, "mysql");
    let mut idle = mysql_async::Conn::from_url(&url).await.unwrap();
    idle.query_drop("SELECT 1").await.unwrap();
    let mut busy = mysql_async::Conn::from_url(&url).await.unwrap();
    let busy = tokio::spawn(async move {
        busy.query_drop("SELECT SLEEP(1), 'shutdown_finishes'")
            .await
    });
    let mut stuck = mysql_async::Conn::from_url(&url).await.unwrap();
    let stuck =
        tokio::spawn(async move { stuck.query_drop("SELECT SLEEP(60), 'shutdown_cut'").await });
    wait_running(server, "shutdown_finishes").await;
    wait_running(server, "shutdown_cut").await;

    let stopping = Instant::now();
    rec.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(5),
        "{:?}",
        stopping.elapsed()
    );
    busy.await.unwrap().unwrap();
    assert!(stuck.await.unwrap().is_err());
    let records = read_capture(&cap);
    let shutdowns = records
        .iter()
        .filter(|r| matches!(r, Record::ConnClose(c) if c.reason == CloseReason::Shutdown))
        .count();
    assert_eq!(shutdowns, 3, "{records:?}");
    assert!(matches!(
        command_with(&records, "shutdown_finishes").outcome,
        Outcome::Rows { count: 1, .. }
    ));
    assert_eq!(
        command_with(&records, "shutdown_cut").outcome,
        Outcome::Dropped
    );
    // ... and the capture says it was closed cleanly.
    let mut reader = captures::CaptureReader::open(&cap).unwrap();
    for r in reader.by_ref() {
        r.unwrap();
    }
    assert!(reader.ended_cleanly());
}
