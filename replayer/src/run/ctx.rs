//! What every lane of one run shares: the schedule, the stop switch, the target
//! connections, commit order and the counters the summary reports.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::admission::Admission;
use super::commits::Commits;
use super::examples::Examples;
use super::park::Park;
use super::pool::{Connector, Pool};
use super::results::Msg;
use crate::clock::{Clock, nanos};
use crate::metrics::Metrics;
use crate::target::Speed;

#[derive(Debug)]
pub struct Ctx {
    pub speed: Speed,
    /// When the context was made; the replay's clock starts a little later (see
    /// [`Ctx::start_clock`]).
    pub anchor: Instant,
    /// When the replay's clock started, in ns after `anchor` (0 until it has).
    pub(super) started_ns: AtomicU64,
    /// Capture time (ns) of the first replayed record: the replay's time zero. Set by
    /// the reader before any lane exists.
    pub t0: AtomicU64,
    pub max_errors: Option<u64>,
    pub errors: AtomicU64,
    pub stop: AtomicBool,
    /// Wakes lanes that wait (for a due time, a commit, a connection) when the run stops.
    pub stop_signal: watch::Sender<bool>,
    pub interrupted: AtomicBool,
    pub results: mpsc::Sender<Msg>,
    pub metrics: Option<Metrics>,
    pub clock: Clock,
    /// Wakes the capture reader when what it waits for happened.
    pub park: Park,
    /// Pooled replay: the workers and their target connections. Captured replay: `None`.
    pub pool: Option<Pool>,
    /// Opens every target connection (backoff after failures).
    pub connector: Connector,
    /// `--sync commits`.
    pub commits: Option<Commits>,
    pub sync_waits: AtomicU64,
    pub sync_wait_ns: AtomicU64,
    /// Highest capture time a lane has started a command of (the reader's horizon at
    /// `--speed max`).
    pub progress: AtomicU64,
    /// Lanes running (spawned and not yet ended), and how many may (pooled).
    pub admission: Admission,
    /// Digest the rows of every answer (`--no-result-digest` turns it off).
    pub result_digest: bool,
    /// Which diverging executions are the first of their class and kind.
    pub examples: Examples,
}

impl Ctx {
    /// Starts the replay's clock: the reader calls it once it has read its first
    /// horizon, before any lane runs, so that first burst of reading does not compete
    /// with the first commands for the CPU.
    pub fn start_clock(&self) {
        self.started_ns
            .store(nanos(self.anchor.elapsed()), Ordering::Relaxed);
    }

    /// Time zero of the replay: capture time `t0` is due then.
    pub fn origin(&self) -> Instant {
        self.anchor + Duration::from_nanos(self.started_ns.load(Ordering::Relaxed))
    }

    /// When a record captured at `t` (ns) is due: from the absolute origin, never by
    /// adding up sleeps, so long replays do not drift. `None` at `--speed max`.
    pub fn due(&self, t: u64) -> Option<Instant> {
        match self.speed {
            Speed::Max => None,
            Speed::Factor(f) => {
                let offset = t.saturating_sub(self.t0.load(Ordering::Relaxed));
                Some(self.origin() + Duration::from_nanos((offset as f64 / f) as u64))
            }
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Ends the run early: no new commands are sent; those in flight finish.
    pub fn halt(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.stop_signal.send_replace(true);
        self.park.wake();
    }

    /// Waits until `due`; false if the run was stopped meanwhile.
    pub async fn wait_until(&self, due: Option<Instant>, stop: &mut watch::Receiver<bool>) -> bool {
        // Already due (always, at --speed max): no timer and no select to set up.
        let Some(due) = due.filter(|d| *d > Instant::now()) else {
            return !self.stopped();
        };
        tokio::select! {
            () = self.clock.sleep_until(due) => !self.stopped(),
            _ = stop.wait_for(|stopped| *stopped) => false,
        }
    }

    pub fn since_origin(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.origin()))
    }

    /// Counts an error; stops the run at `--max-errors`.
    pub fn count_error(&self) {
        let n = self.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if self.max_errors.is_some_and(|max| n >= max) {
            self.halt();
        }
    }

    /// A lane started a command captured at `t` (moves the reader's horizon at max).
    pub fn started(&self, t: u64) {
        if self.speed == Speed::Max {
            let before = self.progress.fetch_max(t, Ordering::Relaxed);
            if t > before {
                self.park.progressed(t);
            }
        }
    }

    pub fn connect_failures(&self) -> u64 {
        self.connector.failures()
    }
}
