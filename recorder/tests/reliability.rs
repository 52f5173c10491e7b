//! The recorder under the failures of issue #19: clients that vanish, shutdown with
//! open connections, captures that end cleanly or not, unreachable upstreams, hostile
//! logins, full disks, secrets and bad flags.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::time::{Duration, Instant};

use captures::{CloseReason, Outcome, Record};
use common::{captured, capturing, free_port, read_capture, sigterm, start, url, wait_listening};
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

/// Runs `mariadb -e "SELECT SLEEP(60), 'marker'"` against `port`.
fn sleeping_client(port: u16, marker: &str) -> tokio::process::Child {
    tokio::process::Command::new("mariadb")
        .args(["--no-defaults", "-h127.0.0.1", "-uroot", "-P"])
        .arg(port.to_string())
        .args(["-e", &format!("SELECT SLEEP(60), '{marker}'")])
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// MariaDB's main.dirty_close: a client killed while its statement runs. The server
/// notices the closed socket and stops the statement (SLEEP checks every 5 s); through
/// the recorder it must happen as soon as directly, so the recorder may not keep the
/// upstream open. Both run side by side, killed at the same moment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_mid_statement_stops_the_statement_on_the_server() {
    let server = MariaDb::shared().unwrap();
    let (_dir, cap, rec) = capturing(&[]).await;
    let (relayed, direct) = ("dirty_close_relayed", "dirty_close_direct");
    let mut clients = [
        sleeping_client(rec.addr.port(), relayed),
        sleeping_client(server.port(), direct),
    ];
    wait_running(server, relayed).await;
    wait_running(server, direct).await;
    // kill -9: the sockets close with no COM_QUIT.
    for client in &mut clients {
        client.start_kill().unwrap();
        client.wait().await.unwrap();
    }
    let killed = Instant::now();
    let (mut relayed_gone, mut direct_gone) = (None, None);
    while relayed_gone.is_none() || direct_gone.is_none() {
        // Through a recorder that kept the upstream open it ran the full 60 s.
        assert!(
            killed.elapsed() < Duration::from_secs(12),
            "still running {:?} after the clients died: relayed {relayed_gone:?}, \
             direct {direct_gone:?}",
            killed.elapsed()
        );
        for (marker, gone) in [(relayed, &mut relayed_gone), (direct, &mut direct_gone)] {
            if gone.is_none() && running(server, marker).await == 0 {
                *gone = Some(killed.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (relayed_gone, direct_gone) = (relayed_gone.unwrap(), direct_gone.unwrap());
    eprintln!("stopped after {relayed_gone:?} through the recorder, {direct_gone:?} directly");
    assert!(
        relayed_gone <= direct_gone + Duration::from_secs(1),
        "{relayed_gone:?} through the recorder, {direct_gone:?} directly"
    );
    rec.stop().await;
    let records = read_capture(&cap);
    assert_eq!(
        command_with(&records, relayed).outcome,
        Outcome::Dropped,
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
    let (_dir, cap, rec) = capturing(&["--shutdown-grace", "2s"]).await;
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

/// This process's resident memory, KiB (the recorder under test runs in it).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Connects to `addr` and reads the (relayed) server greeting.
async fn connect_and_read_greeting(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::AsyncReadExt;
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = [0u8; 4];
    sock.read_exact(&mut head).await.unwrap();
    let len = usize::from(head[0]) | usize::from(head[1]) << 8 | usize::from(head[2]) << 16;
    let mut greeting = vec![0u8; len];
    sock.read_exact(&mut greeting).await.unwrap();
    assert_eq!(greeting[0], 10, "a protocol 10 greeting");
    sock
}

/// An unauthenticated client announcing a 100 MiB handshake response is cut at its
/// first header: the recorder does not buffer what it has no reason to accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_handshake_is_refused_without_buffering_it() {
    use tokio::io::AsyncWriteExt;
    let server = MariaDb::shared().unwrap();
    let rec = start(&server.addr().to_string(), None, &[]).await;
    // 100 MiB as the protocol splits it: 16 MiB - 1 pieces, each with its header.
    let piece = vec![0x41u8; 0xff_ffff];
    let before = rss_kib(); // with `piece` in it
    let mut sock = connect_and_read_greeting(rec.addr).await;
    let started = Instant::now();
    let mut sent = 0usize;
    let mut seq = 1u8;
    let refused = loop {
        if sent >= 100 << 20 {
            break false;
        }
        let write = async {
            sock.write_all(&[0xff, 0xff, 0xff, seq]).await?;
            sock.write_all(&piece).await
        };
        match tokio::time::timeout(Duration::from_secs(10), write).await {
            Ok(Ok(())) => sent += piece.len(),
            Ok(Err(_)) => break true,
            Err(_) => panic!("the recorder neither read nor closed"),
        }
        seq = seq.wrapping_add(1);
    };
    let grown = rss_kib().saturating_sub(before);
    assert!(refused, "the recorder took all {sent} bytes");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(grown < 8 * 1024, "RSS grew by {grown} KiB");
    rec.stop().await;
}

/// A client that connects and never logs in is closed after --handshake-timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_logs_in_is_closed_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;
    let server = MariaDb::shared().unwrap();
    let rec = start(
        &server.addr().to_string(),
        None,
        &["--handshake-timeout", "1s"],
    )
    .await;
    let mut sock = connect_and_read_greeting(rec.addr).await;
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
    let waited = started.elapsed();
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "still open after {waited:?}: {read:?}"
    );
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    rec.stop().await;
}

/// CPU seconds (user + system) process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0 // USER_HZ, 100 on Linux
}

/// Out of file descriptors, accept() fails at once for as long as connections wait in
/// the backlog: the recorder must pause rather than spin a core.
#[test]
fn out_of_file_descriptors_the_accept_loop_backs_off() {
    let server = MariaDb::shared().unwrap();
    let port = free_port();
    // The log to a file: a pipe nobody reads would stop a spinning loop by blocking it.
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("recorder.log");
    let log = std::fs::File::create(&log_path).unwrap();
    // A low descriptor limit that a handful of relayed connections exhausts.
    let mut child = std::process::Command::new("sh")
        .args(["-c", "ulimit -n 40 && exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_recorder"))
        .args(["--threads", "1", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &server.addr().to_string()])
        .stderr(log)
        .spawn()
        .unwrap();
    wait_listening(port, Duration::from_secs(5));
    let held: Vec<_> = (0..60)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_seconds(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_seconds(child.id()) - before;
    drop(held);
    child.kill().unwrap();
    child.wait().unwrap();
    let log = std::fs::read_to_string(&log_path).unwrap();
    let failures = log.matches("accept failed").count();
    assert!(failures > 0, "descriptors never ran out: {log}");
    assert!(
        failures < 100,
        "{failures} lines of accept failures: spinning"
    );
    assert!(used < 0.5, "{used} CPU seconds in 2 s: spinning");
}

/// A tmpfs of 64 KiB mounted for one test, unmounted when dropped.
struct TinyDisk(std::path::PathBuf);

impl TinyDisk {
    /// `None` where mounting is not allowed (not root, no CAP_SYS_ADMIN).
    fn mount(at: &std::path::Path) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(at)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| TinyDisk(at.to_path_buf()))
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// `n` statements, each selecting a different incompressible string of ~2 KB.
fn incompressible_script(n: usize) -> String {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut script = String::new();
    for _ in 0..n {
        script.push_str("SELECT '");
        for _ in 0..128 {
            // xorshift64: cheap bytes zstd cannot shrink much.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            script.push_str(&format!("{x:016x}"));
        }
        script.push_str("' AS x;\n");
    }
    script
}

/// The number before `word` in the summary line, e.g. "12 dropped".
fn count_before(summary: &str, word: &str) -> u64 {
    let at = summary
        .find(&format!(" {word}"))
        .unwrap_or_else(|| panic!("{summary}"));
    summary[..at]
        .rsplit([' ', '('])
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The disk fills mid-capture: every record that did not reach the file is counted as
/// dropped, in the summary line and in the recorder.capture.dropped statsd counter.
/// A real full disk (a 64 KiB tmpfs) where mounting is allowed.
#[test]
fn a_full_disk_counts_every_record_not_written_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = TinyDisk::mount(&dir.path().join("tiny")) else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root); see the EFBIG test");
        return;
    };
    capture_fails_midway(&disk.0.join("c.sqlcap"), None, "No space left on device");
}

/// The same with a file size limit (ulimit -f, the signal it raises ignored: writes then
/// fail with EFBIG), which needs no privilege.
#[test]
fn a_file_size_limit_counts_every_record_not_written_as_dropped() {
    let dir = tempfile::tempdir().unwrap();
    capture_fails_midway(&dir.path().join("c.sqlcap"), Some(128), "File too large");
}

/// Runs the recorder capturing to `cap` (under `ulimit -f file_limit` if given) while a
/// client sends more than fits, stops it with SIGTERM and checks the accounting; the
/// log must show `error`.
fn capture_fails_midway(cap: &std::path::Path, file_limit: Option<u32>, error: &str) {
    let server = MariaDb::shared().unwrap();
    let statsd = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    statsd
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let port = free_port();
    let limit = file_limit.map_or(String::new(), |n| {
        format!("trap '' XFSZ; ulimit -f {n} && ")
    });
    let child = std::process::Command::new("sh")
        .args(["-c", &format!("{limit}exec \"$0\" \"$@\"")])
        .arg(env!("CARGO_BIN_EXE_recorder"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", &server.addr().to_string()])
        .args(["--statsd", &statsd.local_addr().unwrap().to_string()])
        .arg("--out")
        .arg(cap)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port, Duration::from_secs(5));
    let mut client = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h127.0.0.1",
            "-uroot",
            "-P",
            &port.to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = client.stdin.take().unwrap();
    stdin
        .write_all(incompressible_script(500).as_bytes())
        .unwrap();
    drop(stdin);
    assert!(client.wait().unwrap().success());
    sigterm(&child);
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains(error), "{log}");
    let summary = log.lines().last().unwrap();
    let (commands, written, dropped) = (
        count_before(summary, "commands"),
        count_before(summary, "records"),
        count_before(summary, "dropped"),
    );
    // One connection: ConnOpen, its commands, ConnClose.
    assert!(commands >= 500, "{summary}");
    assert!(dropped > 0, "{summary}");
    assert_eq!(written + dropped, commands + 2, "{summary}");
    // `written` is what the file holds, and the file says it was cut short.
    let mut reader = captures::CaptureReader::open(cap).unwrap();
    let readable = reader.by_ref().filter_map(Result::ok).count() as u64;
    assert_eq!(readable, written, "{summary}");
    assert!(!reader.ended_cleanly());
    // statsd got the same count.
    let mut counted = 0;
    let mut buf = [0u8; 65536];
    while let Ok(n) = statsd.recv(&mut buf) {
        for line in String::from_utf8_lossy(&buf[..n]).lines() {
            if let Some(v) = line.strip_prefix("recorder.capture.dropped:") {
                counted += v.split('|').next().unwrap().parse::<u64>().unwrap();
            }
        }
    }
    assert_eq!(counted, dropped, "statsd vs {summary}");
}

/// Account statements reach the server as sent, but the capture keeps no password:
/// without --redact too.
#[tokio::test]
async fn passwords_in_account_statements_are_not_captured() {
    let (_dir, cap, rec) = capturing(&[]).await;
    let mut conn = mysql_async::Conn::from_url(url(rec.addr, "mysql"))
        .await
        .unwrap();
    for sql in [
        "DROP USER IF EXISTS 'sec_u'@'%'",
        "CREATE USER 'sec_u'@'%' IDENTIFIED BY 'Secret-One-1'",
        "ALTER USER 'sec_u'@'%' IDENTIFIED BY 'Secret-Two-2'",
        "SET PASSWORD FOR 'sec_u'@'%' = PASSWORD('Secret-Three-3')",
        "GRANT SELECT ON *.* TO 'sec_u'@'%' IDENTIFIED BY 'Secret-Four-4'",
    ] {
        conn.query_drop(sql).await.unwrap();
    }
    let hash: Option<String> = conn
        .exec_first("SELECT PASSWORD('Secret-Five-5')", ())
        .await
        .unwrap();
    assert!(hash.is_some_and(|h| h.starts_with('*')));
    // The server got the real password: it lets the user in with it.
    let login = format!(
        "mysql://sec_u:Secret-Four-4@{}/?prefer_socket=false",
        rec.addr
    );
    let mut user = mysql_async::Conn::from_url(login).await.unwrap();
    let me: Option<String> = user.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(me.as_deref(), Some("sec_u@%"));
    user.disconnect().await.unwrap();
    conn.query_drop("DROP USER 'sec_u'@'%'").await.unwrap();
    conn.disconnect().await.unwrap();
    rec.stop().await;

    let records = read_capture(&cap);
    let everything = format!("{records:?}");
    assert!(!everything.contains("Secret-"), "{everything}");
    let masked = records
        .iter()
        .filter_map(|r| match r {
            Record::Command(c) => c.cmd.sql_lossy().map(|s| s.into_owned()),
            _ => None,
        })
        .filter(|s| s.contains("'***'"))
        .count();
    assert_eq!(masked, 5, "{everything}");
}

/// Runs the recorder binary with `args` (after a free --listen) until it exits; its exit
/// success and stderr. For flags refused at startup: it never gets to relay.
fn recorder_fails_with(args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_recorder"));
    cmd.args(["--listen", "127.0.0.1:0"]).args(args);
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let until = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > until {
            child.kill().unwrap();
            panic!("{args:?} was accepted: the recorder is running");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success(), "{args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    stderr
}

#[test]
fn an_existing_capture_is_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("precious.sqlcap");
    std::fs::write(&cap, "hours of traffic").unwrap();
    let shown = cap.display().to_string();
    let err = recorder_fails_with(&["--upstream", "127.0.0.1:1", "--out", &shown]);
    assert!(err.contains(&shown) && err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&cap).unwrap(), "hours of traffic");
    // With --force it is replaced by a capture.
    let port = free_port();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_recorder"))
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--upstream", "127.0.0.1:1", "--force", "--out", &shown])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port, Duration::from_secs(10));
    sigterm(&child);
    assert!(child.wait_with_output().unwrap().status.success());
    let mut reader = captures::CaptureReader::open(&cap).unwrap();
    for r in reader.by_ref() {
        r.unwrap();
    }
    assert!(reader.ended_cleanly());
}

