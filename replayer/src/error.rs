use std::path::PathBuf;

/// What stops a replay, an inspection or a comparison before it produces anything.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Capture {
        path: PathBuf,
        #[source]
        source: captures::Error,
    },

    #[error("{0}")]
    Format(#[from] captures::Error),

    #[error(
        "{path} is a redacted capture (recorded with --redact): it holds query classes, \
             not the literal values a replay needs. Inspect and compare it; record again \
             without --redact to replay"
    )]
    Redacted { path: PathBuf },

    #[error("bad target {url:?}: {reason}")]
    Target { url: String, reason: String },

    #[error("cannot reach the target {target}: {source}")]
    Unreachable {
        target: String,
        #[source]
        source: mysql_async::Error,
    },

    #[error("bad --db-map {0:?}: expected OLD=NEW (NEW may be empty for no default database)")]
    DbMap(String),

    #[error("bad --speed {0:?}: expected a positive number (e.g. 1, 2.5, 0.1) or `max`")]
    Speed(String),

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("statsd at {addr}: {reason}")]
    Statsd { addr: String, reason: String },
}
