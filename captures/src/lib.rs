//! The file formats the recorder writes and the replayer reads.
//!
//! Both a *capture* (what an application sent to its database) and a *results* file (what
//! a replay measured) share one container:
//!
//! ```text
//! header  magic[8] | version u16 LE | meta_len u32 LE | postcard(meta)
//! chunk*  len u32 LE | crc32c u32 LE | zstd(postcard(record) postcard(record) ...)
//! ```
//!
//! Records are batched into chunks that are flushed by size (~64 KiB) or by age (~100 ms),
//! each written with a single `write` call, so a process killed at any moment leaves a file
//! whose every complete chunk is readable. A capture closed on purpose ends with a
//! [`Record::End`]; [`Reader::ended_cleanly`] tells such a file from one cut short. The crc32c covers the compressed bytes, so a
//! flipped bit is caught before decompression. Readers stream: memory depends on the chunk
//! size, not the file size, and they stop at the first bad or short chunk after yielding
//! every record before it, with an error that names the chunk index and byte offset.
//!
//! Serialization is postcard: compact, `no_std`-grade and maintained (bincode is not,
//! RUSTSEC-2025-0141). Postcard is not self-describing, so compatibility rules are strict:
//! new enum variants are appended at the end, existing fields never change; anything else
//! bumps the format version. `tests/golden.rs` keeps reading files written by older
//! versions.

mod container;
pub mod digest;
mod error;
pub mod fingerprint;
pub mod record;
pub mod results;
pub mod status;

pub use container::{
    CaptureFormat, Format, Reader, ResultsFormat, Writer, WriterOptions, WriterStats,
};
pub use digest::Digest;
pub use error::Error;
pub use record::{
    CaptureEnd, CloseReason, Cmd, CmdKind, Command, ConnClose, ConnOpen, LocalFile, Meta, Outcome,
    Param, Record, Value,
};
pub use results::{Answer, Divergence, Divergent, Executed, ResultRecord, RunEnd, RunMeta};

/// A reader of capture files.
pub type CaptureReader<R> = Reader<R, CaptureFormat>;
/// A writer of capture files.
pub type CaptureWriter<W> = Writer<W, CaptureFormat>;
/// A reader of results files.
pub type ResultsReader<R> = Reader<R, ResultsFormat>;
/// A writer of results files.
pub type ResultsWriter<W> = Writer<W, ResultsFormat>;
