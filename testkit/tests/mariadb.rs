//! The harness itself, against real `mariadbd` processes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use mysql_async::prelude::*;
use testkit::{Error, MariaDb, MariaDbOptions};

#[tokio::test]
async fn a_private_server_answers_over_tcp_and_vanishes_on_drop() {
    let server = MariaDb::start().expect("start mariadbd");
    assert_ne!(server.port(), 3306, "never the system port");
    let dir = server.dir().to_path_buf();
    let pid: u32 = std::fs::read_to_string(dir.join("mariadbd.pid"))
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");

    let pool = mysql_async::Pool::new(server.url().as_str());
    let mut conn = pool.get_conn().await.expect("connect over TCP");
    let (datadir, port): (String, u16) = conn
        .query_first("SELECT @@datadir, @@port")
        .await
        .expect("query")
        .expect("one row");
    assert!(
        datadir.starts_with(dir.to_str().unwrap()),
        "{datadir} is private"
    );
    assert_eq!(port, server.port());
    drop(conn);
    pool.disconnect().await.expect("disconnect");

    drop(server);
    assert!(!dir.exists(), "directory removed on drop");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "server process is gone"
    );
}

#[tokio::test]
async fn shared_server_hands_out_separate_databases() {
    let server = MariaDb::shared().expect("shared server");
    assert_eq!(
        server.port(),
        MariaDb::shared().unwrap().port(),
        "one per binary"
    );
    let a = server.fresh_database("t").unwrap();
    let b = server.fresh_database("t").unwrap();
    assert_ne!(a, b);

    let pool = mysql_async::Pool::new(server.url_for(&a).as_str());
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE TABLE x (id INT PRIMARY KEY)")
        .await
        .unwrap();
    let current: Option<String> = conn.query_first("SELECT DATABASE()").await.unwrap();
    assert_eq!(current.as_deref(), Some(a.as_str()));
    drop(conn);
    pool.disconnect().await.unwrap();
    assert_eq!(server.sql(&format!("SHOW TABLES FROM `{b}`")).unwrap(), "");
}

#[tokio::test]
async fn created_users_authenticate_with_a_password() {
    let server = MariaDb::shared().unwrap();
    server.create_user("shopper", "s3cret").unwrap();
    let url = format!("mysql://shopper:s3cret@127.0.0.1:{}", server.port());
    let pool = mysql_async::Pool::new(url.as_str());
    let mut conn = pool.get_conn().await.unwrap();
    let user: Option<String> = conn.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(user.as_deref(), Some("shopper@%"));
    drop(conn);
    pool.disconnect().await.unwrap();

    let wrong = format!("mysql://shopper:nope@127.0.0.1:{}", server.port());
    let err = mysql_async::Conn::new(mysql_async::Opts::from_url(&wrong).unwrap())
        .await
        .expect_err("wrong password is refused");
    assert!(err.to_string().contains("Access denied"), "{err}");
}

#[test]
fn missing_mariadbd_says_how_to_install_it() {
    let options = MariaDbOptions {
        mariadbd: Some("/nonexistent/mariadbd".into()),
        ..Default::default()
    };
    let err = MariaDb::start_with(options).expect_err("cannot start");
    assert!(matches!(err, Error::Missing { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("apt-get install mariadb-server"),
        "{message}"
    );
}

#[test]
fn extra_config_and_arguments_reach_the_server() {
    let mut options = MariaDbOptions::default().with_binlog(7);
    options.args.push("--max-connections=123".into());
    let server = MariaDb::start_with(options).unwrap();
    let out = server
        .sql("SELECT @@server_id, @@log_bin, @@max_connections")
        .unwrap();
    assert_eq!(out.trim(), "7\t1\t123");
}

#[test]
fn the_binary_prints_port_and_socket_and_stops_the_server_on_sigterm() {
    use std::io::BufRead;
    let parent = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_testkit-mariadb"))
        .arg("--dir")
        .arg(parent.path())
        .args(["--", "--max-connections=77"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let (port, socket) = line.trim_end().split_once(' ').expect("PORT SOCKET");
    let port: u16 = port.parse().unwrap();
    let dir = std::path::Path::new(socket).parent().unwrap().to_path_buf();
    assert!(dir.starts_with(parent.path()), "{socket} under --dir");
    assert!(std::path::Path::new(socket).exists(), "{socket}");
    let client = testkit::find_program("mariadb").unwrap();
    let out = std::process::Command::new(client)
        .args(["--no-defaults", "-h127.0.0.1", "-uroot", "-N", "-e"])
        .arg("SELECT @@max_connections")
        .arg(format!("-P{port}"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "77", "{out:?}");

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success(), "exit 0 on SIGTERM");
    assert!(!dir.exists(), "directory removed");
}

#[test]
fn directories_of_dead_processes_are_cleaned_up() {
    let base = tempfile::tempdir().unwrap();
    // pid 0x7fff_fff0 cannot exist (pid_max is at most 2^22).
    let stale = base.path().join("2147483632-0-1234");
    let ours = base.path().join(format!("{}-0-1234", std::process::id()));
    std::fs::create_dir_all(stale.join("data")).unwrap();
    let foreign = base.path().join("2147483632-report");
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&foreign).unwrap();
    testkit::cleanup_stale(base.path());
    assert!(!stale.exists());
    assert!(ours.exists());
    assert!(
        foreign.exists(),
        "only names of our exact shape are touched"
    );
}
