/// Why one relayed connection ended abnormally (the proxy itself goes on).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),

    /// The client or server sent something that is not the MySQL protocol as we know it.
    #[error("malformed packet from the {from}: {reason}")]
    Malformed { from: Side, reason: String },

    /// A packet the codec cannot read. (The codec's error is shown in the message, not
    /// chained as a source, so `{:#}` prints it once.)
    #[error("malformed packet from the {from}: {error}")]
    Packet {
        from: Side,
        error: crate::codec::CodecError,
    },

    #[error("cannot reach upstream {upstream}: {source}")]
    Upstream {
        upstream: String,
        #[source]
        source: std::io::Error,
    },

    /// The TLS files or flags do not make a usable configuration (found at startup).
    #[error("TLS setup: {0}")]
    TlsSetup(String),

    /// TLS with one side could not be established (handshake failed, or the upstream
    /// does not offer TLS although --upstream-tls asks for it).
    #[error("TLS with the {side}: {reason}")]
    Tls { side: Side, reason: String },

    /// The client disconnected while its command was running: the upstream is closed at
    /// once so that the server aborts the statement, as it would for a direct client.
    #[error("the client went away during a command")]
    ClientGone,

    /// The recorder's shutdown grace period ended with the command still in flight.
    #[error("cut by the recorder's shutdown")]
    Shutdown,

    /// The client did not finish logging in within --handshake-timeout.
    #[error("no login within {0:?}")]
    HandshakeTimeout(std::time::Duration),

    /// A flag's value that cannot work (found at startup).
    #[error("{flag} {reason}")]
    BadFlag { flag: &'static str, reason: String },

    /// The --out file exists and --force was not given.
    #[error("capture file {} exists: pass --force to overwrite it", .0.display())]
    CaptureExists(std::path::PathBuf),

    /// The --out file cannot be created or its header written. (`cause` is shown in
    /// the message, not chained as a source, so `{:#}` prints it once.)
    #[error("cannot create capture file {}: {cause}", path.display())]
    CaptureCreate {
        path: std::path::PathBuf,
        cause: captures::Error,
    },

    #[error("the capture file: {0}")]
    Capture(#[from] captures::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Client,
    Server,
}

impl std::fmt::Display for Side {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Server => "server",
        })
    }
}

impl Error {
    pub fn tls(side: Side, reason: impl Into<String>) -> Self {
        Error::Tls {
            side,
            reason: reason.into(),
        }
    }

    /// For `map_err`: a codec error in a packet from `from`.
    pub fn packet(from: Side) -> impl FnOnce(crate::codec::CodecError) -> Self {
        move |error| Error::Packet { from, error }
    }

    pub fn malformed(from: Side, reason: impl Into<String>) -> Self {
        Error::Malformed {
            from,
            reason: reason.into(),
        }
    }
}
