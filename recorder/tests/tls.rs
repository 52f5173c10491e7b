//! TLS through the recorder against a real MariaDB that has TLS too: terminated toward
//! clients (the capture still reads plaintext), optional toward the upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{captured, commands, mariadb_cli, read_capture, start};
use mysql_async::prelude::*;
use mysql_async::{Opts, OptsBuilder, SslOpts};
use testkit::{MariaDb, MariaDbOptions};

/// One self-signed certificate for 127.0.0.1/localhost, used by the recorder and by the
/// private MariaDB alike, and the server, started with it.
struct Env {
    dir: PathBuf,
    server: MariaDb,
}

impl Env {
    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }
    fn upstream(&self) -> String {
        self.server.addr().to_string()
    }
    /// Recorder flags that terminate clients' TLS with the test certificate.
    fn tls_flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert().display().to_string(),
            "--tls-key".into(),
            self.key().display().to_string(),
        ]
    }
}

fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        // Like the shared server, this lives as long as the test process, so it cannot be
        // a TempDir (never dropped); one directory per process, those of dead ones removed.
        let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("recorder-tls");
        for entry in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !Path::new("/proc").join(&pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&dir).unwrap();
        let generated =
            rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
                .unwrap();
        std::fs::write(dir.join("cert.pem"), generated.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem()).unwrap();
        let server = MariaDb::start_with(
            MariaDbOptions::default()
                .config(format!("ssl-cert={}", dir.join("cert.pem").display()))
                .config(format!("ssl-key={}", dir.join("key.pem").display())),
        )
        .unwrap();
        server
            .create_user("tlsuser", "tls-pass-w0rd")
            .expect("a user with a password");
        Env { dir, server }
    })
}

fn args(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// The `Ssl_cipher` the upstream reports for this very session ("" when plaintext).
fn ssl_cipher(cli_output: &str) -> String {
    cli_output
        .lines()
        .find_map(|l| l.strip_prefix("Ssl_cipher\t"))
        .unwrap_or_else(|| panic!("no Ssl_cipher row in {cli_output}"))
        .to_string()
}

/// The `Ssl_cipher` the upstream reports for a mysql_async session ("" when plaintext).
async fn upstream_cipher(conn: &mut mysql_async::Conn) -> String {
    let row: Option<(String, String)> = conn
        .query_first("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        .await
        .unwrap();
    row.unwrap().1
}

/// The mariadb client's `status` line about the client↔recorder hop.
fn client_cipher(cli_output: &str) -> Option<&str> {
    cli_output
        .lines()
        .find_map(|l| l.trim().strip_prefix("SSL:"))
        .map(str::trim)
        .filter(|s| s.starts_with("Cipher in use"))
}

fn tls_client_opts(addr: std::net::SocketAddr, cert: &Path, user: &str, pass: &str) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(addr.port())
        .user(Some(user))
        .pass(Some(pass))
        .prefer_socket(false)
        .ssl_opts(Some(
            SslOpts::default()
                .with_root_certs(vec![cert.to_path_buf().into()])
                .with_disable_built_in_roots(true),
        ))
        .into()
}

#[tokio::test]
async fn mariadb_cli_over_tls_to_the_recorder_is_captured_in_plaintext() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.sqlcap");
    let flags = env.tls_flags();
    let rec = start(&env.upstream(), Some(&cap), &args(&flags)).await;
    let port = rec.addr.port();
    let ca = format!("--ssl-ca={}", env.cert().display());
    // --ssl-verify-server-cert: the client insists on TLS and checks our certificate.
    for (user, pass) in [("-uroot", "--password="), ("-utlsuser", "-ptls-pass-w0rd")] {
        let out = mariadb_cli(
            port,
            &[user, pass, &ca, "--ssl-verify-server-cert"],
            "status; SELECT 'over tls' AS s; SHOW SESSION STATUS LIKE 'Ssl_cipher'",
        )
        .await;
        assert!(client_cipher(&out).is_some(), "client hop not TLS: {out}");
        assert!(out.contains("over tls"), "{out}");
        // The recorder talks plaintext upstream unless told otherwise.
        assert_eq!(ssl_cipher(&out), "", "{out}");
    }
    rec.stop().await;
    let records = read_capture(&cap);
    assert!(captured(&records, "SELECT 'over tls' AS s"), "{records:?}");
    let opens = records
        .iter()
        .filter(|r| matches!(r, captures::Record::ConnOpen(_)))
        .count();
    assert_eq!(opens, 2);
}

