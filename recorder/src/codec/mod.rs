//! Everything the recorder knows about MySQL packets, in one place, built on
//! mysql_common's packet types and flags:
//!
//! - [`framing`]: packet headers, sequence ids, logical packets of 16 MiB or more;
//! - [`handshake`]: greeting, SSLRequest, login, authentication exchange, the
//!   capabilities the relay changes or follows;
//! - [`packets`]: OK, ERR, EOF, PREPARE_OK, and the ERR the recorder sends itself;
//! - [`response`]: the state machine that knows where each response ends;
//! - [`digest`]: the digest of the rows a response carries, folded in as they pass;
//! - [`command`]: client commands, their statement ids and parameters;
//! - [`compress`]: the compressed protocol's frames, decoded for the parser, relayed as
//!   they came;
//!
//! The relay moves bytes and asks this module what they mean; nothing else decodes a
//! packet. Malformed input is a [`CodecError`], never a panic.

pub mod command;
pub mod compress;
pub mod digest;
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

    /// An EXECUTE parameter of a column type the protocol does not define, or one
    /// mysql_common cannot decode.
    #[error("undecodable parameter type 0x{0:02x}")]
    ParamType(u8),
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

#[cfg(test)]
mod tests {
    use mysql_common::constants::CapabilityFlags;

    use super::command::{self, Expect, StmtInfo};
    use super::digest::RowDigest;
    use super::response::Response;
    use super::{framing, handshake, packets};

    /// Random packets (a fixed xorshift sequence, short and mostly valid-looking first
    /// bytes) through every decoding function: errors are fine, panics are not.
    #[test]
    fn random_bytes_are_never_a_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let firsts = [
            0x00, 0x01, 0x03, 0x16, 0x17, 0x0a, 0xfb, 0xfc, 0xfd, 0xfe, 0xff,
        ];
        let expects = [
            Expect::OkOrErr,
            Expect::Results,
            Expect::Prepare,
            Expect::Fetch,
            Expect::FieldList,
            Expect::Statistics,
        ];
        for round in 0..20_000 {
            let len = (next() % 48) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Some(b) = bytes.first_mut() {
                *b = firsts[round % firsts.len()];
            }
            let caps = CapabilityFlags::from_bits_retain(next() as u32);
            let mut response = Response::new(expects[round % expects.len()], caps)
                .skip_metadata_possible(round % 2 == 0)
                .cursor_possible(round % 3 == 0)
                .digest(match round % 4 {
                    0 => Some(RowDigest::text()),
                    1 => Some(RowDigest::binary(None)),
                    2 => Some(RowDigest::prepare()),
                    _ => None,
                });
            for chunk in bytes.chunks(1 + round % 7) {
                let _ = response.feed(chunk);
            }
            let _ = (response.outcome(), response.columns_seen());
            let _ = command::parse_command(&bytes);
            let mut stmt = StmtInfo {
                params: (next() % 20) as u16,
                ..Default::default()
            };
            let _ = command::parse_execute(&bytes, Some(&mut stmt));
            let _ = command::stmt_effect(&bytes);
            let _ = packets::err(&bytes, caps);
            let _ = packets::prepare_ok(&bytes);
            let _ = packets::terminator(&bytes, caps, round % 2 == 0);
            let _ = framing::scan(&bytes);
            let _ = framing::payload(&bytes);
            framing::shift_seq(&mut bytes, 1);
            let _ = handshake::patch_greeting(&mut bytes, caps, CapabilityFlags::empty());
            let _ = handshake::parse_login(&bytes);
            let _ = handshake::auth_reply(&bytes, caps);
            let _ = handshake::server_version(&bytes);
            handshake::set_login_ssl(&mut bytes, true);
        }
    }
}
