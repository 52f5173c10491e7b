//! caching_sha2_password (MySQL 8's default) through the recorder. MariaDB cannot
//! produce it, so the upstream here is a scripted server that speaks exactly the
//! connection phase MySQL 8 does — fast path, full path over plaintext (RSA key request)
//! and full path over TLS (cleartext password) — and checks the sequence ids and the
//! bytes it receives as strictly as a real server would. The same relay is tested against
//! a real MariaDB in relay.rs and tls.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::net::SocketAddr;

use captures::Outcome;
use common::{assert_server_error, commands, conn_opens, read_capture, start};
use mysql_async::prelude::*;
use mysql_async::{OptsBuilder, SslOpts};
use mysql_common::io::ParseBuf;
use mysql_common::packets::HandshakeResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &str = "sha2-secret";
const NONCE: [u8; 20] = *b"0123456789abcdefghij";

/// A throwaway RSA public key, as a MySQL 8 server sends it on request (the scripted
/// server cannot decrypt with it, it only checks the client encrypted to its size).
const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAvW85l8sXb6FKUbItIZJJ
Gf+JZjfD/UN6G/uRblrjvpkEGZSlOW8ojDadMd/qF7EEdLnyDxD25bz6OKOBlCto
ijHmFbPv94Z1/E07F1yb3SgHmdVmF7Cw0zK8PQZWS/Q8DVuXn71UvyXJB9DTdsSt
OhRCHOVjoHl9y2nTAzdAyZ2GsUzK92lFURA8WK9dI1fqc9PBsCJiXR0i8G5GYHLs
5lBUe/Y1P7BMAiYpBxoGCRyES6zXrPOYmygU448rGOXbxf7ZytPvrmcFqtyLCM+a
JoWKLO1MK5SFqn68jseUSpmaXsWywWRFMEGkLwOTidkJqITBuM8ttzhVthS+l51S
OwIDAQAB
-----END PUBLIC KEY-----
";

/// Capabilities of a MySQL 8.4 server (CLIENT_SSL included: the recorder must hide it
/// unless it terminates TLS itself).
const SERVER_CAPS: u32 = 0x0000_0001 // LONG_PASSWORD
    | 0x0000_0002 // FOUND_ROWS
    | 0x0000_0004 // LONG_FLAG
    | 0x0000_0008 // CONNECT_WITH_DB
    | 0x0000_0200 // PROTOCOL_41
    | 0x0000_0800 // SSL
    | 0x0000_2000 // TRANSACTIONS
    | 0x0000_8000 // SECURE_CONNECTION
    | 0x0001_0000 // MULTI_STATEMENTS
    | 0x0002_0000 // MULTI_RESULTS
    | 0x0004_0000 // PS_MULTI_RESULTS
    | 0x0008_0000 // PLUGIN_AUTH
    | 0x0010_0000 // CONNECT_ATTRS
    | 0x0020_0000 // PLUGIN_AUTH_LENENC_CLIENT_DATA
    | 0x0100_0000; // DEPRECATE_EOF

/// One MySQL packet on a plain socket, with the sequence id checked.
struct Wire {
    s: TcpStream,
    seq: u8,
}

impl Wire {
    async fn read(&mut self) -> Option<Vec<u8>> {
        let mut header = [0u8; 4];
        self.s.read_exact(&mut header).await.ok()?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
        assert_eq!(header[3], self.seq, "client packet out of sequence");
        let mut payload = vec![0u8; len];
        self.s.read_exact(&mut payload).await.ok()?;
        self.seq = self.seq.wrapping_add(1);
        Some(payload)
    }

    async fn write(&mut self, payload: &[u8]) {
        let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        packet.push(self.seq);
        packet.extend_from_slice(payload);
        self.s.write_all(&packet).await.unwrap();
        self.seq = self.seq.wrapping_add(1);
    }

    async fn ok(&mut self) {
        // affected rows 0, last insert id 0, status AUTOCOMMIT, no warnings.
        self.write(&[0x00, 0, 0, 0x02, 0, 0, 0]).await;
    }
}

