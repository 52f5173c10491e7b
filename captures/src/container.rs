//! The chunked container shared by capture and results files.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::record::{Meta, Record};
use crate::results::{ResultRecord, RunMeta};

/// Size of `len u32 | crc32c u32` in front of every chunk.
const CHUNK_HEADER: usize = 8;
/// Largest single record a writer accepts. MySQL's `max_allowed_packet` tops out at
/// 1 GiB, so no real command is larger; the bound keeps a corrupt length from making a
/// reader allocate without limit.
pub const MAX_RECORD_BYTES: usize = 1 << 30;
/// Largest chunk target size a writer may be configured with.
const MAX_CHUNK_TARGET: usize = 16 << 20;
/// A reader refuses chunks that would decompress to more than this: one maximal record
/// plus a full chunk of small ones is the most a writer can produce.
const MAX_CHUNK_RAW: usize = MAX_RECORD_BYTES + MAX_CHUNK_TARGET;
/// The header's meta block is small (a few strings); anything larger is corruption.
const MAX_META_BYTES: u32 = 1 << 20;

/// A kind of file in the container: its magic, version and the types it holds.
pub trait Format {
    /// Human name used in errors ("capture", "results").
    const NAME: &'static str;
    const MAGIC: [u8; 8];
    /// The version this build writes.
    const VERSION: u16;
    /// The oldest version this build still reads.
    const MIN_VERSION: u16;
    type Header: Serialize + DeserializeOwned;
    type Record: Serialize + DeserializeOwned;

    /// Decodes one record of a file written by `version` (checked to be in
    /// `MIN_VERSION..=VERSION`), returning the bytes after it. Formats whose record shape
    /// changed between versions override it to decode the older shapes.
    fn take_record(version: u16, bytes: &[u8]) -> postcard::Result<(Self::Record, &[u8])> {
        let _ = version;
        postcard::take_from_bytes(bytes)
    }

    /// Whether `record` marks a cleanly closed file (see [`Reader::ended_cleanly`]).
    /// Formats without such a record never end cleanly.
    fn is_end(record: &Self::Record) -> bool {
        let _ = record;
        false
    }
}

/// Capture files: `Meta` + `Record`s.
#[derive(Debug, Clone, Copy)]
pub struct CaptureFormat;

impl Format for CaptureFormat {
    const NAME: &'static str = "capture";
    const MAGIC: [u8; 8] = *b"SQLCAP\0\0";
    /// 2 added `Command::status` and `Record::End`; 3 the rows' digest in
    /// `Outcome::Rows`.
    const VERSION: u16 = 3;
    const MIN_VERSION: u16 = 1;
    type Header = Meta;
    type Record = Record;

    fn take_record(version: u16, bytes: &[u8]) -> postcard::Result<(Record, &[u8])> {
        crate::record::take_record(version, bytes)
    }

    fn is_end(record: &Record) -> bool {
        matches!(record, Record::End(_))
    }
}

/// Results files: `RunMeta` + `ResultRecord`s.
#[derive(Debug, Clone, Copy)]
pub struct ResultsFormat;

impl Format for ResultsFormat {
    const NAME: &'static str = "results";
    const MAGIC: [u8; 8] = *b"SQLRES\0\0";
    /// 2 replaced `Executed::mismatch` by a `Divergence` with the answer's warnings and
    /// digest, and added `ResultRecord::Diverged`.
    const VERSION: u16 = 2;
    const MIN_VERSION: u16 = 1;
    type Header = RunMeta;
    type Record = ResultRecord;

    fn take_record(version: u16, bytes: &[u8]) -> postcard::Result<(ResultRecord, &[u8])> {
        crate::results::take_record(version, bytes)
    }
}

/// How a [`Writer`] batches records into chunks.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Flush the open chunk once this many uncompressed bytes are buffered. Larger
    /// chunks compress better; smaller ones lose less on a crash.
    pub chunk_bytes: usize,
    /// Flush the open chunk once its oldest record is this old, so a quiet capture
    /// still reaches the disk (checked on append and by [`Writer::flush_if_due`]).
    pub max_delay: Duration,
    /// zstd level: 1–3 keep up with a busy recorder on one core.
    pub level: i32,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            chunk_bytes: 64 << 10,
            max_delay: Duration::from_millis(100),
            level: 3,
        }
    }
}

/// Counters a writer keeps, for summaries and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub records: u64,
    pub chunks: u64,
    /// Uncompressed postcard bytes of all records.
    pub raw_bytes: u64,
    /// Bytes written to the file, header included.
    pub file_bytes: u64,
}

