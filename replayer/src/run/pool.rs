//! Target connections: opening them with backoff, and the pool of workers that pooled
//! replay runs units of work on, as the application's own pool would under N× load.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mysql_async::Conn;
use tokio::sync::{Notify, mpsc};

use super::lane::LaneFeed;
use super::results::{Msg, Pending};

use crate::exec::Session;
use crate::target::Target;

/// The longest a reconnect waits between attempts (backoff doubles from 50 ms).
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

/// A target connection and what the replay knows of its session.
#[derive(Debug)]
pub struct TargetConn {
    pub conn: Conn,
    /// Prepared statements and long data of this connection.
    pub session: Session,
    /// Default database, as the target names it.
    pub db: Option<String>,
    /// The `SET NAMES ...` last run on it (`None`: as connected).
    pub names: Option<Arc<[u8]>>,
}

impl TargetConn {
    pub async fn close(self) {
        let _ = self.conn.disconnect().await;
    }
}

/// Opens target connections, backing off after failures so a dead target is not
/// hammered (every command meanwhile fails fast with "cannot connect").
#[derive(Debug)]
pub struct Connector {
    target: Target,
    backoff: Mutex<(Duration, Instant)>,
    failures: AtomicU64,
    opened: AtomicU64,
}

impl Connector {
    pub fn new(target: Target) -> Self {
        Connector {
            target,
            backoff: Mutex::new((FIRST_BACKOFF, Instant::now())),
            failures: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Connection attempts that failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Connections opened.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// A new connection with `db` (target name) as default database, or `None` while
    /// backing off or when the attempt fails.
    pub async fn open(&self, db: Option<String>) -> Option<TargetConn> {
        if Instant::now() < self.lock().1 {
            return None;
        }
        match Conn::new(self.target.opts_for(db.clone())).await {
            Ok(conn) => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                *self.lock() = (FIRST_BACKOFF, Instant::now());
                Some(TargetConn {
                    conn,
                    session: Session::default(),
                    db,
                    names: None,
                })
            }
            Err(e) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("connect failed: {e}");
                let mut b = self.lock();
                b.1 = Instant::now() + b.0;
                b.0 = (b.0 * 2).min(MAX_BACKOFF);
                None
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Duration, Instant)> {
        match self.backoff.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// Pooled replay: up to `max` target connections, each with a worker that runs units of
/// work one after another, taken first come first served from one queue, as an
/// application's pool would serve its requests. Workers (and their connections) start
/// on demand, when a unit is queued and no worker is free.
#[derive(Debug)]
pub struct Pool {
    max: usize,
    /// Units admitted and not yet taken, oldest first. Bounded by the reader's admission
    /// limit (`Ctx::admit_limit`).
    queue: Mutex<VecDeque<LaneFeed>>,
    /// No more units will come: workers end once the queue is empty.
    closed: AtomicBool,
    /// A unit was queued or the pool closed.
    ready: Notify,
    workers: AtomicUsize,
    idle: AtomicUsize,
    busy: AtomicU64,
    peak: AtomicU64,
}

impl Pool {
    pub fn new(max: usize) -> Self {
        Pool {
            max: max.max(1),
            queue: Mutex::new(VecDeque::new()),
            closed: AtomicBool::new(false),
            ready: Notify::new(),
            workers: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            busy: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    /// Queues a unit; true if a new worker should start for it (none is free and the
    /// pool is not at its bound). The caller spawns it: the pool does not own a runtime.
    pub fn push(&self, unit: LaneFeed) -> bool {
        self.lock().push_back(unit);
        self.ready.notify_one();
        if self.idle.load(Ordering::SeqCst) == 0 && self.workers.load(Ordering::SeqCst) < self.max {
            self.workers.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// No more units: idle workers end.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify_waiters();
    }

    /// The next unit for a worker, `None` once the pool is closed and drained. Before
    /// waiting for one, the worker's results go out (it may wait long).
    pub async fn next_unit(
        &self,
        results: &mpsc::Sender<Msg>,
        pending: &mut Pending,
    ) -> Option<LaneFeed> {
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(unit) = self.lock().pop_front() {
                return Some(unit);
            }
            if self.closed.load(Ordering::SeqCst) {
                return None;
            }
            pending.send(results).await;
            self.idle.fetch_add(1, Ordering::SeqCst);
            notified.await;
            self.idle.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A worker started (true) or finished (false) a unit.
    pub fn busy(&self, started: bool) {
        if started {
            let n = self.busy.fetch_add(1, Ordering::Relaxed) + 1;
            self.peak.fetch_max(n, Ordering::Relaxed);
        } else {
            self.busy.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Most target connections busy at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<LaneFeed>> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
