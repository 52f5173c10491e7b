//! A private `mariadbd`: its own data directory, config file, socket and port.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::process::{find_program, free_port, pid_alive, spawn_tied_to_process};
use crate::{Error, Result};

const INSTALL_HINT: &str = "install MariaDB 10.11 with `sudo apt-get install mariadb-server mariadb-client` \
     (or run `make deps` / scripts/install-deps.sh at the top of this repository)";

/// How long a server may take to answer after it was started. InnoDB initialisation is
/// usually well under a second; a loaded CI machine running several test binaries at once
/// can be much slower.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a port collision (someone took the port between probe and bind) is retried.
const PORT_ATTEMPTS: usize = 3;

/// Extra server settings for [`MariaDb::start_with`].
#[derive(Debug, Clone, Default)]
pub struct MariaDbOptions {
    /// Lines appended to the `[mariadbd]` section, e.g. `"log-bin=binlog"`.
    pub config: Vec<String>,
    /// Options given to `mariadbd` on its command line, after its config file (so they
    /// win over it), e.g. `"--max-connections=1100"`.
    pub args: Vec<String>,
    /// Keep the data directory after the server stops (for post-mortems).
    pub keep_dir: bool,
    /// Use this `mariadbd` instead of the one on `$PATH` / in /usr/sbin.
    pub mariadbd: Option<PathBuf>,
    /// Create the instance directory under this one instead of the shared testkit
    /// directory (the playground keeps server data and logs beside its report).
    pub parent_dir: Option<PathBuf>,
}

impl MariaDbOptions {
    /// Adds one `[mariadbd]` config line.
    pub fn config(mut self, line: impl Into<String>) -> Self {
        self.config.push(line.into());
        self
    }

    /// Binary logging with GTIDs and row events, as replication (and Vitess tablets) need.
    pub fn with_binlog(self, server_id: u32) -> Self {
        self.config(format!("server-id={server_id}"))
            .config("log-bin=binlog")
            .config("binlog-format=ROW")
            .config("binlog-row-image=FULL")
            .config("log-slave-updates=ON")
            .config("gtid-strict-mode=ON")
    }
}

/// A running private MariaDB server. Dropping it kills the server and removes its
/// directory.
#[derive(Debug)]
pub struct MariaDb {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    keep_dir: bool,
    databases: AtomicU32,
}

impl MariaDb {
    /// Starts a server with the default settings.
    pub fn start() -> Result<Self> {
        Self::start_with(MariaDbOptions::default())
    }

