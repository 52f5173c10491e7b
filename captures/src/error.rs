use std::io;

/// Everything that can go wrong reading or writing a capture or results file.
///
/// Positional variants carry the chunk index (0-based, counting only chunks after the
/// header) and the byte offset of the chunk's first byte in the file, so a user can tell
/// how much of a damaged file was good.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    #[error("not a {expected} file (magic bytes {found:02x?})")]
    BadMagic {
        expected: &'static str,
        found: Vec<u8>,
    },

    #[error("{kind} file has format version {found}, this build reads {min}..={max}")]
    UnsupportedVersion {
        kind: &'static str,
        found: u16,
        min: u16,
        max: u16,
    },

    #[error("file header is corrupt: {reason}")]
    BadHeader { reason: String },

    #[error(
        "file is truncated: chunk {chunk} at byte offset {offset} is incomplete \
         ({available} of {needed} bytes present); every record before it was read"
    )]
    Truncated {
        chunk: u64,
        offset: u64,
        needed: u64,
        available: u64,
    },

    #[error(
        "checksum mismatch in chunk {chunk} at byte offset {offset} \
         (stored {stored:#010x}, computed {computed:#010x}); every record before it was read"
    )]
    Checksum {
        chunk: u64,
        offset: u64,
        stored: u32,
        computed: u32,
    },

    #[error(
        "corrupt chunk {chunk} at byte offset {offset}: {reason}; every record before it was read"
    )]
    CorruptChunk {
        chunk: u64,
        offset: u64,
        reason: String,
    },

    #[error("record of {size} bytes exceeds the {limit}-byte chunk limit")]
    RecordTooLarge { size: usize, limit: usize },

    #[error("cannot encode record: {0}")]
    Encode(postcard::Error),

    #[error("writer was closed after an earlier error")]
    Poisoned,

    /// A line of fingerprint input that is not what the mode expects.
    #[error("input line {line}: {message}")]
    Input { line: u64, message: String },
}

impl Error {
    /// A truncated tail is what a killed writer leaves behind: worth a warning, and the
    /// records before it are good. Everything else positional means damage.
    pub fn is_truncation(&self) -> bool {
        matches!(self, Error::Truncated { .. })
    }

    /// Chunk index and byte offset where reading stopped, if the error is positional.
    pub fn position(&self) -> Option<(u64, u64)> {
        match *self {
            Error::Truncated { chunk, offset, .. }
            | Error::Checksum { chunk, offset, .. }
            | Error::CorruptChunk { chunk, offset, .. } => Some((chunk, offset)),
            _ => None,
        }
    }
}
