//! Building captures by hand and replaying them against a private MariaDB.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use captures::{
    CaptureWriter, CloseReason, Cmd, Command, ConnClose, ConnOpen, Meta, Outcome, Param, Record,
    ResultRecord, ResultsReader, Value, WriterOptions,
};
use replayer::run::{RunConfig, RunSummary};
use replayer::target::{Speed, Target};

pub const MS: u64 = 1_000_000;

pub fn meta(redacted: bool) -> Meta {
    Meta {
        tool: "test".into(),
        started_unix_ns: 0,
        upstream: "test".into(),
        server_version: "10.11".into(),
        redacted,
        labels: Default::default(),
    }
}

/// A capture under construction: connections and commands with explicit times (ns).
#[derive(Default)]
pub struct Script {
    pub records: Vec<Record>,
}

impl Script {
    pub fn open(&mut self, conn: u64, t: u64, db: &str) -> &mut Self {
        self.records.push(Record::ConnOpen(ConnOpen {
            conn,
            t,
            client_addr: "127.0.0.1:1".into(),
            user: "app".into(),
            db: Some(db.into()),
            capabilities: 0,
            charset: 45,
            auth_plugin: "mysql_native_password".into(),
            server_conn_id: 1,
        }));
        self
    }
    pub fn cmd(&mut self, conn: u64, t: u64, cmd: Cmd, outcome: Outcome) -> &mut Self {
        self.records.push(Record::Command(Command {
            conn,
            t_start: t,
            t_end: t + 100_000,
            cmd,
            outcome,
            status: None,
        }));
        self
    }
    pub fn query(&mut self, conn: u64, t: u64, sql: &str, outcome: Outcome) -> &mut Self {
        self.cmd(
            conn,
            t,
            Cmd::Query {
                sql: sql.as_bytes().to_vec(),
            },
            outcome,
        )
    }
    pub fn close(&mut self, conn: u64, t: u64) -> &mut Self {
        self.records.push(Record::ConnClose(ConnClose {
            conn,
            t,
            reason: CloseReason::Quit,
        }));
        self
    }
    pub fn write(&self, path: &Path, redacted: bool) {
        self.write_with(path, redacted, WriterOptions::default());
    }

    /// `write` with writer options (e.g. small chunks, so damage leaves most readable).
    pub fn write_with(&self, path: &Path, redacted: bool, options: WriterOptions) {
        let mut w = CaptureWriter::create(path, &meta(redacted), options).unwrap();
        for r in &self.records {
            w.append(r).unwrap();
        }
        w.close().unwrap();
    }
}

pub fn ok(affected: u64) -> Outcome {
    Outcome::Ok {
        affected_rows: affected,
        last_insert_id: 0,
        warnings: 0,
    }
}

pub fn rows(count: u64) -> Outcome {
    Outcome::Rows {
        count,
        warnings: 0,
        digest: None,
    }
}

pub fn int(v: i64) -> Param {
    Param {
        column_type: 8,
        unsigned: false,
        value: Value::Int(v),
    }
}

pub fn config(capture: &Path, url: &str, out: &Path, speed: Speed) -> RunConfig {
    RunConfig {
        capture: capture.to_path_buf(),
        target: Target::parse(url, None, &[]).unwrap(),
        target_url_display: url.into(),
        out: out.to_path_buf(),
        speed,
        scale: 1,
        label: "test".into(),
        only_class: vec![],
        skip_writes: false,
        max_errors: None,
        duration: None,
        read_ahead: 64,
        connections: replayer::run::Connections::Pooled,
        max_connections: None,
        sync_commits: false,
        result_digest: true,
        progress: false,
        metrics: None,
        handle_signals: false,
    }
}

pub async fn replay(cfg: RunConfig) -> RunSummary {
    replayer::run::run(cfg).await.expect("replay runs")
}

/// Every Exec record of a results file, in file order.
pub fn executed(path: &Path) -> (Vec<captures::Executed>, Vec<String>) {
    let mut execs = Vec::new();
    let mut classes = Vec::new();
    for r in ResultsReader::open(path).unwrap() {
        match r.unwrap() {
            ResultRecord::Exec(e) => execs.push(e),
            ResultRecord::Class { fingerprint, .. } => classes.push(fingerprint),
            ResultRecord::End(_) | ResultRecord::Diverged(_) => {}
        }
    }
    // Pooled replay runs a connection's units concurrently: its commands finish (and
    // reach the file) in any order. Captured order is what tests reason about.
    execs.sort_by_key(|e| (e.conn, e.seq));
    (execs, classes)
}

/// The same run with one serial target connection per captured connection.
pub fn captured(mut cfg: RunConfig) -> RunConfig {
    cfg.connections = replayer::run::Connections::Captured;
    cfg
}

pub fn tmp(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// A recorder running in this process, capturing to a file.
pub struct Recorder {
    pub port: u16,
    stop: tokio::sync::oneshot::Sender<()>,
    proxy: tokio::task::JoinHandle<Result<String, recorder::Error>>,
}

impl Recorder {
    /// Records everything sent to `port` on its way to `server`, into `cap`.
    pub async fn start(server: &testkit::MariaDb, cap: &Path) -> Recorder {
        use clap::Parser;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = server.addr().to_string();
        let out = cap.display().to_string();
        let config = recorder::config::Config::parse_from([
            "recorder",
            "--upstream",
            &upstream,
            "--out",
            &out,
        ]);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let proxy = tokio::spawn(recorder::listener::serve(config, listener, async {
            let _ = stopped.await;
        }));
        Recorder { port, stop, proxy }
    }

    /// Stops it; the capture is complete when this returns.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.proxy.await.unwrap().unwrap();
    }
}

/// `replayer compare RUNS...` with the command line's defaults.
pub fn compare_args(runs: Vec<PathBuf>) -> replayer::command::compare::CompareArgs {
    replayer::command::compare::CompareArgs {
        runs,
        html: None,
        json: None,
        fail_on_regression: None,
        threshold: 10.0,
        min_samples: 30,
        verdict_on: replayer::compare::Quantile::P50,
        allow_fell_behind: false,
        top: 25,
        fail_on_divergence: false,
        ignore_class: vec![],
    }
}
