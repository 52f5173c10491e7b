//! The recorder between real clients and a real MariaDB: transparent, and captured.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::PathBuf;

use captures::{CaptureReader, Cmd, CmdKind, Command, Outcome, Record, Value};
use common::{
    assert_server_error, capturing, commands, conn_opens, free_port, mariadb_cli, read_capture,
    start, url,
};
use mysql_async::prelude::*;
use mysql_async::{Opts, OptsBuilder};
use testkit::MariaDb;

#[tokio::test]
async fn mysql_async_traffic_passes_unchanged_and_is_captured() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("relay").unwrap();
    let (dir, cap, rec) = capturing(&[]).await;

    let infile = dir.path().join("rows.csv");
    std::fs::write(&infile, "1,a\n2,b\n3,c\n").unwrap();
    let opts = OptsBuilder::from_opts(Opts::from_url(&url(rec.addr, &db)).unwrap())
        .local_infile_handler(Some(mysql_async::WhiteListFsHandler::new(
            std::slice::from_ref(&infile),
        )));
    let mut conn = mysql_async::Conn::new(opts).await.unwrap();

    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v LONGBLOB, s VARCHAR(20))")
        .await
        .unwrap();
    // Text protocol, multi-statement, stored procedure with several results.
    conn.query_drop("INSERT INTO t (id, s) VALUES (1, 'x'); INSERT INTO t (id, s) VALUES (2, 'y')")
        .await
        .unwrap();
    conn.query_drop("CREATE PROCEDURE p() BEGIN SELECT id FROM t; SELECT COUNT(*) FROM t; END")
        .await
        .unwrap();
    let mut result = conn.query_iter("CALL p()").await.unwrap();
    let first: Vec<i32> = result.collect().await.unwrap();
    let second: Vec<i64> = result.collect().await.unwrap();
    drop(result);
    assert_eq!((first, second), (vec![1, 2], vec![2]));
    // Prepared statements with typed values, NULL, unicode, and a 20 MiB blob.
    let big: Vec<u8> = (0..20 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let stmt = conn
        .prep("INSERT INTO t (id, v, s) VALUES (?, ?, ?)")
        .await
        .unwrap();
    conn.exec_drop(&stmt, (3, big.clone(), "ünï ✓"))
        .await
        .unwrap();
    conn.exec_drop(&stmt, (4, None::<Vec<u8>>, None::<String>))
        .await
        .unwrap();
    let back: Option<(Vec<u8>, String)> = conn
        .exec_first("SELECT v, s FROM t WHERE id = ?", (3,))
        .await
        .unwrap();
    let (v, s) = back.unwrap();
    assert!(v == big, "20 MiB value survives the relay");
    assert_eq!(s, "ünï ✓");
    conn.close(stmt).await.unwrap();
    // Errors come back as errors.
    let err = conn.query_drop("SELECT * FROM missing").await.unwrap_err();
    assert!(err.to_string().contains("1146"), "{err}");
    // LOAD DATA LOCAL INFILE.
    conn.query_drop(
        format!(
            "LOAD DATA LOCAL INFILE '{}' INTO TABLE t FIELDS TERMINATED BY ',' (id, s)",
            infile.display()
        )
        .replace("(id, s)", "(@id, s) SET id = @id + 100"),
    )
    .await
    .unwrap();
    let n: Option<i64> = conn.query_first("SELECT COUNT(*) FROM t").await.unwrap();
    assert_eq!(n, Some(7));
    // Session commands.
    conn.ping().await.unwrap();
    conn.reset().await.unwrap();
    conn.change_user(mysql_async::ChangeUserOpts::default().with_db_name(Some(db.clone())))
        .await
        .unwrap();
    conn.query_drop(format!("USE `{db}`")).await.unwrap();
    conn.disconnect().await.unwrap();

    let summary = rec.stop().await;
    assert!(summary.contains("0 dropped"), "{summary}");
    let records = read_capture(&cap);
    let Record::ConnOpen(open) = &records[0] else {
        panic!("{:?}", records[0])
    };
    assert_eq!(open.user, "root");
    assert_eq!(open.db.as_deref(), Some(db.as_str()));
    // A clean stop ends the capture with its End record, after the last ConnClose.
    let [.., Record::ConnClose(_), Record::End(end)] = records.as_slice() else {
        panic!("{:?}", &records[records.len() - 2..])
    };
    assert_eq!(end.dropped, 0);
    assert_eq!(end.commands, commands(&records).len() as u64);
    let cmds = commands(&records);
    let kinds: Vec<CmdKind> = cmds.iter().map(|(c, _)| c.kind()).collect();
    for k in [
        CmdKind::Query,
        CmdKind::Prepare,
        CmdKind::Execute,
        CmdKind::StmtClose,
        CmdKind::Ping,
        CmdKind::ResetConnection,
        CmdKind::ChangeUser,
        CmdKind::Quit,
    ] {
        assert!(kinds.contains(&k), "{k:?} missing from {kinds:?}");
    }
    // Multi-statement: one command, affected rows summed.
    let multi = cmds
        .iter()
        .find(|(c, _)| {
            c.sql()
                .is_some_and(|s| s.starts_with(b"INSERT INTO t (id, s) VALUES (1"))
        })
        .unwrap();
    assert!(
        matches!(
            multi.1,
            Outcome::Ok {
                affected_rows: 2,
                ..
            }
        ),
        "{:?}",
        multi.1
    );
    let call = cmds
        .iter()
        .find(|(c, _)| c.sql() == Some(b"CALL p()"))
        .unwrap();
    assert!(
        matches!(call.1, Outcome::Rows { count: 3, .. }),
        "{:?}",
        call.1
    );
    let missing = cmds
        .iter()
        .find(|(c, _)| c.sql() == Some(b"SELECT * FROM missing"))
        .unwrap();
    assert!(matches!(&missing.1, Outcome::Err { code: 1146, sqlstate, .. } if sqlstate == "42S02"));
    let load = cmds
        .iter()
        .find(|(c, _)| c.sql().is_some_and(|s| s.starts_with(b"LOAD DATA")))
        .unwrap();
    assert!(
        matches!(
            load.1,
            Outcome::Ok {
                affected_rows: 3,
                ..
            }
        ),
        "{:?}",
        load.1
    );
    // The prepared INSERT: its id mapped, its values typed.
    let prepare = cmds
        .iter()
        .find_map(|(c, _)| match c {
            Cmd::Prepare {
                sql,
                stmt_id,
                params,
                ..
            } if sql.starts_with(b"INSERT") => Some((*stmt_id, *params)),
            _ => None,
        })
        .unwrap();
    assert_eq!(prepare.1, 3);
    let execs: Vec<&Vec<captures::Param>> = cmds
        .iter()
        .filter_map(|(c, _)| match c {
            Cmd::Execute {
                stmt_id, params, ..
            } if *stmt_id == prepare.0 => Some(params),
            _ => None,
        })
        .collect();
    assert_eq!(execs.len(), 2);
    assert_eq!(execs[0][0].value, Value::Int(3));
    // mysql_async streams the blob with SEND_LONG_DATA before the EXECUTE: the capture
    // keeps those pieces (the replayer reassembles them), not a copy in the EXECUTE.
    // (It decides per statement, so the short string may travel that way too.)
    let long = |param: u16| -> Vec<u8> {
        cmds.iter()
            .filter_map(|(c, _)| match c {
                Cmd::SendLongData {
                    stmt_id,
                    param: p,
                    data,
                } if *stmt_id == prepare.0 && *p == param => Some(data.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    };
    assert!(long(1) == big, "the blob's pieces add up to it");
    let text = match &execs[0][2].value {
        Value::Bytes(b) if !b.is_empty() => b.clone(),
        _ => long(2),
    };
    assert_eq!(text, "ünï ✓".as_bytes());
    assert_eq!(execs[1][1].value, Value::Null);
    let select = cmds
        .iter()
        .find(|(c, _)| matches!(c, Cmd::Execute { params, .. } if params.len() == 1))
        .unwrap();
    assert!(matches!(select.1, Outcome::Rows { count: 1, .. }));
}

/// Runs `sql` with the mariadb command-line client through a capturing recorder: what
/// the client printed, and the commands the capture holds.
async fn cli_through_recorder(args: &[&str], sql: &str) -> (String, Vec<(Cmd, Outcome)>) {
    let (stdout, records) = cli_capture(args, sql).await;
    (stdout, commands(&records))
}

/// [`cli_through_recorder`], keeping the whole capture.
async fn cli_capture(args: &[&str], sql: &str) -> (String, Vec<Record>) {
    let (_dir, cap, rec) = capturing(&[]).await;
    let stdout = mariadb_cli(rec.addr.port(), args, sql).await;
    rec.stop().await;
    (stdout, read_capture(&cap))
}

/// Asserts that the capture holds `sql` with an outcome `expected` accepts.
fn assert_captured(cmds: &[(Cmd, Outcome)], sql: &[u8], expected: impl Fn(&Outcome) -> bool) {
    assert!(
        cmds.iter()
            .any(|(c, o)| c.sql() == Some(sql) && expected(o)),
        "{} not captured as expected: {cmds:?}",
        String::from_utf8_lossy(sql)
    );
}

#[tokio::test]
async fn the_mariadb_command_line_client_works_through_it() {
    let (stdout, cmds) = cli_through_recorder(
        &["-uroot"],
        "SELECT 1 AS one; SELECT 'two'; SHOW DATABASES LIKE 'mysql'",
    )
    .await;
    assert!(
        stdout.contains("one\n1\n") && stdout.contains("two") && stdout.contains("mysql"),
        "{stdout}"
    );
    assert_captured(&cmds, b"SELECT 1 AS one", |o| {
        matches!(o, Outcome::Rows { count: 1, .. })
    });
}

/// The mariadb client (and mysqltest) ask for progress reports (MARIADB_CLIENT_PROGRESS),
/// so an ALTER TABLE that copies rows gets ERR packets with code 0xFFFF before its OK.
/// They end nothing; the recorder once took them for a malformed ERR and dropped the
/// connection ("Lost connection to server during query"). Found by
/// recorder/transparency.sh (main.ps_1general).
#[tokio::test]
async fn mariadb_progress_reports_pass_through() {
    let db = MariaDb::shared()
        .unwrap()
        .fresh_database("progress")
        .unwrap();
    let (stdout, cmds) = cli_through_recorder(
        &["-uroot", "--progress-reports", &db],
        "CREATE TABLE pr (a INT) ENGINE=Aria; INSERT INTO pr SELECT seq FROM seq_1_to_1000; \
         ALTER TABLE pr ADD INDEX (a); SELECT COUNT(*) AS n FROM pr",
    )
    .await;
    assert!(stdout.contains("n\n1000\n"), "{stdout}");
    assert_captured(&cmds, b"ALTER TABLE pr ADD INDEX (a)", |o| {
        matches!(o, Outcome::Ok { .. })
    });
}

/// A procedure that OPENs a cursor and SELECTs: MariaDB sets SERVER_STATUS_CURSOR_EXISTS
/// in the EOF after the SELECT's column definitions (the procedure's cursor leaking into
/// the status), yet the rows follow. Only a COM_STMT_EXECUTE that asked for a cursor gets
/// its rows later; the recorder once took this EOF for the end of the result, then read
/// the rows as a new one and dropped the connection. Clients without CLIENT_DEPRECATE_EOF
/// (the mariadb client, mysqltest) see that EOF. Found by recorder/transparency.sh
/// (main.sp-cursor).
#[tokio::test]
async fn a_procedure_with_an_open_cursor_returns_its_rows() {
    let db = MariaDb::shared()
        .unwrap()
        .fresh_database("spcursor")
        .unwrap();
    let (stdout, cmds) = cli_through_recorder(
        &["-uroot", &db],
        "CREATE TABLE t1 (a INT); INSERT INTO t1 VALUES (1), (2);
         DELIMITER //
         CREATE PROCEDURE p1() BEGIN
           DECLARE done INT DEFAULT 0; DECLARE v INT;
           DECLARE c CURSOR FOR SELECT a FROM t1;
           DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = 1;
           OPEN c;
           l: LOOP FETCH c INTO v; IF done THEN LEAVE l; END IF; SELECT v * 10 AS v; END LOOP;
           CLOSE c;
         END //
         DELIMITER ;
         CALL p1(); SELECT 'after' AS next",
    )
    .await;
    assert!(
        stdout.contains("v\n10\n") && stdout.contains("v\n20\n") && stdout.contains("after"),
        "{stdout}"
    );
    assert_captured(&cmds, b"CALL p1()", |o| {
        matches!(o, Outcome::Rows { count: 2, .. })
    });
}

/// A transaction, then autocommit off: each statement with the (transaction,
/// autocommit) state its final OK/EOF reports. The transaction state after
/// `SET autocommit=0` and `SELECT 1` is left unchecked: MariaDB opens no transaction for
/// statements that touch no table (both report 0x0000), which is the server's business,
/// not the recorder's.
const STATUS_SCRIPT: [(&str, Option<bool>, bool); 7] = [
    ("BEGIN", Some(true), true),
    ("INSERT INTO st VALUES (1)", Some(true), true),
    ("SELECT id FROM st", Some(true), true),
    ("COMMIT", Some(false), true),
    ("SET autocommit=0", None, false),
    ("SELECT 1", None, false),
    ("COMMIT", Some(false), false),
];

/// The captured commands with SQL `sql`, in capture order.
fn commands_with_sql<'a>(records: &'a [Record], sql: &str) -> Vec<&'a Command> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Command(c) if c.cmd.sql() == Some(sql.as_bytes()) => Some(c),
            _ => None,
        })
        .collect()
}

