//! The live dashboard against real servers: a private MariaDB, a private Telegraf →
//! InfluxDB pair, a real replay sending statsd, and the page loaded in headless
//! Chromium (its DOM after the script ran, and a screenshot kept under target/tmp).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use captures::{
    CaptureWriter, CloseReason, Cmd, ConnClose, ConnOpen, Meta, Outcome, Record, WriterOptions,
};
use replayer::run::RunConfig;
use replayer::target::{Speed, Target};
use testkit::{MariaDb, MetricsStack};

const RUN: &str = "dash-run";
const MS: u64 = 1_000_000;

#[test]
fn the_page_charts_a_real_replay_with_its_events_then_says_influxdb_is_unreachable() {
    let chromium = chromium();
    let metrics = MetricsStack::start().unwrap();
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("dashboard").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("dash.sqlcap");
    write_capture(&capture, &db);
    // The fingerprints `replayer inspect --json` gives, for the classes legend.
    let classes = dir.path().join("classes.json");
    let inspection = replayer::inspect::inspect(&capture, 1000).unwrap();
    std::fs::write(&classes, serde_json::to_string(&inspection).unwrap()).unwrap();
    let dashboard = Dashboard::start_with(
        &metrics.influx_url(),
        &["--classes", classes.to_str().unwrap()],
    );

    event(&metrics, "replay-start", "replay dash-run starts");
    replay(&metrics, server, &capture, dir.path());
    event(&metrics, "replay-end", "replay dash-run ends");

    // Telegraf flushes every second; wait until InfluxDB holds the run.
    wait_for(&dashboard, "/view/replay?range=5m", RUN);
    wait_for(&dashboard, "/view/events?range=5m", "replay dash-run ends");

    // The last 5 minutes: the range a short replay is best seen in.
    let page = format!("{}?range=5m", dashboard.url);
    let dom = chromium.dump_dom(&page);
    for view in ["replay", "latency", "classes", "lag", "events"] {
        let section = section(&dom, view);
        assert!(
            section.contains(r#"data-state="ok""#),
            "view {view} has no data:\n{section}"
        );
    }
    let replay = section(&dom, "replay");
    assert!(points(replay) > 0, "no data points:\n{replay}");
    assert!(replay.contains(RUN), "the run's label is not on the chart");
    assert!(replay.contains("<polyline"), "no line drawn:\n{replay}");
    // The event is a marker on the charts and a row of the events table.
    assert!(
        replay.contains("replay dash-run starts"),
        "no event marker on the chart"
    );
    assert!(section(&dom, "events").contains(r#"data-kind="replay-end""#));
    let classes = section(&dom, "classes");
    assert!(classes.contains("(query) select sleep(?)"), "{classes}");
    assert!(dom.contains(r#"id="status" data-state="ok""#), "{dom}");
    assert!(
        dom.contains("one point per 2 s"),
        "not the 5-minute range:\n{replay}"
    );

    let shot = artefacts().join("dashboard.png");
    chromium.screenshot(&page, &shot);
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);

    // InfluxDB gone: every view says so (and the page keeps retrying).
    drop(metrics);
    let dom = chromium.dump_dom(&page);
    assert!(
        dom.contains(r#"id="status" data-state="unreachable""#),
        "{dom}"
    );
    assert!(dom.contains("InfluxDB unreachable"), "{dom}");
    assert!(section(&dom, "replay").contains(r#"data-state="unreachable""#));
    chromium.screenshot(&page, &artefacts().join("dashboard-unreachable.png"));
}

#[test]
fn many_classes_and_runs_keep_every_answer_small() {
    let metrics = MetricsStack::start().unwrap();
    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // 1,000 classes of one run and 30 runs, a point every 10 s for 5 minutes.
    let mut lines = String::new();
    for t in (now_s - 300..now_s).step_by(10) {
        for c in 0..1000u64 {
            let p99 = 1.0 + c as f64 / 100.0;
            lines.push_str(&format!(
                "replay.query.latency,class={c:016x},cmd=query,run=many,target=t count=5,50_percentile=0.5,99_percentile={p99} {t}000000000\n"
            ));
        }
        for r in 0..30 {
            lines.push_str(&format!(
                "replay.query.latency,class=00000000000000aa,cmd=query,run=run-{r:02},target=t count=5,50_percentile=0.5,99_percentile=1 {t}000000000\n"
            ));
        }
    }
    write_lines(&metrics, &lines);
    let dashboard = Dashboard::start(&metrics.influx_url());

    let classes = dashboard.get("/view/classes?range=5m&run=many");
    assert!(classes.len() < 200_000, "{} bytes", classes.len());
    assert_eq!(attr(&classes, "data-series"), 8, "{classes}");
    // The slowest classes are the ones with the highest ids here.
    assert!(classes.contains(&format!("{:016x}", 999)), "{classes}");
    assert!(points(&classes) <= 8 * 150);

    let replay = dashboard.get("/view/replay?range=5m");
    assert!(replay.len() < 200_000, "{} bytes", replay.len());
    assert_eq!(attr(&replay, "data-series"), 10, "{replay}");

    let all = dashboard.get("/view/latency?range=all");
    assert!(points(&all) <= 20 * 150, "{all}");

    // Views without data say what they wait for.
    let shop = dashboard.get("/view/shop?range=5m");
    assert!(shop.contains(r#"data-state="waiting""#), "{shop}");
    assert!(shop.contains("Waiting for the shop"), "{shop}");
    let empty = Dashboard::start_with(&metrics.influx_url(), &["--database", "nothing_yet"]);
    let status = empty.get("/status?range=5m");
    assert!(status.contains(r#"data-state="waiting""#), "{status}");
    assert!(status.contains("does not exist yet"), "{status}");
}

// ---------------------------------------------------------------------------------

struct Dashboard {
    child: Child,
    url: String,
}

impl Dashboard {
    fn start(influx: &str) -> Self {
        Self::start_with(influx, &[])
    }

    fn start_with(influx: &str, args: &[&str]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_playground"));
        cmd.args(["dashboard", "--influx", influx, "--listen", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped());
        let mut child = testkit::spawn_tied_to_process(cmd).unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .trim()
            .strip_prefix("dashboard ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Dashboard { child, url }
    }

    /// A plain HTTP/1.0 GET (the server closes after answering); the body.
    fn get(&self, path: &str) -> String {
        let addr = self.url.trim_start_matches("http://").trim_end_matches('/');
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
            "{head}"
        );
        body.to_string()
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(dashboard: &Dashboard, path: &str, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let body = dashboard.get(path);
        if body.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {needle:?} in {path}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Chromium(PathBuf);

fn chromium() -> Chromium {
    let path = testkit::find_program("chromium").unwrap_or_else(|| {
        panic!("chromium is not installed; scripts/install-deps.sh installs it (Debian package `chromium`)")
    });
    Chromium(path)
}

impl Chromium {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new(&self.0)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            // Lets the page's script fetch and swap in every view before the dump.
            .arg("--virtual-time-budget=5000")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "chromium failed: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn dump_dom(&self, url: &str) -> String {
        self.run(&["--dump-dom", url])
    }

    fn screenshot(&self, url: &str, path: &Path) {
        let shot = format!("--screenshot={}", path.display());
        self.run(&[&shot, "--window-size=1400,1000", url]);
    }
}

/// The HTML of one view's section in a dumped DOM.
fn section<'a>(dom: &'a str, view: &str) -> &'a str {
    let start = dom
        .find(&format!(r#"data-view="{view}""#))
        .unwrap_or_else(|| panic!("no view {view} in\n{dom}"));
    let end = dom[start..]
        .find("</section>")
        .map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

/// The sum of every `data-points` in `html`.
fn points(html: &str) -> u64 {
    html.match_indices(r#"data-points=""#)
        .map(|(i, m)| {
            let rest = &html[i + m.len()..];
            rest[..rest.find('"').unwrap()].parse::<u64>().unwrap()
        })
        .sum()
}

/// The first value of a numeric attribute.
fn attr(html: &str, name: &str) -> u64 {
    let key = format!(r#"{name}=""#);
    let i = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + key.len();
    html[i..i + html[i..].find('"').unwrap()].parse().unwrap()
}

fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes an event with the playground's own `event` command.
fn event(metrics: &MetricsStack, kind: &str, label: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_playground"))
        .args([
            "event",
            "--influx",
            &metrics.influx_url(),
            "--source",
            "test",
        ])
        .args(["--kind", kind, "--run", RUN, "--label", label])
        .status()
        .unwrap();
    assert!(status.success());
}

fn write_lines(metrics: &MetricsStack, lines: &str) {
    let addr = format!("127.0.0.1:{}", metrics.influx_port());
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /write?db={}&precision=ns HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n\r\n{lines}",
        MetricsStack::DATABASE,
        lines.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.lines().next().is_some_and(|l| l.contains(" 204 ")),
        "{response}"
    );
}

/// Replays the capture at 1× with statsd to the private Telegraf.
fn replay(metrics: &MetricsStack, server: &MariaDb, capture: &Path, dir: &Path) {
    let target = Target::parse(&server.url(), None, &[]).unwrap();
    let statsd = metrics.statsd_addr().to_string();
    let metrics = replayer::metrics::Metrics::new(&statsd, target.display(), RUN).unwrap();
    let config = RunConfig {
        capture: capture.to_path_buf(),
        target,
        target_url_display: server.url(),
        out: dir.join("dash.sqlres"),
        speed: Speed::Factor(1.0),
        scale: 1,
        label: RUN.into(),
        only_class: vec![],
        skip_writes: false,
        max_errors: None,
        duration: None,
        read_ahead: 64,
        connections: replayer::run::Connections::default(),
        max_connections: None,
        sync_commits: false,
        result_digest: true,
        progress: false,
        metrics: Some(metrics),
        handle_signals: false,
    };
    let summary = replayer::run::runtime()
        .unwrap()
        .block_on(replayer::run::run(config))
        .unwrap();
    assert!(summary.commands > 100, "{summary:?}");
    replayer::metrics::flush();
}

/// Six seconds, two connections, three classes (one failing).
fn write_capture(path: &Path, db: &str) {
    let meta = Meta {
        tool: "dashboard test".into(),
        started_unix_ns: 0,
        upstream: "test".into(),
        server_version: "10.11".into(),
        redacted: false,
        labels: Default::default(),
    };
    let mut w = CaptureWriter::create(path, &meta, WriterOptions::default()).unwrap();
    for conn in [1, 2] {
        w.append(&Record::ConnOpen(ConnOpen {
            conn,
            t: 0,
            client_addr: "127.0.0.1:1".into(),
            user: "app".into(),
            db: Some(db.into()),
            capabilities: 0,
            charset: 45,
            auth_plugin: "mysql_native_password".into(),
            server_conn_id: conn as u32,
        }))
        .unwrap();
    }
    let rows = Outcome::Rows {
        count: 1,
        warnings: 0,
        digest: None,
    };
    for i in 0..120u64 {
        let t = 10 * MS + i * 50 * MS;
        query(&mut w, 1, t, &format!("SELECT {i}"), rows.clone());
        if i % 4 == 0 {
            query(&mut w, 2, t + MS, "SELECT SLEEP(0.005)", rows.clone());
        }
        if i % 20 == 0 {
            let missing = Outcome::Err {
                code: 1146,
                sqlstate: "42S02".into(),
                message: String::new(),
            };
            query(
                &mut w,
                2,
                t + 2 * MS,
                "SELECT * FROM missing_table",
                missing,
            );
        }
    }
    for conn in [1, 2] {
        w.append(&Record::ConnClose(ConnClose {
            conn,
            t: 6_100 * MS,
            reason: CloseReason::Quit,
        }))
        .unwrap();
    }
    w.close().unwrap();
}

fn query(w: &mut CaptureWriter<std::fs::File>, conn: u64, t: u64, sql: &str, outcome: Outcome) {
    w.append(&Record::Command(captures::Command {
        conn,
        t_start: t,
        t_end: t + MS / 10,
        cmd: Cmd::Query {
            sql: sql.as_bytes().to_vec(),
        },
        outcome,
        status: None,
    }))
    .unwrap();
}
