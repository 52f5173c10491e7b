//! Command-line configuration.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::error::Error;

/// Ceiling of --max-infile-bytes: half the largest record a capture file accepts, so the
/// statement and the record's other fields always fit beside the content.
const MAX_INFILE_BYTES: u64 = 512 << 20;

#[derive(Debug, Clone, Parser)]
#[command(
    version,
    about = "Transparent MySQL proxy that records every command to a capture file"
)]
pub struct Config {
    /// Address clients connect to.
    #[arg(long, env = "RECORDER_LISTEN", default_value = "127.0.0.1:6033")]
    pub listen: SocketAddr,
    /// The real server (MySQL, MariaDB or vtgate), HOST:PORT.
    #[arg(long, env = "RECORDER_UPSTREAM")]
    pub upstream: String,
    /// Capture file to write; without it the recorder is a plain proxy. An existing file
    /// is refused unless --force.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Overwrite the --out file if it exists.
    #[arg(long)]
    pub force: bool,
    /// Write query classes instead of literal values (inspectable, not replayable).
    #[arg(long)]
    pub redact: bool,
    /// Do not keep a digest of the rows each result returned (by default every
    /// captured result keeps one, so a replay can tell when an answer changed).
    #[arg(long)]
    pub no_result_digest: bool,
    /// Terminate TLS from clients with this certificate chain (PEM). The relayed greeting
    /// then offers TLS (CLIENT_SSL) and the capture still sees plaintext. Without it the
    /// recorder hides TLS from clients, which then talk plaintext to it.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The private key for --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Talk TLS to the upstream (SSLRequest after its greeting), whether or not clients
    /// use TLS to the recorder. Needs --upstream-tls-ca or --upstream-tls-insecure.
    /// Without it the upstream hop is plaintext: a client that believes its connection is
    /// encrypted may then send a cleartext password over it (caching_sha2_password full
    /// authentication, mysql_clear_password), so keep plaintext upstreams on loopback or
    /// a trusted network.
    #[arg(long)]
    pub upstream_tls: bool,
    /// Trust the upstream's certificate only if it chains to these CA certificates (PEM),
    /// and matches the upstream's host (or --upstream-tls-name).
    #[arg(
        long,
        value_name = "PEM",
        requires = "upstream_tls",
        conflicts_with = "upstream_tls_insecure"
    )]
    pub upstream_tls_ca: Option<PathBuf>,
    /// Encrypt to the upstream but accept ANY certificate it shows (self-signed test
    /// servers): protects against eavesdropping, not against an impostor upstream.
    #[arg(long, requires = "upstream_tls")]
    pub upstream_tls_insecure: bool,
    /// The name the upstream's certificate must carry, when it differs from the host in
    /// --upstream (e.g. --upstream is an IP address).
    #[arg(long, value_name = "NAME", requires = "upstream_tls")]
    pub upstream_tls_name: Option<String>,
    /// statsd server for recorder.commands / recorder.capture.dropped, HOST:PORT.
    #[arg(long)]
    pub statsd: Option<String>,
    /// Refuse connections beyond this many at once.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,
    /// Stop capturing (keep relaying) after this many bytes of capture file.
    #[arg(long)]
    pub max_capture_bytes: Option<u64>,
    /// Stop capturing (keep relaying) after this long, e.g. 10m.
    #[arg(long, value_parser = humantime_duration)]
    pub max_capture_time: Option<std::time::Duration>,
    /// Largest LOAD DATA LOCAL INFILE content kept per command, in bytes (all the files
    /// of one query together): a replay sends it again. Bigger content is relayed as
    /// usual; the capture then records its size only, and a replay skips the command.
    /// Each connection holds up to this much in memory while the file streams.
    #[arg(long, value_name = "BYTES", default_value_t = 64 << 20)]
    pub max_infile_bytes: u64,
    /// Capture records queued for the writer before new ones are dropped.
    #[arg(long, default_value_t = crate::sink::DEFAULT_QUEUE)]
    pub capture_queue: usize,
    /// At shutdown (SIGTERM, SIGINT), how long connections may take to finish the
    /// command in flight; then it is cut (captured as dropped), e.g. 5s.
    #[arg(long, value_parser = humantime_duration, default_value = "5s")]
    pub shutdown_grace: std::time::Duration,
    /// Close a client that has not logged in this long after connecting, e.g. 10s.
    #[arg(long, value_parser = humantime_duration, default_value = "10s")]
    pub handshake_timeout: std::time::Duration,
    /// Free-form labels stored in the capture header, KEY=VALUE (repeatable).
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Log filter (tracing syntax).
    #[arg(long, env = "RECORDER_LOG", default_value = "info")]
    pub log: String,
    /// Tokio worker threads (0: one per CPU).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

impl Config {
    /// Checks what clap's types cannot: called first thing at startup, so a bad flag is
    /// one clear line rather than a recorder that fails on every connection.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |flag: &'static str, value: &dyn std::fmt::Display, reason: &str| {
            Err(Error::BadFlag {
                flag,
                reason: format!("{value}: {reason}"),
            })
        };
        if !is_host_port(&self.upstream) {
            return bad(
                "--upstream",
                &self.upstream,
                "expected HOST:PORT, e.g. 127.0.0.1:3306",
            );
        }
        if self.capture_queue == 0 {
            return bad("--capture-queue", &0, "must be at least 1");
        }
        if self.max_connections == 0 {
            return bad("--max-connections", &0, "must be at least 1");
        }
        if self.max_infile_bytes > MAX_INFILE_BYTES {
            return bad(
                "--max-infile-bytes",
                &self.max_infile_bytes,
                "must be at most 512 MiB (a capture record holds at most 1 GiB)",
            );
        }
        Ok(())
    }
}

/// HOST:PORT with a non-empty host and a port in 1..=65535 (an IPv6 host in brackets).
/// The host is not resolved: the upstream may not be up yet.
fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty()
            && !host.contains(char::is_whitespace)
            && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

fn humantime_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    Ok(std::time::Duration::from_secs(match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("bad duration {s:?}: use s, m or h")),
    }))
}
