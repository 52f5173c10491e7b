//! The capture sink: a bounded queue drained by a writer thread. The relay never waits
//! for it: when the queue is full (slow disk), records are dropped and counted. Once the
//! file fails (disk full), every record not written is counted as dropped too: the ones
//! queued or buffered when it failed, and all that come after.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use captures::{CaptureEnd, CaptureWriter, Meta, Record, WriterOptions, WriterStats};

use crate::error::Error;

/// Records waiting for the writer. ~65k records is a few seconds of a busy server and at
/// most tens of MiB (queries are kept whole); beyond it we drop rather than slow clients.
pub const DEFAULT_QUEUE: usize = 65_536;

/// How long the writer sleeps when the queue is empty. It never blocks on the queue: a
/// blocked writer must be woken by the relay for nearly every record (a futex call in
/// the relay's path and a context switch: 18 k a second under sysbench), which on a CPU
/// shared with the clients and the server costs more than writing the record. 20 ms is
/// ~600 records at 30 k/s, far inside [`DEFAULT_QUEUE`], and well inside a chunk's
/// `max_delay`.
const PAUSE: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
pub struct SinkStats {
    /// Records in chunks that reached the file.
    pub written: AtomicU64,
    /// Records that never reached the file (queue full, or the file failed).
    pub dropped: AtomicU64,
    /// Set once the file failed; capture stops, relaying goes on.
    pub failed: AtomicBool,
    /// Set when a capture limit is reached: capture stops on purpose (nothing dropped).
    pub stopped: AtomicBool,
}

impl SinkStats {
    /// Counts `n` records lost, here and in statsd.
    fn drop_records(&self, n: u64) {
        if n > 0 {
            self.dropped.fetch_add(n, Ordering::Relaxed);
            metrics::counter!("recorder.capture.dropped").increment(n);
        }
    }
}

/// Where relays send records. Cloning is cheap; dropping the last clone ends the writer.
#[derive(Debug, Clone)]
pub struct Sink {
    tx: Option<SyncSender<Record>>,
    stats: Arc<SinkStats>,
}

impl Sink {
    /// Capture off: every record is discarded at once.
    pub fn disabled() -> Self {
        Sink {
            tx: None,
            stats: Arc::new(SinkStats::default()),
        }
    }

    /// Whether records are wanted (relays skip building them otherwise).
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
            && !self.stats.failed.load(Ordering::Relaxed)
            && !self.stats.stopped.load(Ordering::Relaxed)
    }

    /// Never blocks: a full queue or a failed file drops the record (counted).
    pub fn send(&self, record: Record) {
        let Some(tx) = &self.tx else { return };
        if self.stats.stopped.load(Ordering::Relaxed) {
            return;
        }
        if self.stats.failed.load(Ordering::Relaxed) {
            self.stats.drop_records(1);
            return;
        }
        match tx.try_send(record) {
            Ok(()) => {}
            // Disconnected: the writer thread is gone, having failed.
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.drop_records(1);
            }
        }
    }

    /// A record the relay did not build because [`Sink::enabled`] said no: dropped if
    /// the file failed, nothing if capture is off or stopped on purpose.
    pub fn skip(&self) {
        if self.tx.is_some()
            && self.stats.failed.load(Ordering::Relaxed)
            && !self.stats.stopped.load(Ordering::Relaxed)
        {
            self.stats.drop_records(1);
        }
    }

    /// Stops capturing on purpose (a capture limit): relaying goes on, nothing more is
    /// recorded, nothing counts as dropped.
    pub fn stop(&self) {
        self.stats.stopped.store(true, Ordering::Relaxed);
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
    }

    /// The counters, to read after every sink is gone (the writer closed).
    pub fn stats_handle(&self) -> Arc<SinkStats> {
        self.stats.clone()
    }
}

/// The writer thread's handle: [`SinkWriter::finish`] closes the file cleanly.
#[derive(Debug)]
pub struct SinkWriter {
    thread: JoinHandle<Option<WriterStats>>,
    path: PathBuf,
    /// Tells the thread the recorder is closing the capture on purpose, so it writes the
    /// end record; dropped unsent (the recorder failing), the file ends without one.
    clean: SyncSender<()>,
}

impl SinkWriter {
    /// Waits for the writer to drain the queue (all senders must be dropped), write the
    /// end record, flush and fsync the file.
    pub fn finish(self) -> Option<WriterStats> {
        let path = self.path;
        // The thread reads this only once the queue is closed; capacity 1 never blocks.
        let _ = self.clean.try_send(());
        self.thread.join().ok().flatten().inspect(|_| {
            tracing::debug!("capture {} closed", path.display());
        })
    }
}