#[tokio::test]
async fn mysql_async_over_tls_with_a_password_and_a_big_value() {
    let env = env();
    let db = env.server.fresh_database("tls").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.sqlcap");
    let flags = env.tls_flags();
    let rec = start(&env.upstream(), Some(&cap), &args(&flags)).await;

    let mut conn = mysql_async::Conn::new(tls_client_opts(
        rec.addr,
        &env.cert(),
        "tlsuser",
        "tls-pass-w0rd",
    ))
    .await
    .unwrap();
    conn.query_drop(format!("USE `{db}`")).await.unwrap();
    conn.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v LONGBLOB)")
        .await
        .unwrap();
    // Bigger than one packet (16 MiB) and than any TLS record: the relay must reassemble.
    let big: Vec<u8> = (0..18 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    conn.exec_drop("INSERT INTO t VALUES (?, ?)", (1, big.clone()))
        .await
        .unwrap();
    let back: Option<Vec<u8>> = conn
        .query_first("SELECT v FROM t WHERE id = 1")
        .await
        .unwrap();
    assert!(
        back.unwrap() == big,
        "the 18 MiB value survives TLS + relay"
    );
    assert_eq!(
        upstream_cipher(&mut conn).await,
        "",
        "upstream hop is plaintext by default"
    );
    conn.disconnect().await.unwrap();

    // A client that does not ask for TLS is still welcome at a TLS-terminating recorder.
    let mut plain = mysql_async::Conn::new(
        Opts::from_url(&format!(
            "mysql://tlsuser:tls-pass-w0rd@{}/{db}?prefer_socket=false",
            rec.addr
        ))
        .unwrap(),
    )
    .await
    .unwrap();
    let one: Option<i64> = plain.query_first("SELECT 1 + 0").await.unwrap();
    assert_eq!(one, Some(1));
    plain.disconnect().await.unwrap();

    rec.stop().await;
    let records = read_capture(&cap);
    assert!(captured(&records, "SELECT v FROM t WHERE id = 1"));
    assert!(captured(&records, "SELECT 1 + 0"));
    // Never the password, whichever way the client came in.
    assert!(!format!("{records:?}").contains("tls-pass-w0rd"));
    assert!(commands(&records).len() >= 6);
}

#[tokio::test]
async fn upstream_tls_really_encrypts_the_upstream_hop() {
    let env = env();
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.sqlcap");
    // Plain client, TLS upstream, verified against the test CA (the certificate names
    // 127.0.0.1, the host in --upstream).
    let cert = env.cert().display().to_string();
    let rec = start(
        &env.upstream(),
        Some(&cap),
        &["--upstream-tls", "--upstream-tls-ca", &cert],
    )
    .await;
    for user in ["root", "tlsuser:tls-pass-w0rd"] {
        let mut conn = mysql_async::Conn::new(
            Opts::from_url(&format!("mysql://{user}@{}/?prefer_socket=false", rec.addr)).unwrap(),
        )
        .await
        .unwrap();
        assert_ne!(
            upstream_cipher(&mut conn).await,
            "",
            "{user}: upstream hop must be TLS"
        );
        conn.disconnect().await.unwrap();
    }
    // The mariadb client, told not to use TLS, through the same recorder.
    let out = mariadb_cli(
        rec.addr.port(),
        &["-uroot", "--skip-ssl"],
        "SHOW SESSION STATUS LIKE 'Ssl_cipher'",
    )
    .await;
    assert_ne!(ssl_cipher(&out), "", "{out}");
    rec.stop().await;
    assert!(captured(
        &read_capture(&cap),
        "SHOW SESSION STATUS LIKE 'Ssl_cipher'"
    ));

    // TLS on both hops; --upstream-tls-insecure accepts the self-signed certificate.
    let mut flags = env.tls_flags();
    flags.extend(["--upstream-tls".into(), "--upstream-tls-insecure".into()]);
    let rec = start(&env.upstream(), None, &args(&flags)).await;
    let ca = format!("--ssl-ca={}", env.cert().display());
    for (user, pass) in [("-uroot", "--password="), ("-utlsuser", "-ptls-pass-w0rd")] {
        let out = mariadb_cli(
            rec.addr.port(),
            &[user, pass, &ca, "--ssl-verify-server-cert"],
            "status; SHOW SESSION STATUS LIKE 'Ssl_cipher'",
        )
        .await;
        assert!(client_cipher(&out).is_some(), "{out}");
        assert_ne!(ssl_cipher(&out), "", "{out}");
    }
    let mut conn = mysql_async::Conn::new(tls_client_opts(rec.addr, &env.cert(), "root", ""))
        .await
        .unwrap();
    assert_ne!(upstream_cipher(&mut conn).await, "");
    conn.disconnect().await.unwrap();
    rec.stop().await;
}

#[tokio::test]
async fn an_upstream_certificate_that_does_not_verify_is_refused_with_a_message() {
    let env = env();
    // A CA that did not sign the server's certificate.
    let dir = tempfile::tempdir().unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let ca = dir.path().join("other.pem");
    std::fs::write(&ca, other.cert.pem()).unwrap();
    let ca = ca.display().to_string();
    let rec = start(
        &env.upstream(),
        None,
        &["--upstream-tls", "--upstream-tls-ca", &ca],
    )
    .await;
    let err = mysql_async::Conn::new(
        Opts::from_url(&format!("mysql://root@{}/?prefer_socket=false", rec.addr)).unwrap(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("TLS with the server"), "{err:?}");
    rec.stop().await;
}

#[test]
fn upstream_tls_without_a_trust_decision_is_a_startup_error() {
    use clap::Parser;
    let config = recorder::config::Config::parse_from([
        "recorder",
        "--upstream",
        "127.0.0.1:1",
        "--upstream-tls",
    ]);
    let err = recorder::tls::Tls::from_config(&config).unwrap_err();
    assert!(err.to_string().contains("--upstream-tls-insecure"), "{err}");
    // A certificate without its key is refused by the command line itself.
    assert!(
        recorder::config::Config::try_parse_from([
            "recorder",
            "--upstream",
            "x:1",
            "--tls-cert",
            "c.pem"
        ])
        .is_err()
    );
}