/// Checks the captured statuses of [`STATUS_SCRIPT`] (`None` expected: not asserted).
fn assert_script_statuses(records: &[Record]) {
    let mut seen = std::collections::HashMap::<&str, usize>::new();
    for (sql, in_trans, autocommit) in STATUS_SCRIPT {
        let nth = seen.entry(sql).or_default();
        let c = commands_with_sql(records, sql)[*nth];
        *nth += 1;
        assert!(c.status.is_some(), "{sql}: no status in {c:?}");
        if in_trans.is_some() {
            assert_eq!(c.in_transaction(), in_trans, "{sql}: {c:?}");
        }
        assert_eq!(c.autocommit(), Some(autocommit), "{sql}: {c:?}");
    }
}

/// Capture format 2 keeps each response's final server status: transaction and
/// autocommit state, through text results (OK-as-EOF, mysql_async asks for
/// CLIENT_DEPRECATE_EOF), prepared statements, and errors.
#[tokio::test]
async fn server_status_flags_are_captured() {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("status").unwrap();
    let (_dir, cap, rec) = capturing(&[]).await;
    let mut conn = mysql_async::Conn::from_url(url(rec.addr, &db))
        .await
        .unwrap();
    conn.query_drop("CREATE TABLE st (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    for (sql, ..) in STATUS_SCRIPT {
        conn.query_drop(sql).await.unwrap();
    }
    conn.query_drop("SELECT * FROM st_missing")
        .await
        .unwrap_err();
    conn.query_drop("SET autocommit=1").await.unwrap();
    conn.query_drop("BEGIN").await.unwrap();
    let stmt = conn.prep("SELECT id FROM st WHERE id > ?").await.unwrap();
    let ids: Vec<i32> = conn.exec(&stmt, (0,)).await.unwrap();
    assert_eq!(ids, vec![1]);
    conn.query_drop("COMMIT").await.unwrap();
    // COM_CHANGE_USER ends an open transaction (rolled back) and answers an OK.
    conn.query_drop("BEGIN").await.unwrap();
    conn.change_user(mysql_async::ChangeUserOpts::default().with_db_name(Some(db.clone())))
        .await
        .unwrap();
    conn.disconnect().await.unwrap();
    rec.stop().await;

    let records = read_capture(&cap);
    assert_eq!(CaptureReader::open(&cap).unwrap().version(), 3);
    assert_script_statuses(&records);
    let failed = commands_with_sql(&records, "SELECT * FROM st_missing")[0];
    assert!(failed.outcome.is_err());
    assert_eq!((failed.status, failed.in_transaction()), (None, None));
    let prepare = commands_with_sql(&records, "SELECT id FROM st WHERE id > ?")[0];
    assert_eq!(prepare.status, None, "PREPARE_OK carries no status");
    let execute = records
        .iter()
        .find_map(|r| match r {
            Record::Command(c) if matches!(c.cmd, Cmd::Execute { .. }) => Some(c),
            _ => None,
        })
        .unwrap();
    assert!(matches!(execute.outcome, Outcome::Rows { count: 1, .. }));
    assert_eq!(execute.in_transaction(), Some(true), "{execute:?}");
    assert_eq!(execute.autocommit(), Some(true), "{execute:?}");
    let change_user = records
        .iter()
        .find_map(|r| match r {
            Record::Command(c) if matches!(c.cmd, Cmd::ChangeUser { .. }) => Some(c),
            _ => None,
        })
        .unwrap();
    assert_eq!(change_user.in_transaction(), Some(false), "{change_user:?}");
    assert_eq!(change_user.autocommit(), Some(true), "{change_user:?}");
}