/// Creates the capture file, mode 0600 (captures hold application data). An existing
/// file is an error unless `overwrite`: a capture is often hours of traffic.
pub fn create_file(path: &Path, overwrite: bool) -> Result<File, Error> {
    let mut options = OpenOptions::new();
    options.write(true).mode(0o600);
    if overwrite {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    options.open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::CaptureExists(path.to_path_buf()),
        _ => Error::CaptureCreate {
            path: path.to_path_buf(),
            cause: e.into(),
        },
    })
}

/// Writes the capture's header to `file` (made by [`create_file`] at `path`) and starts
/// its writer thread. `origin` is the capture's `t = 0`.
pub fn open(
    file: File,
    path: &Path,
    meta: &Meta,
    queue: usize,
    options: WriterOptions,
    origin: Instant,
) -> Result<(Sink, SinkWriter), Error> {
    let create = |cause| Error::CaptureCreate {
        path: path.to_path_buf(),
        cause,
    };
    let writer = CaptureWriter::new(file, meta, options).map_err(create)?;
    let (tx, rx) = mpsc::sync_channel::<Record>(queue.max(1));
    let (clean, clean_rx) = mpsc::sync_channel::<()>(1);
    let stats = Arc::new(SinkStats::default());
    let thread = Drain {
        writer,
        rx,
        clean: clean_rx,
        stats: stats.clone(),
        origin,
        commands: 0,
        pending: 0,
        chunks: 0,
        shown: path.display().to_string(),
    };
    let thread = std::thread::Builder::new()
        .name("capture-writer".into())
        .spawn(move || thread.run())
        .map_err(|e| create(e.into()))?;
    Ok((
        Sink {
            tx: Some(tx),
            stats,
        },
        SinkWriter {
            thread,
            path: path.to_path_buf(),
            clean,
        },
    ))
}

/// The writer thread's state.
struct Drain {
    writer: CaptureWriter<File>,
    rx: Receiver<Record>,
    clean: Receiver<()>,
    stats: Arc<SinkStats>,
    origin: Instant,
    /// Command records written, for the end record.
    commands: u64,
    /// Records appended since the last chunk reached the file: lost if the file fails.
    pending: u64,
    /// The writer's chunk count when `pending` was last cleared.
    chunks: u64,
    shown: String,
}

impl Drain {
    fn run(mut self) -> Option<WriterStats> {
        loop {
            match self.rx.try_recv() {
                Ok(record) => {
                    let command = matches!(record, Record::Command(_));
                    if let Err(e) = self.writer.append(&record) {
                        // The record itself is lost with the buffered ones.
                        self.pending += 1;
                        return self.fail(e);
                    }
                    self.commands += u64::from(command);
                    self.pending += 1;
                    self.count_flushed();
                }
                Err(TryRecvError::Empty) => {
                    // A quiet spell: the open chunk goes to disk once it is old
                    // enough (append does that check while records flow).
                    if let Err(e) = self.writer.flush_if_due() {
                        return self.fail(e);
                    }
                    self.count_flushed();
                    std::thread::sleep(PAUSE);
                }
                Err(TryRecvError::Disconnected) => break,
            }
        }
        // Every sender is gone, so `dropped` is final. Without the word from finish()
        // the recorder is failing: the file then ends without an end record.
        if self.clean.recv().is_ok() {
            let end = Record::End(CaptureEnd {
                t: u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
                commands: self.commands,
                dropped: self.stats.dropped.load(Ordering::Relaxed),
            });
            if let Err(e) = self.writer.append(&end) {
                return self.fail(e);
            }
        }
        let Drain {
            writer,
            stats,
            shown,
            pending,
            ..
        } = self;
        match writer.close() {
            Ok(written) => {
                stats.written.fetch_add(pending, Ordering::Relaxed);
                Some(written)
            }
            Err(e) => {
                stats.drop_records(pending);
                fail(&stats, &shown, e)
            }
        }
    }

    /// Moves the pending records to `written` once a chunk holding them reached the
    /// file (a chunk is written whole, so all of them did).
    fn count_flushed(&mut self) {
        let chunks = self.writer.stats().chunks;
        if chunks != self.chunks {
            self.chunks = chunks;
            self.stats
                .written
                .fetch_add(std::mem::take(&mut self.pending), Ordering::Relaxed);
        }
    }

    /// The file failed: what was buffered is lost, and so is everything still queued or
    /// sent later (counted as it arrives, until every sender is gone).
    fn fail(self, e: captures::Error) -> Option<WriterStats> {
        let result = fail(&self.stats, &self.shown, e);
        self.stats.drop_records(self.pending);
        while self.rx.recv().is_ok() {
            self.stats.drop_records(1);
        }
        result
    }
}

/// The capture file failed: capture stops, relaying goes on.
fn fail(stats: &SinkStats, shown: &str, e: captures::Error) -> Option<WriterStats> {
    tracing::error!("capture to {shown} stopped: {e}; relaying continues uncaptured");
    stats.failed.store(true, Ordering::Relaxed);
    None
}