fn greeting() -> Vec<u8> {
    let mut p = vec![0x0a];
    p.extend_from_slice(b"8.4.0-scripted\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(&NONCE[..8]);
    p.push(0);
    p.extend_from_slice(&(SERVER_CAPS as u16).to_le_bytes());
    p.push(255); // utf8mb4_0900_ai_ci
    p.extend_from_slice(&2u16.to_le_bytes()); // SERVER_STATUS_AUTOCOMMIT
    p.extend_from_slice(&((SERVER_CAPS >> 16) as u16).to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(&NONCE[8..]);
    p.push(0);
    p.extend_from_slice(b"caching_sha2_password\0");
    p
}

/// What the scripted server saw of one login.
#[derive(Debug)]
struct Seen {
    user: String,
    /// Bytes the client sent after "perform full authentication", if it was asked to.
    full_auth: Option<Vec<u8>>,
}

/// Users: `fast` is in the server's cache (fast path), `full` is not (full path),
/// anyone else is refused with 1045.
async fn serve(listener: TcpListener, seen: tokio::sync::mpsc::Sender<Seen>) {
    loop {
        let Ok((s, _)) = listener.accept().await else {
            return;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut w = Wire { s, seq: 0 };
            w.write(&greeting()).await;
            // The recorder probes the upstream once at startup and hangs up.
            let Some(login) = w.read().await else { return };
            let login: HandshakeResponse<'_> = ParseBuf(&login).parse(()).unwrap();
            assert_eq!(
                login.capabilities().bits() & 0x800,
                0,
                "a plaintext login claims TLS"
            );
            let user = String::from_utf8_lossy(login.user()).into_owned();
            let expected =
                mysql_common::scramble::scramble_sha256(&NONCE, PASSWORD.as_bytes()).unwrap();
            let mut full_auth = None;
            match user.as_str() {
                "fast" => {
                    assert_eq!(login.scramble_buf(), expected, "fast-path scramble");
                    w.write(&[0x01, 0x03]).await; // fast_auth_success
                    w.ok().await;
                }
                "full" => {
                    w.write(&[0x01, 0x04]).await; // perform_full_authentication
                    let mut reply = w.read().await.unwrap();
                    if reply == [0x02] {
                        // Plaintext client: it asks for the public key, then encrypts.
                        let mut key = vec![0x01];
                        key.extend_from_slice(PUBLIC_KEY.as_bytes());
                        w.write(&key).await;
                        reply = w.read().await.unwrap();
                        assert_eq!(reply.len(), 256, "RSA-2048 ciphertext");
                    }
                    full_auth = Some(reply);
                    w.ok().await;
                }
                _ => {
                    let mut err = vec![0xff];
                    err.extend_from_slice(&1045u16.to_le_bytes());
                    err.extend_from_slice(b"#28000Access denied for user");
                    w.write(&err).await;
                    return;
                }
            }
            seen.send(Seen { user, full_auth }).await.unwrap();
            // Command phase: every command is answered OK, until COM_QUIT or EOF.
            loop {
                w.seq = 0;
                match w.read().await.as_deref() {
                    None | Some([0x01, ..]) => return,
                    Some(_) => w.ok().await,
                }
            }
        });
    }
}

async fn scripted_server() -> (SocketAddr, tokio::sync::mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Bounded: a test makes a handful of logins.
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(serve(listener, tx));
    (addr, rx)
}

fn opts(recorder: SocketAddr, user: &str, ssl: Option<SslOpts>) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(recorder.port())
        .user(Some(user))
        .pass(Some(PASSWORD))
        .prefer_socket(false)
        // Known up front, so the driver asks the scripted server no questions.
        .max_allowed_packet(Some(16 << 20))
        .wait_timeout(Some(28_800))
        .ssl_opts(ssl)
}

#[tokio::test]
async fn fast_and_full_paths_pass_through_and_no_secret_is_captured() {
    let (upstream, mut seen) = scripted_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("c.sqlcap");
    let rec = start(&upstream.to_string(), Some(&cap), &[]).await;

    for user in ["fast", "full"] {
        let mut conn = mysql_async::Conn::new(opts(rec.addr, user, None))
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        conn.query_drop(format!("SET @who = '{user}'"))
            .await
            .unwrap();
        conn.ping().await.unwrap();
        conn.disconnect().await.unwrap();
        let s = seen.recv().await.unwrap();
        assert_eq!(s.user, user);
        assert_eq!(s.full_auth.is_some(), user == "full", "{s:?}");
    }
    let err = mysql_async::Conn::new(opts(rec.addr, "stranger", None))
        .await
        .unwrap_err();
    assert_server_error(&err, 1045);

    rec.stop().await;
    let records = read_capture(&cap);
    let opens: Vec<_> = conn_opens(&records)
        .iter()
        .map(|o| (o.user.as_str(), o.auth_plugin.as_str()))
        .collect();
    assert_eq!(
        opens,
        [
            ("fast", "caching_sha2_password"),
            ("full", "caching_sha2_password")
        ]
    );
    let cmds = commands(&records);
    for user in ["fast", "full"] {
        let sql = format!("SET @who = '{user}'");
        assert!(
            cmds.iter()
                .any(|(c, o)| c.sql() == Some(sql.as_bytes()) && matches!(o, Outcome::Ok { .. })),
            "{cmds:?}"
        );
    }
    assert!(!format!("{records:?}").contains(PASSWORD));
    let raw = std::fs::read(&cap).unwrap();
    assert!(
        !raw.windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes())
    );
}

#[tokio::test]
async fn full_auth_over_client_tls_relays_the_cleartext_password_in_sequence() {
    let (upstream, mut seen) = scripted_server().await;
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let (cert_pem, key_pem) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
    std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
    let cap = dir.path().join("c.sqlcap");
    let (c, k) = (
        cert_pem.display().to_string(),
        key_pem.display().to_string(),
    );
    let rec = start(
        &upstream.to_string(),
        Some(&cap),
        &["--tls-cert", &c, "--tls-key", &k],
    )
    .await;

    // The client sends SSLRequest (1) then its login (2); the scripted server, on a
    // plaintext hop, insists on login = 1: the recorder renumbers both ways.
    let ssl = SslOpts::default()
        .with_root_certs(vec![cert_pem.clone().into()])
        .with_disable_built_in_roots(true);
    for user in ["fast", "full"] {
        let mut conn = mysql_async::Conn::new(opts(rec.addr, user, Some(ssl.clone())))
            .await
            .unwrap_or_else(|e| panic!("{user}: {e}"));
        conn.query_drop("DO 1").await.unwrap();
        conn.disconnect().await.unwrap();
        let s = seen.recv().await.unwrap();
        if user == "full" {
            // Over TLS the client sends the password itself, NUL-terminated.
            let sent = s.full_auth.unwrap();
            assert_eq!(sent, [PASSWORD.as_bytes(), &[0]].concat());
        }
    }
    rec.stop().await;
    let raw = std::fs::read(&cap).unwrap();
    assert!(
        !raw.windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes())
    );
    assert_eq!(
        commands(&read_capture(&cap))
            .iter()
            .filter(|(c, _)| c.sql() == Some(b"DO 1".as_slice()))
            .count(),
        2
    );
}