/// The same statuses through classic EOF packets: the mariadb client does not ask for
/// CLIENT_DEPRECATE_EOF.
#[tokio::test]
async fn server_status_flags_are_captured_from_eof_packets() {
    let db = MariaDb::shared()
        .unwrap()
        .fresh_database("status_eof")
        .unwrap();
    let script: Vec<&str> = STATUS_SCRIPT.iter().map(|(sql, ..)| *sql).collect();
    let (_, records) = cli_capture(
        &["-uroot", &db],
        &format!(
            "CREATE TABLE st (id INT PRIMARY KEY) ENGINE=InnoDB; {};",
            script.join("; ")
        ),
    )
    .await;
    assert_script_statuses(&records);
}

#[tokio::test]
async fn an_unreachable_upstream_gets_a_mysql_error_not_a_reset() {
    let port = free_port();
    let upstream = format!("127.0.0.1:{port}");
    let rec = start(&upstream, None, &[]).await;
    let err =
        mysql_async::Conn::new(Opts::from_url(&format!("mysql://root@{}", rec.addr)).unwrap())
            .await
            .unwrap_err();
    // ER_UNKNOWN_ERROR: a server's code, not a client-side one (2003 made clients
    // report a malformed packet).
    assert!(
        matches!(&err, mysql_async::Error::Server(e)
            if e.code == 1105 && e.message.contains(&format!("cannot reach upstream {upstream}"))),
        "{err:?}"
    );
    // The mariadb client shows it as it shows a server refusing a connection.
    for (args, shown) in [
        (
            &["--skip-ssl"][..],
            "ERROR 1105 (HY000): recorder: cannot reach upstream",
        ),
        // It tried TLS first: it says so around the server's error.
        (&[][..], "1105 - recorder: cannot reach upstream"),
    ] {
        let out = tokio::process::Command::new("mariadb")
            .args(["--no-defaults", "-h127.0.0.1", "-uroot", "-P"])
            .arg(rec.addr.port().to_string())
            .args(args)
            .args(["-e", "SELECT 1"])
            .output()
            .await
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(shown) && stderr.contains(&upstream),
            "{args:?}: {stderr}"
        );
    }
    rec.stop().await;
}

