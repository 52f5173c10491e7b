use std::path::PathBuf;

/// What stops a replay, an inspection or a comparison before it produces anything.
///
/// A variant with a source names it in the chain, not in its own message (`{:#}` and
/// `cli::print_error` print the chain; printing both said the cause twice).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    Capture {
        path: PathBuf,
        #[source]
        source: captures::Error,
    },

    #[error("{0}")]
    Format(#[from] captures::Error),

    /// A results file that cannot be read (past a cut-short tail, which is not an error).
    #[error("{path}")]
    Results {
        path: PathBuf,
        #[source]
        source: captures::Error,
    },

    /// A results (or capture) file that could not be opened.
    #[error("opening {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: captures::Error,
    },

    /// A `<results>.routes.json` sidecar that is not what `replayer run` writes.
    #[error("{path}: {reason}")]
    Sidecar { path: PathBuf, reason: String },

    /// A line of a `timeline --events` file that is not an event.
    #[error("{path} line {line}: expected {{\"unix_ns\": N, \"label\": \"...\"}}")]
    Events {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },

    /// A capture or results file damaged (not merely cut short) part-way: what came
    /// before was used, but the command fails.
    #[error("{path} is damaged: {problem}")]
    Damaged { path: PathBuf, problem: String },

    #[error(
        "{path} is a redacted capture (recorded with --redact): it holds query classes, \
             not the literal values a replay needs. Inspect and compare it; record again \
             without --redact to replay"
    )]
    Redacted { path: PathBuf },

    #[error("bad target {url:?}: {reason}")]
    Target { url: String, reason: String },

    #[error("cannot reach the target {target}")]
    Unreachable {
        target: String,
        #[source]
        source: mysql_async::Error,
    },

    #[error("bad --db-map {0:?}: expected OLD=NEW (NEW may be empty for no default database)")]
    DbMap(String),

    #[error("bad --speed {0:?}: expected a positive number (e.g. 1, 2.5, 0.1) or `max`")]
    Speed(String),

    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("statsd at {addr}: {reason}")]
    Statsd { addr: String, reason: String },
}

impl Error {
    /// An I/O error with what was being done.
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
