use std::path::PathBuf;

/// Why a test server could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required program is not installed; the message says how to install it.
    #[error("{program} not found (looked in $PATH, /usr/sbin, /usr/local/sbin): {hint}")]
    Missing {
        program: &'static str,
        hint: &'static str,
    },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    /// A helper program ran but failed; `output` is what it printed.
    #[error("{program} failed ({status}): {output}")]
    Command {
        program: String,
        status: String,
        output: String,
    },

    /// The server process exited or never answered; `log` is the tail of its error log.
    #[error("mariadbd in {dir} did not come up: {reason}\n--- error log tail ---\n{log}")]
    NotReady {
        dir: PathBuf,
        reason: String,
        log: String,
    },

    /// The shared server of this test binary failed to start earlier.
    #[error("the shared test server failed to start: {0}")]
    Shared(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
