//! What the recorder's integration tests share: a recorder running in-process (or the
//! binary's ports and signals), and reading back its capture.
// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use captures::{CaptureReader, Cmd, Outcome, Record};
use clap::Parser;
use tokio::sync::oneshot;

pub struct Running {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<String, recorder::Error>>,
}

impl Running {
    /// Stops the recorder as SIGTERM would and returns its summary line.
    pub async fn stop(mut self) -> String {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap()
    }
}

/// Starts a recorder on a free port of 127.0.0.1 in front of `upstream`.
pub async fn start(upstream: &str, out: Option<&Path>, extra: &[&str]) -> Running {
    let mut args = vec![
        "recorder",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        upstream,
    ];
    let out_s;
    if let Some(out) = out {
        out_s = out.display().to_string();
        args.extend(["--out", &out_s]);
    }
    args.extend(extra);
    let config = recorder::config::Config::parse_from(args);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(recorder::listener::serve(config, listener, async {
        let _ = rx.await;
    }));
    Running {
        addr,
        stop: Some(tx),
        task,
    }
}

/// A recorder in front of the shared MariaDB with `extra` arguments, capturing to the
/// returned path, `c.sqlcap` in a temporary directory of its own (keep the directory as
/// long as the capture is needed).
pub async fn capturing(extra: &[&str]) -> (tempfile::TempDir, PathBuf, Running) {
    let server = testkit::MariaDb::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.sqlcap");
    let rec = start(&server.addr().to_string(), Some(&cap), extra).await;
    (dir, cap, rec)
}

/// A port of 127.0.0.1 that was free a moment ago (for a recorder run as a process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until the recorder process accepts connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, within: Duration) {
    let until = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "the recorder did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asks a child process to stop, as a service manager would (SIGTERM).
pub fn sigterm(child: &std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
}

pub fn read_capture(path: &Path) -> Vec<Record> {
    CaptureReader::open(path)
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

pub fn commands(records: &[Record]) -> Vec<(Cmd, Outcome)> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Command(c) => Some((c.cmd.clone(), c.outcome.clone())),
            _ => None,
        })
        .collect()
}

/// Whether any query in the capture is exactly `sql`.
pub fn captured(records: &[Record], sql: &str) -> bool {
    commands(records)
        .iter()
        .any(|(c, _)| c.sql() == Some(sql.as_bytes()))
}

/// The capture's ConnOpen records, in order.
pub fn conn_opens(records: &[Record]) -> Vec<&captures::ConnOpen> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::ConnOpen(o) => Some(o),
            _ => None,
        })
        .collect()
}

/// Asserts that a connection attempt failed with the server's error `code`.
pub fn assert_server_error(err: &mysql_async::Error, code: u16) {
    assert!(
        matches!(err, mysql_async::Error::Server(e) if e.code == code),
        "expected server error {code}, got {err:?}"
    );
}

pub fn url(addr: SocketAddr, db: &str) -> String {
    // prefer_socket=false: otherwise mysql_async finds the server's Unix socket through
    // @@socket and reconnects there, around the recorder.
    format!("mysql://root@{addr}/{db}?prefer_socket=false")
}

/// Runs the `mariadb` command-line client against `port` with `args`, then `-e sql`;
/// returns stdout, panicking with stderr on failure. Async: the recorder under test runs
/// on the same (current-thread) runtime, so blocking here would stall it.
pub async fn mariadb_cli(port: u16, args: &[&str], sql: &str) -> String {
    let out = tokio::process::Command::new("mariadb")
        .args(["--no-defaults", "-h127.0.0.1", "-P", &port.to_string()])
        .args(args)
        .args(["--batch", "-e", sql])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "mariadb {args:?} -e {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