#[test]
fn a_capture_in_a_missing_directory_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("no/such/dir/c.sqlcap");
    let shown = cap.display().to_string();
    let err = recorder_fails_with(&["--upstream", "127.0.0.1:1", "--out", &shown]);
    assert!(
        err.contains(&shown) && err.contains("No such file"),
        "{err}"
    );
}

#[test]
fn bad_flag_values_are_refused_at_startup() {
    for (args, shown) in [
        (&["--upstream", "notanaddr"][..], "--upstream notanaddr"),
        (&["--upstream", "db:"][..], "--upstream db:"),
        (&["--upstream", ":3306"][..], "--upstream :3306"),
        (
            &["--upstream", "127.0.0.1:1", "--capture-queue", "0"][..],
            "--capture-queue 0",
        ),
        (
            &["--upstream", "127.0.0.1:1", "--max-connections", "0"][..],
            "--max-connections 0",
        ),
    ] {
        let err = recorder_fails_with(args);
        assert!(err.contains(shown), "{args:?}: {err}");
    }
}

/// `--max-capture-time`: capture stops on purpose when the limit is reached (a limit is
/// not a failure: nothing is counted as dropped, the capture ends cleanly) and the
/// traffic goes on through the recorder.
#[tokio::test]
async fn a_capture_limit_stops_capture_not_traffic() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("limit").unwrap();
    let (_dir, cap, rec) = capturing(&["--max-capture-time", "1s"]).await;
    let mut conn = mysql_async::Conn::from_url(url(rec.addr, &db))
        .await
        .unwrap();
    conn.query_drop("SELECT 'before the limit'").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after: Option<String> = conn.query_first("SELECT 'after the limit'").await.unwrap();
    assert_eq!(
        after.as_deref(),
        Some("after the limit"),
        "relaying goes on"
    );
    conn.disconnect().await.unwrap();
    let summary = rec.stop().await;
    assert!(summary.contains(", 0 dropped"), "{summary}");
    let records = read_capture(&cap);
    assert!(captured(&records, "SELECT 'before the limit'"));
    assert!(!captured(&records, "SELECT 'after the limit'"));
    let end = records.iter().find_map(|r| match r {
        Record::End(end) => Some(end.clone()),
        _ => None,
    });
    assert_eq!(
        end.map(|e| e.dropped),
        Some(0),
        "ends cleanly, nothing lost"
    );
}
