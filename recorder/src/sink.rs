//! The capture sink: a bounded queue drained by a writer thread. The relay never waits
//! for it: when the queue is full (slow disk), records are dropped and counted.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use captures::{CaptureEnd, CaptureWriter, Meta, Record, WriterOptions, WriterStats};

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
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    /// Set once the file failed; capture stops, relaying goes on.
    pub failed: AtomicBool,
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

    pub fn enabled(&self) -> bool {
        self.tx.is_some() && !self.stats.failed.load(Ordering::Relaxed)
    }

    /// Never blocks: a full queue or a failed file drops the record (counted).
    pub fn send(&self, record: Record) {
        let Some(tx) = &self.tx else { return };
        if self.stats.failed.load(Ordering::Relaxed) {
            return;
        }
        match tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("recorder.capture.dropped").increment(1);
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    pub fn stats(&self) -> &SinkStats {
        &self.stats
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

/// Creates the capture file (0600) and starts its writer thread. `origin` is the
/// capture's `t = 0`.
pub fn open(
    path: &Path,
    meta: &Meta,
    queue: usize,
    options: WriterOptions,
    origin: Instant,
) -> Result<(Sink, SinkWriter), captures::Error> {
    let writer = CaptureWriter::create(path, meta, options)?;
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
        shown: path.display().to_string(),
    };
    let thread = std::thread::Builder::new()
        .name("capture-writer".into())
        .spawn(move || thread.run())
        .map_err(captures::Error::Io)?;
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
    shown: String,
}

impl Drain {
    fn run(mut self) -> Option<WriterStats> {
        loop {
            match self.rx.try_recv() {
                Ok(record) => {
                    let command = matches!(record, Record::Command(_));
                    if let Err(e) = self.writer.append(&record) {
                        return self.fail(e);
                    }
                    self.commands += u64::from(command);
                    self.stats.written.fetch_add(1, Ordering::Relaxed);
                }
                Err(TryRecvError::Empty) => {
                    // A quiet spell: the open chunk goes to disk once it is old
                    // enough (append does that check while records flow).
                    if let Err(e) = self.writer.flush_if_due() {
                        return self.fail(e);
                    }
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
            ..
        } = self;
        match writer.close() {
            Ok(written) => Some(written),
            Err(e) => fail(&stats, &shown, e),
        }
    }

    fn fail(&self, e: captures::Error) -> Option<WriterStats> {
        fail(&self.stats, &self.shown, e)
    }
}

/// The capture file failed: capture stops, relaying goes on.
fn fail(stats: &SinkStats, shown: &str, e: captures::Error) -> Option<WriterStats> {
    tracing::error!("capture to {shown} stopped: {e}; relaying continues uncaptured");
    stats.failed.store(true, Ordering::Relaxed);
    None
}
