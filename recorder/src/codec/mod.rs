//! Everything the recorder knows about MySQL packets, in one place, built on
//! mysql_common's packet types and flags:
//!
//! - [`framing`]: packet headers, sequence ids, logical packets of 16 MiB or more;
//! - [`compress`]: the compressed protocol's frames, decoded for the parser, relayed as
//!   they came;
//!
//! The relay moves bytes and asks this module what they mean; nothing else decodes a
//! packet. Malformed input is a [`CodecError`], never a panic.

pub mod compress;
pub mod framing;

/// A packet the codec cannot read (which side sent it is the caller's to say).
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// A packet header announcing more than the connection accepts.
    #[error("packet of {size} bytes or more (limit {limit})")]
    TooLarge { size: usize, limit: usize },

    /// A compressed frame that cannot be decoded.
    #[error(transparent)]
    Frame(#[from] compress::FrameError),
}