/// Writes a header, then records batched into checksummed zstd chunks.
///
/// I/O errors are returned, never panicked on; after one, the writer refuses further
/// work ([`Error::Poisoned`]) because the file's tail is in an unknown state.
pub struct Writer<W: Write, F: Format> {
    out: W,
    opts: WriterOptions,
    /// Postcard bytes of the open chunk's records.
    buf: Vec<u8>,
    /// Chunk header + compressed bytes, reused so steady-state writing allocates nothing.
    frame: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
    /// When the open chunk received its first record.
    opened: Option<Instant>,
    stats: WriterStats,
    poisoned: bool,
    _format: PhantomData<F>,
}

impl<W: Write, F: Format> std::fmt::Debug for Writer<W, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("format", &F::NAME)
            .field("buffered", &self.buf.len())
            .field("stats", &self.stats)
            .field("poisoned", &self.poisoned)
            .finish()
    }
}

impl<F: Format> Writer<File, F> {
    /// Creates (or truncates) `path` with mode 0600 (captures hold application data)
    /// and writes the header.
    pub fn create(
        path: impl AsRef<Path>,
        header: &F::Header,
        opts: WriterOptions,
    ) -> Result<Self, Error> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        Writer::new(file, header, opts)
    }

    /// Flushes the open chunk and fsyncs the file.
    pub fn close(self) -> Result<WriterStats, Error> {
        let file = self.finish_with_stats()?;
        file.0.sync_all()?;
        Ok(file.1)
    }
}

impl<W: Write, F: Format> Writer<W, F> {
    /// Writes the header to `out` at once, so even an empty capture is a valid file.
    pub fn new(mut out: W, header: &F::Header, mut opts: WriterOptions) -> Result<Self, Error> {
        opts.chunk_bytes = opts.chunk_bytes.clamp(1, MAX_CHUNK_TARGET);
        let meta = postcard::to_stdvec(header).map_err(Error::Encode)?;
        let meta_len = u32::try_from(meta.len())
            .ok()
            .filter(|&n| n <= MAX_META_BYTES)
            .ok_or(Error::RecordTooLarge {
                size: meta.len(),
                limit: MAX_META_BYTES as usize,
            })?;
        let mut head = Vec::with_capacity(14 + meta.len());
        head.extend_from_slice(&F::MAGIC);
        head.extend_from_slice(&F::VERSION.to_le_bytes());
        head.extend_from_slice(&meta_len.to_le_bytes());
        head.extend_from_slice(&meta);
        out.write_all(&head)?;
        out.flush()?;
        let compressor = zstd::bulk::Compressor::new(opts.level)?;
        Ok(Writer {
            out,
            buf: Vec::with_capacity(opts.chunk_bytes + 4096),
            frame: Vec::new(),
            compressor,
            opened: None,
            stats: WriterStats {
                file_bytes: head.len() as u64,
                ..WriterStats::default()
            },
            poisoned: false,
            opts,
            _format: PhantomData,
        })
    }

