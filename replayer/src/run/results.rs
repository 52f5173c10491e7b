//! The results thread: executed commands in, the results file, the run's histograms and
//! the progress line out.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use captures::{Divergence, Divergent, Executed, ResultRecord, ResultsWriter, RunEnd};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::histogram::histogram;
use crate::target::Speed;

/// Batches of executed commands in flight to the results thread (at most
/// `RESULTS_QUEUE × BATCH` commands, ~6 MiB); if the disk is slow, lanes wait here
/// rather than buffering without limit.
pub const RESULTS_QUEUE: usize = 1024;

/// Executed commands a lane collects before handing them to the results thread. One
/// message per command cost the replay more than the work it carried (a channel
/// operation per command and a results thread that ran for every few commands, evicting
/// the target's caches on a shared CPU); batches make both rare.
const BATCH: usize = 64;

/// The longest a batch is held back while its lane keeps busy, so the results file and
/// the progress line stay current when commands are slow.
const BATCH_AGE: Duration = Duration::from_millis(50);

/// How long the results thread pauses when its queue is empty. It never blocks on the
/// queue, so sending a batch never has to wake it (a futex call and a context switch
/// per batch on a CPU shared with the target), and it wakes rarely; 50 ms is ~25
/// batches at 30 k commands/s, far inside [`RESULTS_QUEUE`], and fresh enough for a
/// progress line redrawn at 4 Hz.
const RESULTS_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub enum Msg {
    Class {
        class: u64,
        fingerprint: String,
        example: Option<String>,
    },
    /// A lane's executed commands in the order they ran, and how many it skipped.
    Batch {
        executed: Vec<Executed>,
        skipped: u64,
    },
    /// The first execution of a class that diverged in one way.
    Diverged(Box<Divergent>),
    /// The run's closing facts, written last.
    End(Box<RunEnd>),
}

/// A lane's results on their way to the results thread (see [`BATCH`]).
#[derive(Debug, Default)]
pub struct Pending {
    executed: Vec<Executed>,
    pub skipped: u64,
    /// When the first command of the batch finished.
    since: Option<Instant>,
}

impl Pending {
    /// Empty, allocating nothing until the first push: a pooled unit's lane often runs
    /// a single command.
    pub fn new() -> Self {
        Pending {
            executed: Vec::new(),
            skipped: 0,
            since: None,
        }
    }

    /// The batch as a message, if there is anything in it; the batch starts over.
    fn take(&mut self) -> Option<Msg> {
        if self.executed.is_empty() && self.skipped == 0 {
            return None;
        }
        let executed = std::mem::replace(&mut self.executed, Vec::with_capacity(BATCH));
        let skipped = std::mem::take(&mut self.skipped);
        self.since = None;
        Some(Msg::Batch { executed, skipped })
    }

    pub fn push(&mut self, executed: Executed, finished_at: Instant) {
        self.since.get_or_insert(finished_at);
        self.executed.push(executed);
    }

    /// Whether the batch should go now: full, or held long enough.
    pub fn due(&self, now: Instant) -> bool {
        self.executed.len() >= BATCH || self.since.is_some_and(|t| now - t >= BATCH_AGE)
    }

    /// Sends what is pending; false if the results thread is gone.
    pub async fn send(&mut self, results: &mpsc::Sender<Msg>) -> bool {
        match self.take() {
            Some(msg) => results.send(msg).await.is_ok(),
            None => true,
        }
    }
}

/// What the results thread counted.
#[derive(Debug)]
pub struct Written {
    pub commands: u64,
    pub errors: u64,
    /// Commands whose answer differed from the capture's, by kind.
    pub diverged: BTreeMap<Divergence, u64>,
    pub skipped: u64,
    pub last_finish: Duration,
    pub latency: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub corrected: Histogram<u64>,
    pub error_codes: Vec<(u16, u64)>,
}

impl Written {
    fn new() -> Self {
        Written {
            commands: 0,
            errors: 0,
            diverged: BTreeMap::new(),
            skipped: 0,
            last_finish: Duration::ZERO,
            latency: histogram(),
            lag: histogram(),
            corrected: histogram(),
            error_codes: Vec::new(),
        }
    }

    fn count(&mut self, e: &Executed, codes: &mut HashMap<u16, u64>) {
        self.commands += 1;
        let _ = self.latency.record((e.latency_ns() / 1000).max(1));
        let _ = self.lag.record((e.lag_ns() / 1000).max(1));
        let _ = self.corrected.record((e.corrected_ns() / 1000).max(1));
        if let Some(code) = e.error {
            self.errors += 1;
            *codes.entry(code).or_default() += 1;
        }
        if !e.divergence.is_none() {
            *self.diverged.entry(e.divergence).or_default() += 1;
        }
        self.last_finish = self.last_finish.max(Duration::from_nanos(e.finished_ns));
    }
}

/// Runs on its own thread until every sender is gone.
pub fn write_results(
    mut writer: ResultsWriter<std::fs::File>,
    mut rx: mpsc::Receiver<Msg>,
    progress: bool,
    speed: Speed,
) -> Result<Written, Error> {
    let mut w = Written::new();
    let mut classes = HashSet::new();
    let mut codes: HashMap<u16, u64> = HashMap::new();
    let bar = crate::progress::Bar::new(progress, speed);
    let mut window = histogram();
    loop {
        // Drain what is there; when it runs dry, let the open chunk reach the disk if
        // it is old enough (a quiet spell must not hold results back) and pause.
        let msg = match rx.try_recv() {
            Ok(msg) => msg,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                writer.flush_if_due()?;
                std::thread::sleep(RESULTS_PAUSE);
                continue;
            }
        };
        match msg {
            Msg::Class {
                class,
                fingerprint,
                example,
            } => {
                if classes.insert(class) {
                    writer.append(&ResultRecord::Class {
                        class,
                        fingerprint,
                        example,
                    })?;
                }
            }
            Msg::Batch { executed, skipped } => {
                w.skipped += skipped;
                for e in executed {
                    w.count(&e, &mut codes);
                    let _ = window.record((e.latency_ns() / 1000).max(1));
                    bar.update(&e, w.commands, w.errors, &mut window, &w.lag);
                    writer.append(&ResultRecord::Exec(e))?;
                }
            }
            Msg::Diverged(d) => writer.append(&ResultRecord::Diverged(d))?,
            Msg::End(end) => writer.append(&ResultRecord::End(*end))?,
        }
    }
    bar.finish();
    writer.close()?;
    let mut codes: Vec<(u16, u64)> = codes.into_iter().collect();
    codes.sort_by_key(|c| std::cmp::Reverse(c.1));
    w.error_codes = codes;
    Ok(w)
}
