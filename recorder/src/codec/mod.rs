//! Everything the recorder knows about MySQL packets, in one place, built on
//! mysql_common's packet types and flags:
//!
//! - [`framing`]: packet headers, sequence ids, logical packets of 16 MiB or more;
//! - [`handshake`]: greeting, SSLRequest, login, authentication exchange, the
//!   capabilities the relay changes or follows;
//! - [`packets`]: OK, ERR, EOF, PREPARE_OK, and the ERR the recorder sends itself;
//! - [`response`]: the state machine that knows where each response ends;
//! - [`command`]: client commands, their statement ids and parameters;
//! - [`compress`]: the compressed protocol's frames, decoded for the parser, relayed as
//!   they came;
//!
//! The relay moves bytes and asks this module what they mean; nothing else decodes a
//! packet. Malformed input is a [`CodecError`], never a panic.

pub mod command;
pub mod compress;
pub mod framing;
pub mod handshake;
pub mod packets;
pub mod response;

/// A packet the codec cannot read (which side sent it is the caller's to say).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty packet")]
    Empty,

    /// A packet header announcing more than the connection accepts.
    #[error("packet of {size} bytes or more (limit {limit})")]
    TooLarge { size: usize, limit: usize },

    /// A compressed frame that cannot be decoded.
    #[error(transparent)]
    Frame(#[from] compress::FrameError),

    /// A packet shorter than its fixed part, or than what its fields announce.
    #[error("short {0}")]
    Short(&'static str),

    /// mysql_common refused a packet. (The cause is shown in the message, not chained.)
    #[error("bad {what}: {cause}")]
    Bad {
        what: &'static str,
        cause: std::io::Error,
    },

    /// A result set's column count that is not a length-encoded integer.
    #[error("bad column count")]
    ColumnCount,

    #[error("result set with zero columns")]
    ZeroColumns,

    /// A packet that cannot start the answer to the command in flight.
    #[error("expected OK or ERR, got 0x{0:02x}")]
    Unexpected(u8),

    #[error("a packet after the response was complete")]
    AfterEnd,

    /// An EXECUTE parameter of a column type the protocol does not define.
    #[error("unknown column type 0x{0:02x}")]
    UnknownType(u8),
}

impl CodecError {
    /// For `map_err`: mysql_common refused a packet of this kind.
    pub fn bad(what: &'static str) -> impl FnOnce(std::io::Error) -> Self {
        move |cause| CodecError::Bad { what, cause }
    }
}

/// The bytes before the first NUL (all of them without one): a string field read
/// leniently, as a server would take it.
fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}