    /// Adds a record to the open chunk, flushing it if it is full or old enough.
    pub fn append(&mut self, record: &F::Record) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        let start = self.buf.len();
        if let Err(e) = postcard::to_io(record, &mut self.buf) {
            self.buf.truncate(start);
            return Err(Error::Encode(e));
        }
        let size = self.buf.len() - start;
        if size > MAX_RECORD_BYTES {
            self.buf.truncate(start);
            return Err(Error::RecordTooLarge {
                size,
                limit: MAX_RECORD_BYTES,
            });
        }
        self.stats.records += 1;
        self.stats.raw_bytes += size as u64;
        let opened = *self.opened.get_or_insert_with(Instant::now);
        if self.buf.len() >= self.opts.chunk_bytes || opened.elapsed() >= self.opts.max_delay {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// Flushes the open chunk if its oldest record has waited `max_delay`. Call it from
    /// a timer when records arrive slowly. Returns whether a chunk was written.
    pub fn flush_if_due(&mut self) -> Result<bool, Error> {
        match self.opened {
            Some(t) if t.elapsed() >= self.opts.max_delay => {
                self.flush_chunk()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Compresses and writes the open chunk (if any) with one `write_all`, so a crash
    /// leaves either the whole chunk or a detectably short one.
    pub fn flush_chunk(&mut self) -> Result<(), Error> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if self.buf.is_empty() {
            self.opened = None;
            return Ok(());
        }
        let result = self.write_frame();
        if result.is_err() {
            self.poisoned = true;
        }
        self.buf.clear();
        self.opened = None;
        result
    }

    fn write_frame(&mut self) -> Result<(), Error> {
        let bound = zstd::zstd_safe::compress_bound(self.buf.len());
        self.frame.clear();
        self.frame.resize(CHUNK_HEADER + bound, 0);
        let n = self
            .compressor
            .compress_to_buffer(&self.buf, &mut self.frame[CHUNK_HEADER..])?;
        self.frame.truncate(CHUNK_HEADER + n);
        let len = u32::try_from(n).map_err(|_| Error::RecordTooLarge {
            size: n,
            limit: u32::MAX as usize,
        })?;
        let crc = crc32c::crc32c(&self.frame[CHUNK_HEADER..]);
        self.frame[0..4].copy_from_slice(&len.to_le_bytes());
        self.frame[4..8].copy_from_slice(&crc.to_le_bytes());
        self.out.write_all(&self.frame)?;
        self.out.flush()?;
        self.stats.chunks += 1;
        self.stats.file_bytes += self.frame.len() as u64;
        Ok(())
    }

    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// Flushes the open chunk and returns the underlying writer.
    pub fn finish(self) -> Result<W, Error> {
        self.finish_with_stats().map(|(out, _)| out)
    }

    /// Like [`Writer::finish`], also returning the final counters.
    pub fn finish_with_stats(mut self) -> Result<(W, WriterStats), Error> {
        self.flush_chunk()?;
        Ok((self.out, self.stats))
    }
}

/// Streams the records of a capture or results file.
///
/// An iterator of `Result<Record, Error>`: every record of every good chunk, then, if
/// the file does not end cleanly on a chunk boundary, exactly one error naming the chunk
/// and byte offset where reading stopped (see [`Error::is_truncation`]), then `None`.
/// Memory is bounded by the largest chunk, not by the file.
pub struct Reader<R: Read, F: Format> {
    input: R,
    header: F::Header,
    version: u16,
    /// Index and file offset of the chunk whose records are being decoded.
    loaded: (u64, u64),
    /// Index and file offset of the next chunk to load.
    next_chunk: u64,
    next_offset: u64,
    raw: Vec<u8>,
    data: Vec<u8>,
    pos: usize,
    decompressor: zstd::bulk::Decompressor<'static>,
    done: bool,
    /// Iteration stopped at an error (a damaged or short tail).
    failed: bool,
    /// The last record yielded was the format's end record.
    at_end: bool,
    records: u64,
}

impl<R: Read, F: Format> std::fmt::Debug for Reader<R, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("format", &F::NAME)
            .field("version", &self.version)
            .field("next_chunk", &self.next_chunk)
            .field("next_offset", &self.next_offset)
            .field("records", &self.records)
            .finish()
    }
}

impl<F: Format> Reader<File, F> {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Reader::new(File::open(path)?)
    }
}

impl<R: Read, F: Format> Reader<R, F> {
    /// Reads and checks the header.
    pub fn new(mut input: R) -> Result<Self, Error> {
        let mut fixed = [0u8; 14];
        let n = read_full(&mut input, &mut fixed)?;
        if n < 8 || fixed[..8] != F::MAGIC {
            return Err(Error::BadMagic {
                expected: F::NAME,
                found: fixed[..n.min(8)].to_vec(),
            });
        }
        if n < fixed.len() {
            return Err(Error::BadHeader {
                reason: format!("file ends inside the header ({n} bytes)"),
            });
        }
        let version = u16::from_le_bytes([fixed[8], fixed[9]]);
        if !(F::MIN_VERSION..=F::VERSION).contains(&version) {
            return Err(Error::UnsupportedVersion {
                kind: F::NAME,
                found: version,
                min: F::MIN_VERSION,
                max: F::VERSION,
            });
        }
        let meta_len = u32::from_le_bytes([fixed[10], fixed[11], fixed[12], fixed[13]]);
        if meta_len > MAX_META_BYTES {
            return Err(Error::BadHeader {
                reason: format!("meta block of {meta_len} bytes is implausibly large"),
            });
        }
        let mut meta = vec![0u8; meta_len as usize];
        let got = read_full(&mut input, &mut meta)?;
        if got < meta.len() {
            return Err(Error::BadHeader {
                reason: format!("file ends inside the meta block ({got} of {meta_len} bytes)"),
            });
        }
        let header = match postcard::take_from_bytes::<F::Header>(&meta) {
            Ok((h, [])) => h,
            Ok((_, rest)) => {
                return Err(Error::BadHeader {
                    reason: format!("{} unexpected bytes after the meta block", rest.len()),
                });
            }
            Err(e) => {
                return Err(Error::BadHeader {
                    reason: format!("meta block does not decode: {e}"),
                });
            }
        };
        Ok(Reader {
            input,
            header,
            version,
            loaded: (0, 0),
            next_chunk: 0,
            next_offset: 14 + u64::from(meta_len),
            raw: Vec::new(),
            data: Vec::new(),
            pos: 0,
            decompressor: zstd::bulk::Decompressor::new()?,
            done: false,
            failed: false,
            at_end: false,
            records: 0,
        })
    }