    /// The one server this test binary shares, started on first use.
    ///
    /// It is never dropped: the kernel kills it when the test process exits, and the next
    /// start removes its directory. Give each test its own database
    /// ([`fresh_database`](Self::fresh_database)) so tests do not see each other's rows.
    pub fn shared() -> Result<&'static MariaDb> {
        static SHARED: OnceLock<std::result::Result<MariaDb, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| MariaDb::start().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Shared(e.clone()))
    }

    /// Starts a server with extra settings.
    pub fn start_with(options: MariaDbOptions) -> Result<Self> {
        let mariadbd = match &options.mariadbd {
            Some(path) if path.is_file() => Some(path.clone()),
            Some(_) => None,
            None => find_program("mariadbd"),
        }
        .ok_or(Error::Missing {
            program: "mariadbd",
            hint: INSTALL_HINT,
        })?;
        let install_db = find_program("mariadb-install-db").ok_or(Error::Missing {
            program: "mariadb-install-db",
            hint: INSTALL_HINT,
        })?;
        let base = match &options.parent_dir {
            Some(dir) => dir.clone(),
            None => {
                let base = base_dir();
                // Only the shared directory holds orphans of dead test processes.
                cleanup_stale(&base);
                base
            }
        };
        std::fs::create_dir_all(&base)
            .map_err(|e| Error::io(format!("creating {}", base.display()), e))?;

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let dir = base.join(instance_name(port));
            match Self::start_in(&dir, port, &options, &mariadbd, &install_db) {
                Ok(server) => return Ok(server),
                Err(err) => {
                    let collided = matches!(&err, Error::NotReady { log, .. }
                        if log.contains("Address already in use"));
                    if !options.keep_dir {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    if !collided {
                        return Err(err);
                    }
                    last_error = Some(err);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Shared("no start attempt was made".into())))
    }

    fn start_in(
        dir: &Path,
        port: u16,
        options: &MariaDbOptions,
        mariadbd: &Path,
        install_db: &Path,
    ) -> Result<Self> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let cnf = dir.join("my.cnf");
        std::fs::write(&cnf, config_file(dir, port, options))
            .map_err(|e| Error::io(format!("writing {}", cnf.display()), e))?;

        let output = Command::new(install_db)
            .arg(format!("--defaults-file={}", cnf.display()))
            .arg("--auth-root-authentication-method=normal")
            .arg("--skip-test-db")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io(format!("running {}", install_db.display()), e))?;
        if !output.status.success() {
            return Err(Error::Command {
                program: install_db.display().to_string(),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&[output.stdout, output.stderr].concat())
                    .into_owned(),
            });
        }

        let mut cmd = Command::new(mariadbd);
        cmd.arg(format!("--defaults-file={}", cnf.display()))
            .args(&options.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = spawn_tied_to_process(cmd)
            .map_err(|e| Error::io(format!("starting {}", mariadbd.display()), e))?;
        let mut server = MariaDb {
            child: Some(child),
            dir: dir.to_path_buf(),
            port,
            keep_dir: options.keep_dir,
            databases: AtomicU32::new(0),
        };
        server.wait_ready()?;
        // install-db creates root@localhost only; tests and tools connect over TCP.
        server.sql(
            "CREATE USER IF NOT EXISTS 'root'@'%'; \
             GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;",
        )?;
        Ok(server)
    }

    /// Waits until the server sends a protocol handshake on its TCP port.
    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let addr = self.addr();
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(self.not_ready(format!("mariadbd exited with {status}")));
            }
            if let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut first = [0u8; 5];
                // 4-byte packet header, then protocol version 10 (or an ERR packet, which
                // also proves the server is up and talking).
                if stream.read_exact(&mut first).is_ok() && matches!(first[4], 10 | 0xff) {
                    return Ok(());
                }
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!(
                    "no handshake on {addr} within {}s",
                    READY_TIMEOUT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn not_ready(&self, reason: String) -> Error {
        Error::NotReady {
            dir: self.dir.clone(),
            reason,
            log: tail(&self.error_log(), 30),
        }
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// `mysql://root@127.0.0.1:port` (root has no password on a test server).
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// `mysql://root@127.0.0.1:port/db`.
    pub fn url_for(&self, db: &str) -> String {
        format!("{}/{db}", self.url())
    }

    /// The server's directory (data, config, socket, logs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The Unix socket, for the `mariadb` command-line client.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("mysqld.sock")
    }

    /// The server's error log.
    pub fn error_log(&self) -> PathBuf {
        self.dir.join("error.log")
    }

    /// Runs SQL through the `mariadb` client as root and returns its tab-separated output
    /// (no column names).
    pub fn sql(&self, sql: &str) -> Result<String> {
        let client = find_program("mariadb").ok_or(Error::Missing {
            program: "mariadb",
            hint: INSTALL_HINT,
        })?;
        let output = Command::new(&client)
            .arg(format!(
                "--defaults-file={}",
                self.dir.join("my.cnf").display()
            ))
            .args(["--batch", "--skip-column-names", "-e", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io(format!("running {}", client.display()), e))?;
        if !output.status.success() {
            return Err(Error::Command {
                program: format!("mariadb -e {sql:?}"),
                status: output.status.to_string(),
                output: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Creates a new, empty database named `{prefix}_{n}` and returns its name, so tests
    /// sharing a server do not see each other's tables.
    pub fn fresh_database(&self, prefix: &str) -> Result<String> {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("{prefix}_{n}");
        self.sql(&format!("CREATE DATABASE `{name}`"))?;
        Ok(name)
    }

    /// Creates a user that authenticates with `mysql_native_password` and may do anything.
    pub fn create_user(&self, user: &str, password: &str) -> Result<()> {
        self.sql(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; \
             GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%';"
        ))
        .map(drop)
    }

    /// Kills the server now (the directory is removed on drop).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        // A test server holds nothing worth a clean shutdown; SIGKILL is instant.
        self.kill();
        if !self.keep_dir {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Where instance directories live: `$TESTKIT_DIR`, else `$TMPDIR/sqlreplay-testkit`.
/// Kept short because a Unix socket path may not exceed 107 bytes.
fn base_dir() -> PathBuf {
    std::env::var_os("TESTKIT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("sqlreplay-testkit"))
}

/// `{pid}-{n}-{port}`: the pid lets [`cleanup_stale`] recognise orphans.
fn instance_name(port: u16) -> String {
    static INSTANCES: AtomicU32 = AtomicU32::new(0);
    let n = INSTANCES.fetch_add(1, Ordering::Relaxed);
    format!("{}-{n}-{port}", std::process::id())
}

/// Removes instance directories whose test process is gone (shared servers are never
/// dropped, and killed test runs drop nothing). Errors are ignored: a directory that
/// cannot be removed costs disk space, not correctness.
pub fn cleanup_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        // Only names of the exact shape `{pid}-{n}-{port}` are ours.
        let parts: Vec<&str> = name.to_str().unwrap_or("").split('-').collect();
        let [pid, n, port] = parts[..] else {
            continue;
        };
        let (Ok(pid), Ok(_), Ok(_)) = (pid.parse::<u32>(), n.parse::<u32>(), port.parse::<u16>())
        else {
            continue;
        };
        if !pid_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self is owned by the process's effective uid.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn config_file(dir: &Path, port: u16, options: &MariaDbOptions) -> String {
    let d = dir.display();
    let mut cnf = String::new();
    let _ = writeln!(cnf, "[client]");
    let _ = writeln!(cnf, "socket={d}/mysqld.sock");
    let _ = writeln!(cnf, "user=root");
    let _ = writeln!(cnf);
    let _ = writeln!(cnf, "[mariadbd]");
    if running_as_root() {
        // mariadbd refuses to run as root unless told to, which is what we want here:
        // the data directory belongs to root and is thrown away afterwards.
        let _ = writeln!(cnf, "user=root");
    }
    let _ = writeln!(cnf, "datadir={d}/data");
    let _ = writeln!(cnf, "socket={d}/mysqld.sock");
    let _ = writeln!(cnf, "pid-file={d}/mariadbd.pid");
    let _ = writeln!(cnf, "log-error={d}/error.log");
    let _ = writeln!(cnf, "tmpdir={d}");
    let _ = writeln!(cnf, "port={port}");
    let _ = writeln!(cnf, "bind-address=127.0.0.1");
    let _ = writeln!(cnf, "skip-name-resolve");
    let _ = writeln!(cnf, "character-set-server=utf8mb4");
    let _ = writeln!(cnf, "collation-server=utf8mb4_general_ci");
    let _ = writeln!(cnf, "max-connections=2000");
    // Packets of 16 MiB and more must be testable (0xFFFFFF continuation).
    let _ = writeln!(cnf, "max-allowed-packet=64M");
    let _ = writeln!(cnf, "local-infile=ON");
    let _ = writeln!(cnf, "performance-schema=OFF");
    // Durability is not a property of a throwaway server; speed of tests is.
    let _ = writeln!(cnf, "innodb-flush-log-at-trx-commit=2");
    let _ = writeln!(cnf, "innodb-doublewrite=0");
    let _ = writeln!(cnf, "innodb-buffer-pool-size=256M");
    let _ = writeln!(cnf, "innodb-log-file-size=64M");
    if !options.config.iter().any(|l| l.starts_with("log-bin")) {
        let _ = writeln!(cnf, "skip-log-bin");
    }
    for line in &options.config {
        let _ = writeln!(cnf, "{line}");
    }
    cnf
}

fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}