#[tokio::test]
async fn a_full_capture_queue_drops_records_but_never_traffic() {
    let (_dir, cap, rec) = capturing(&["--capture-queue", "1"]).await;
    let pool = mysql_async::Pool::new(url(rec.addr, "mysql").as_str());
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = pool.get_conn().await.unwrap();
            for i in 0..300 {
                let v: Option<i64> = c.query_first(format!("SELECT {i}")).await.unwrap();
                assert_eq!(v, Some(i));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    pool.disconnect().await.unwrap();
    let summary = rec.stop().await;
    let dropped: u64 = summary
        .rsplit(", ")
        .next()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let records = read_capture(&cap);
    let captured = commands(&records).len() as u64;
    assert!(dropped > 0, "{summary}");
    // The End record tells a reader the capture is incomplete, and by how much.
    let Some(Record::End(end)) = records.last() else {
        panic!("no End record")
    };
    assert_eq!((end.dropped, end.commands), (dropped, captured));
    assert!(
        captured + dropped >= 2400,
        "{captured} + {dropped}: {summary}"
    );
}

#[test]
fn kill_9_leaves_a_readable_capture() {
    let server = MariaDb::shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap: PathBuf = dir.path().join("c.sqlcap");
    let port = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_recorder"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--upstream",
            &server.addr().to_string(),
            "--out",
        ])
        .arg(&cap)
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let out = std::process::Command::new("mariadb")
        .args([
            "--no-defaults",
            "-h127.0.0.1",
            "-P",
            &port.to_string(),
            "-uroot",
            "-e",
        ])
        .arg("SELECT 1; SELECT 2; SELECT 3")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Past the writer's flush interval, then no goodbye at all.
    std::thread::sleep(std::time::Duration::from_millis(400));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut reader = CaptureReader::open(&cap).unwrap();
    let records: Vec<Record> = reader.by_ref().filter_map(Result::ok).collect();
    // Readable, and known to be incomplete.
    assert!(!reader.ended_cleanly(), "{records:?}");
    assert!(
        records
            .iter()
            .any(|r| matches!(r, Record::Command(c) if c.cmd.sql() == Some(b"SELECT 3"))),
        "{records:?}"
    );
}