    pub fn header(&self) -> &F::Header {
        &self.header
    }

    /// Format version the file was written with.
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Records yielded so far.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    /// Whether the file ended cleanly: iterated to its end without error, and the last
    /// record was the end record the writer adds when it closes the file on purpose (for
    /// captures: [`Record::End`]). `false` until the iteration is over, and for a file
    /// that was cut short (writer killed, disk full) even if every chunk in it is good.
    pub fn ended_cleanly(&self) -> bool {
        self.done && !self.failed && self.at_end
    }

    /// Bytes of the file consumed so far (header and complete chunks).
    pub fn bytes_read(&self) -> u64 {
        self.next_offset
    }

    /// Loads the next chunk into `data`. `Ok(false)` at a clean end of file.
    fn load_chunk(&mut self) -> Result<bool, Error> {
        let (index, offset) = (self.next_chunk, self.next_offset);

        let mut head = [0u8; CHUNK_HEADER];
        let n = read_full(&mut self.input, &mut head)?;
        if n == 0 {
            return Ok(false);
        }
        if n < CHUNK_HEADER {
            return Err(Error::Truncated {
                chunk: index,
                offset,
                needed: CHUNK_HEADER as u64,
                available: n as u64,
            });
        }
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let stored = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let corrupt = |reason: String| Error::CorruptChunk {
            chunk: index,
            offset,
            reason,
        };
        if len == 0 {
            return Err(corrupt("zero-length chunk".into()));
        }
        if len as usize > zstd::zstd_safe::compress_bound(MAX_CHUNK_RAW) {
            return Err(corrupt(format!(
                "chunk length {len} exceeds the format's limit"
            )));
        }
        // Grow the buffer only as data actually arrives, so a corrupt length cannot make
        // us allocate more than the file holds.
        self.raw.clear();
        self.raw.reserve((len as usize).min(1 << 20));
        let got = (&mut self.input)
            .take(u64::from(len))
            .read_to_end(&mut self.raw)?;
        if got < len as usize {
            return Err(Error::Truncated {
                chunk: index,
                offset,
                needed: CHUNK_HEADER as u64 + u64::from(len),
                available: (CHUNK_HEADER + got) as u64,
            });
        }
        let computed = crc32c::crc32c(&self.raw);
        if computed != stored {
            return Err(Error::Checksum {
                chunk: index,
                offset,
                stored,
                computed,
            });
        }
        let size = match zstd::zstd_safe::get_frame_content_size(&self.raw) {
            Ok(Some(size)) if size <= MAX_CHUNK_RAW as u64 => size as usize,
            Ok(Some(size)) => {
                return Err(corrupt(format!("chunk claims {size} uncompressed bytes")));
            }
            Ok(None) | Err(_) => return Err(corrupt("not a sized zstd frame".into())),
        };
        self.data.clear();
        self.data.reserve(size);
        self.decompressor
            .decompress_to_buffer(&self.raw, &mut self.data)
            .map_err(|e| corrupt(format!("zstd: {e}")))?;
        self.pos = 0;
        self.loaded = (index, offset);
        self.next_chunk = index + 1;
        self.next_offset = offset + CHUNK_HEADER as u64 + u64::from(len);
        Ok(true)
    }

    fn next_record(&mut self) -> Result<Option<F::Record>, Error> {
        while self.pos >= self.data.len() {
            if !self.load_chunk()? {
                return Ok(None);
            }
        }
        match F::take_record(self.version, &self.data[self.pos..]) {
            Ok((record, rest)) => {
                self.pos = self.data.len() - rest.len();
                self.records += 1;
                Ok(Some(record))
            }
            Err(e) => Err(Error::CorruptChunk {
                chunk: self.loaded.0,
                offset: self.loaded.1,
                reason: format!(
                    "record at byte {} of the chunk does not decode: {e}",
                    self.pos
                ),
            }),
        }
    }
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl<R: Read, F: Format> Iterator for Reader<R, F> {
    type Item = Result<F::Record, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_record() {
            Ok(Some(record)) => {
                self.at_end = F::is_end(&record);
                Some(Ok(record))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}
