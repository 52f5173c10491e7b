//! A private metrics path: Telegraf (statsd in) → InfluxDB 1.x, as the playground runs it.

use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{find_program, free_port, spawn_tied_to_process};
use crate::{Error, Result};

const INFLUX_HINT: &str = "install InfluxDB 1.x and Telegraf with scripts/install-metrics.sh";

/// How long influxd and telegraf may take to open their ports.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Telegraf listening for statsd on UDP, writing to its own InfluxDB.
#[derive(Debug)]
pub struct MetricsStack {
    influxd: Option<Child>,
    telegraf: Option<Child>,
    dir: PathBuf,
    keep_dir: bool,
    influx_port: u16,
    statsd_port: u16,
}

impl MetricsStack {
    /// The InfluxDB database Telegraf writes to.
    pub const DATABASE: &'static str = "sqlreplay";

    /// Starts both under a fresh directory in `$TMPDIR/sqlreplay-testkit`.
    pub fn start() -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("metrics-")
            .tempdir()
            .map_err(|e| Error::io("creating a metrics directory", e))?
            .keep();
        Self::start_in(&dir, false)
    }

    /// Starts both with data, configs and logs under `dir` (kept afterwards when
    /// `keep_dir`).
    pub fn start_in(dir: &Path, keep_dir: bool) -> Result<Self> {
        let influxd = find_program("influxd").ok_or(Error::Missing {
            program: "influxd",
            hint: INFLUX_HINT,
        })?;
        let telegraf = telegraf_binary().ok_or(Error::Missing {
            program: "telegraf",
            hint: INFLUX_HINT,
        })?;
        let config = config_dir();
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;

        let influx_port = free_port()?;
        let rpc_port = free_port()?;
        let statsd_port = free_udp_port()?;
        let mut stack = MetricsStack {
            influxd: None,
            telegraf: None,
            dir: dir.to_path_buf(),
            keep_dir,
            influx_port,
            statsd_port,
        };

        let mut cmd = Command::new(influxd);
        cmd.arg("-config")
            .arg(config.join("influxdb.conf"))
            .env("INFLUXDB_META_DIR", dir.join("influxdb/meta"))
            .env("INFLUXDB_DATA_DIR", dir.join("influxdb/data"))
            .env("INFLUXDB_DATA_WAL_DIR", dir.join("influxdb/wal"))
            .env(
                "INFLUXDB_HTTP_BIND_ADDRESS",
                format!("127.0.0.1:{influx_port}"),
            )
            .env("INFLUXDB_BIND_ADDRESS", format!("127.0.0.1:{rpc_port}"));
        stack.influxd = Some(spawn_logged(cmd, &dir.join("influxd.log"))?);
        stack.wait_tcp(influx_port, "influxd", "influxd.log")?;

        let mut cmd = Command::new(telegraf);
        cmd.arg("--config")
            .arg(config.join("telegraf.conf"))
            .env("STATSD_ADDR", format!("127.0.0.1:{statsd_port}"))
            .env("INFLUX_URL", stack.influx_url())
            .env("INFLUX_DB", Self::DATABASE);
        stack.telegraf = Some(spawn_logged(cmd, &dir.join("telegraf.log"))?);
        stack.wait_log(&dir.join("telegraf.log"), "Started the statsd service")?;
        Ok(stack)
    }

    /// Where to send statsd datagrams.
    pub fn statsd_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.statsd_port))
    }

    /// InfluxDB's HTTP API, e.g. `http://127.0.0.1:PORT`.
    pub fn influx_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.influx_port)
    }

    /// InfluxDB's HTTP port.
    pub fn influx_port(&self) -> u16 {
        self.influx_port
    }

    /// The directory holding data and logs.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs an InfluxQL query with the `influx` CLI and returns its JSON output.
    pub fn query(&self, influxql: &str) -> Result<String> {
        let influx = find_program("influx").ok_or(Error::Missing {
            program: "influx",
            hint: INFLUX_HINT,
        })?;
        let output = Command::new(influx)
            .args(["-host", "127.0.0.1", "-port"])
            .arg(self.influx_port.to_string())
            .args(["-database", Self::DATABASE, "-format", "json", "-execute"])
            .arg(influxql)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("running influx", e))?;
        if !output.status.success() {
            return Err(Error::Command {
                program: format!("influx -execute {influxql:?}"),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&[output.stdout, output.stderr].concat())
                    .into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    fn wait_tcp(&mut self, port: u16, what: &str, log: &str) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if Instant::now() >= deadline || self.exited() {
                return Err(self.not_ready(format!("{what} did not open {addr}"), log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn wait_log(&mut self, log: &Path, needle: &str) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if std::fs::read_to_string(log).is_ok_and(|text| text.contains(needle)) {
                return Ok(());
            }
            if Instant::now() >= deadline || self.exited() {
                let name = log.file_name().and_then(|n| n.to_str()).unwrap_or("log");
                return Err(self.not_ready(format!("no {needle:?} in {name}"), name));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn exited(&mut self) -> bool {
        [&mut self.influxd, &mut self.telegraf]
            .into_iter()
            .flatten()
            .any(|c| matches!(c.try_wait(), Ok(Some(_))))
    }

    fn not_ready(&self, reason: String, log: &str) -> Error {
        Error::NotReady {
            dir: self.dir.clone(),
            reason,
            log: std::fs::read_to_string(self.dir.join(log))
                .map(|t| t.lines().rev().take(20).collect::<Vec<_>>().join("\n"))
                .unwrap_or_default(),
        }
    }
}

impl Drop for MetricsStack {
    fn drop(&mut self) {
        for child in [self.telegraf.take(), self.influxd.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The Telegraf that scripts/install-metrics.sh builds, or one on `$PATH`.
pub fn telegraf_binary() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let version = std::env::var("TELEGRAF_VERSION").unwrap_or_else(|_| "v1.37.2".into());
    let cached = cache
        .join("sqlreplay")
        .join(format!("telegraf-{version}"))
        .join("bin/telegraf");
    if cached.is_file() {
        return Some(cached);
    }
    find_program("telegraf")
}

/// The repository's playground/config directory (configs are kept in the repo).
fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("playground")
        .join("config")
}

fn free_udp_port() -> Result<u16> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("binding a UDP probe socket", e))?;
    socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("reading the UDP probe's address", e))
}

fn spawn_logged(mut cmd: Command, log: &Path) -> Result<Child> {
    let file = std::fs::File::create(log)
        .map_err(|e| Error::io(format!("creating {}", log.display()), e))?;
    let err = file
        .try_clone()
        .map_err(|e| Error::io(format!("duplicating {}", log.display()), e))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(file))
        .stderr(Stdio::from(err));
    spawn_tied_to_process(cmd).map_err(|e| Error::io("starting a metrics process", e))
}