#[tokio::test]
async fn an_ed25519_login_switches_plugin_through_the_relay() {
    let server = MariaDb::shared().unwrap();
    // The plugin ships with mariadb-server; installing it twice is an error we ignore
    // (another test process may have done it).
    let _ = server.sql("INSTALL SONAME 'auth_ed25519'");
    server
        .sql(
            "CREATE USER IF NOT EXISTS 'edwards'@'%' IDENTIFIED VIA ed25519 \
             USING PASSWORD('curve-25519-pw')",
        )
        .unwrap();
    let (_dir, cap, rec) = capturing(&[]).await;

    // mysql_async starts with mysql_native_password; the server switches it to ed25519.
    let mut conn = mysql_async::Conn::new(
        Opts::from_url(&format!(
            "mysql://edwards:curve-25519-pw@{}/?prefer_socket=false",
            rec.addr
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let user: Option<String> = conn.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(user.as_deref(), Some("edwards@%"));
    conn.disconnect().await.unwrap();
    let out = mariadb_cli(
        rec.addr.port(),
        &["-uedwards", "-pcurve-25519-pw"],
        "SELECT 'ed25519 cli' AS s",
    )
    .await;
    assert!(out.contains("ed25519 cli"), "{out}");
    // A wrong password is the server's 1045, relayed.
    let err = mysql_async::Conn::new(
        Opts::from_url(&format!(
            "mysql://edwards:wrong@{}/?prefer_socket=false",
            rec.addr
        ))
        .unwrap(),
    )
    .await
    .unwrap_err();
    assert_server_error(&err, 1045);
    rec.stop().await;

    let records = read_capture(&cap);
    let plugins: Vec<_> = conn_opens(&records)
        .iter()
        .map(|o| o.auth_plugin.as_str())
        .collect();
    assert_eq!(plugins, ["client_ed25519", "client_ed25519"], "{records:?}");
    assert!(!format!("{records:?}").contains("curve-25519-pw"));
}

/// A COM_STMT_EXECUTE the recorder cannot decode (here: parameter values cut short) is
/// still the server's to answer. The recorder once dropped the connection when capture
/// was on (and relayed it when off); now it relays it and captures it raw. Found by
/// recorder/transparency.sh (mysql_client_test, with "unparseable COM_STMT_EXECUTE").
#[tokio::test]
async fn an_undecodable_execute_is_relayed_not_fatal() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_dir, cap, rec) = capturing(&[]).await;
    let mut s = tokio::net::TcpStream::connect(rec.addr).await.unwrap();

    async fn read_packet(s: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut h = [0u8; 4];
        s.read_exact(&mut h).await.unwrap();
        let mut p = vec![0u8; usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16];
        s.read_exact(&mut p).await.unwrap();
        p
    }
    async fn send(s: &mut tokio::net::TcpStream, seq: u8, p: &[u8]) {
        let mut out = (p.len() as u32).to_le_bytes()[..3].to_vec();
        out.push(seq);
        out.extend_from_slice(p);
        s.write_all(&out).await.unwrap();
    }
    // Reads a whole response (no CLIENT_DEPRECATE_EOF): OK/ERR, or a result set up to
    // its second EOF. Returns its first packet.
    async fn response(s: &mut tokio::net::TcpStream) -> Vec<u8> {
        let first = read_packet(s).await;
        if first[0] != 0x00 && first[0] != 0xff {
            let mut eofs = 0;
            while eofs < 2 {
                let p = read_packet(s).await;
                eofs += usize::from(p[0] == 0xfe && p.len() < 9);
            }
        }
        first
    }

    read_packet(&mut s).await; // greeting
    // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | LONG_PASSWORD, root, no password.
    let caps: u32 = 0x200 | 0x8000 | 0x80000 | 0x1;
    let mut login = caps.to_le_bytes().to_vec();
    login.extend_from_slice(&(1u32 << 24).to_le_bytes());
    login.push(8);
    login.extend_from_slice(&[0; 23]);
    login.extend_from_slice(b"root\0\0mysql_native_password\0");
    send(&mut s, 1, &login).await;
    assert_eq!(read_packet(&mut s).await[0], 0x00, "login");

    let mut prepare = vec![0x16];
    prepare.extend_from_slice(b"SELECT ?");
    send(&mut s, 0, &prepare).await;
    let ok = read_packet(&mut s).await;
    assert_eq!(ok[0], 0x00, "prepare");
    let id = [ok[1], ok[2], ok[3], ok[4]];
    // The parameter's definition and EOF, the column's and EOF.
    for _ in 0..4 {
        read_packet(&mut s).await;
    }
    // EXECUTE: no cursor, iteration 1, null bitmap, new types bound (LONGLONG), and then
    // only 3 of the value's 8 bytes.
    let mut execute = vec![0x17];
    execute.extend_from_slice(&id);
    execute.extend_from_slice(&[0, 1, 0, 0, 0, 0, 1, 0x08, 0x00, 1, 2, 3]);
    send(&mut s, 0, &execute).await;
    // MariaDB: ERR "Incorrect arguments to mysqld_stmt_execute".
    let answer = response(&mut s).await;
    assert_eq!(answer[0], 0xff, "{answer:?}");
    // And the connection lives on.
    send(&mut s, 0, b"\x03SELECT 'still here'").await;
    let first = response(&mut s).await;
    assert_eq!(
        first,
        [1],
        "a one-column result set after the bad EXECUTE ({answer:?})"
    );
    send(&mut s, 0, &[0x01]).await; // COM_QUIT
    drop(s);
    rec.stop().await;
    let cmds = commands(&read_capture(&cap));
    assert!(
        cmds.iter()
            .any(|(c, _)| matches!(c, Cmd::Other { code: 0x17, .. })),
        "{cmds:?}"
    );
    assert!(
        cmds.iter()
            .any(|(c, _)| c.sql() == Some(b"SELECT 'still here'")),
        "{cmds:?}"
    );
}
