//! Python's two MySQL drivers through the recorder against a real MariaDB: PyMySQL (pure
//! Python) and mysqlclient (MariaDB Connector/C). The checks themselves are in
//! python_clients.py; this side runs it per driver, then reads the capture.
//! The drivers live in a virtualenv made by scripts/install-deps.sh.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::PathBuf;

use captures::{CmdKind, Outcome, Record};
use common::{capturing, commands, read_capture};
use testkit::MariaDb;

/// `$SQLREPLAY_PYTHON`, else the interpreter of the virtualenv install-deps.sh makes.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SQLREPLAY_PYTHON") {
        return p.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    let python = cache.join("sqlreplay/pyclients/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/install-deps.sh (it installs PyMySQL and mysqlclient)",
        python.display()
    );
    python
}

async fn run_driver(driver: &str) {
    let server = MariaDb::shared().unwrap();
    let db = server.fresh_database("py").unwrap();
    let (_dir, cap, rec) = capturing(&[]).await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python_clients.py");
    // Async: the recorder runs on this same runtime.
    let out = tokio::process::Command::new(python())
        .arg(&script)
        .args([driver, "127.0.0.1", &rec.addr.port().to_string(), &db])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{driver}: {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = rec.stop().await;
    assert!(summary.contains(", 0 dropped"), "{summary}");

    let records = read_capture(&cap);
    let cmds = commands(&records);
    let last = stdout.lines().last().unwrap();
    let mut fields = last.split('\t');
    assert_eq!(fields.next(), Some(format!("ok {driver}").as_str()));
    let (ok_sql, err_sql) = (fields.next().unwrap(), fields.next().unwrap());
    assert!(
        cmds.iter().any(|(c, o)| c.sql() == Some(ok_sql.as_bytes())
            && matches!(o, Outcome::Rows { count: 1, .. })),
        "{driver}: {ok_sql} with one row not in the capture"
    );
    assert!(
        cmds.iter().any(|(c, o)| c.sql() == Some(err_sql.as_bytes())
            && matches!(o, Outcome::Err { code: 1146, .. })),
        "{driver}: {err_sql} with error 1146 not in the capture"
    );
    // The 20 MiB value went inline in one COM_QUERY (both drivers interpolate).
    assert!(
        cmds.iter()
            .any(|(c, _)| c.sql().is_some_and(|s| s.len() > 20 << 20)),
        "{driver}: the 20 MiB INSERT is not in the capture"
    );
    assert!(cmds.iter().any(|(c, _)| c.kind() == CmdKind::Ping));
    assert_eq!(
        records
            .iter()
            .filter(|r| matches!(r, Record::ConnOpen(_)))
            .count(),
        1
    );
}

#[tokio::test]
async fn pymysql_through_the_recorder() {
    run_driver("pymysql").await;
}

#[tokio::test]
async fn mysqlclient_through_the_recorder() {
    run_driver("mysqldb").await;
}
