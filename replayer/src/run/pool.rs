//! Target connections: opening them with backoff, and the pool of workers that pooled
//! replay runs units of work on, as the application's own pool would under N× load.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mysql_async::Conn;
use tokio::sync::{Notify, mpsc};

use super::ctx::Ctx;
use super::lane::LaneFeed;
use super::results::Pending;

use crate::earliest::EarliestFirst;
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

/// The pool's queue: earliest captured start first. Units do not arrive in that order
/// (a whole unit is handed over when its end is read, a lane with a queue may wait for
/// admission), and a worker only takes the head once it is due: in arrival order, a unit
/// not due for a second would hold back every due unit behind it.
type Queue = EarliestFirst<u64, LaneFeed>;

/// What a worker finds at the head of the queue.
enum Head {
    /// A due unit, and whether more are queued.
    Unit(LaneFeed, bool),
    NotYet(Instant),
    Empty,
    Closed,
}

/// Pooled replay: up to `max` target connections, each with a worker that runs units of
/// work one after another, taken in captured order from one queue as each comes due, as
/// an application's pool would serve its requests. Beyond the workers started with a
/// connection opened before the clock (`run::pool_size`), workers (and their
/// connections) start on demand, when a unit is queued and no worker is free.
#[derive(Debug)]
pub struct Pool {
    max: usize,
    /// Units admitted and not yet taken, earliest first. Bounded by the reader's admission
    /// limits (`Ctx::admission`).
    queue: Mutex<Queue>,
    /// No more units will come: workers end once the queue is empty.
    closed: AtomicBool,
    /// A unit was queued or the pool closed.
    ready: Notify,
    workers: AtomicUsize,
    idle: AtomicUsize,
    /// An idle worker sleeps until the queue's head is due.
    head_watched: AtomicBool,
    busy: AtomicU64,
    peak: AtomicU64,
}

impl Pool {
    pub fn new(max: usize) -> Self {
        Pool {
            max: max.max(1),
            queue: Mutex::new(Queue::default()),
            closed: AtomicBool::new(false),
            ready: Notify::new(),
            workers: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            head_watched: AtomicBool::new(false),
            busy: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        }
    }

    /// Queues a unit; true if a new worker should start for it (none is free and the
    /// pool is not at its bound). The caller spawns it: the reader is not on the runtime.
    pub fn push(&self, unit: LaneFeed) -> bool {
        self.lock().push(unit.start_t, unit);
        self.ready.notify_one();
        self.idle.load(Ordering::SeqCst) == 0 && self.reserve_worker()
    }

    /// Counts a new worker in, if the bound allows.
    fn reserve_worker(&self) -> bool {
        self.workers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    /// Starts one more worker from inside the runtime, with a connection opened
    /// beforehand or none yet, if the bound allows.
    pub fn add_worker(&self, ctx: &Arc<Ctx>, alive: &mpsc::Sender<()>, conn: Option<TargetConn>) {
        if self.reserve_worker() {
            tokio::spawn(super::lane::run_worker(ctx.clone(), alive.clone(), conn));
        }
    }

    /// No more units: idle workers end.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.ready.notify_waiters();
    }

    /// The next unit for a worker once it is due, `None` once the pool is closed and
    /// drained (or the run stops). A worker takes a unit only when it is due, so a free
    /// connection is never held by a unit waiting for its time while a due one waits
    /// for a connection. One idle worker watches the head of the queue for its due
    /// time; the others wait to be told there is work. Before waiting, a worker's
    /// results go out (it may wait long).
    pub async fn next_unit(
        &self,
        ctx: &Arc<Ctx>,
        pending: &mut Pending,
        alive: &mpsc::Sender<()>,
    ) -> Option<LaneFeed> {
        // Flat out, a unit is nearly always there: no waiting is set up for it (a
        // registration with `ready` and a stop subscription per unit cost more than
        // the unit's hand-over).
        match self.take_due(ctx) {
            Head::Unit(unit, more) => return Some(self.taken(ctx, alive, unit, more)),
            Head::Closed => return None,
            Head::Empty | Head::NotYet(_) => {}
        }
        let mut stop = ctx.stop_signal.subscribe();
        loop {
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let due = match self.take_due(ctx) {
                Head::Unit(unit, more) => return Some(self.taken(ctx, alive, unit, more)),
                Head::Closed => return None,
                Head::Empty => None,
                Head::NotYet(due) => Some(due),
            };
            if ctx.stopped() {
                return None;
            }
            pending.send(&ctx.results).await;
            self.idle.fetch_add(1, Ordering::SeqCst);
            match due {
                Some(due) if !self.head_watched.swap(true, Ordering::SeqCst) => {
                    tokio::select! {
                        () = ctx.clock.sleep_until(due) => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                    self.head_watched.store(false, Ordering::SeqCst);
                }
                _ => {
                    tokio::select! {
                        () = notified => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                }
            }
            self.idle.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// A unit taken: with more work and nobody free to take it, one more connection, if
    /// the bound allows (a push only starts workers when it finds none idle).
    fn taken(
        &self,
        ctx: &Arc<Ctx>,
        alive: &mpsc::Sender<()>,
        unit: LaneFeed,
        more: bool,
    ) -> LaneFeed {
        if more && self.idle.load(Ordering::SeqCst) == 0 {
            self.add_worker(ctx, alive, None);
        }
        unit
    }

    /// The head of the queue if it is due (and, since there may be more, another worker
    /// is told to look).
    fn take_due(&self, ctx: &Ctx) -> Head {
        let mut queue = self.lock();
        let Some(head_start) = queue.first() else {
            return if self.closed.load(Ordering::SeqCst) {
                Head::Closed
            } else {
                Head::Empty
            };
        };
        match ctx.due(head_start) {
            Some(due) if due > Instant::now() => Head::NotYet(due),
            _ => {
                let unit = queue.pop();
                let more = !queue.is_empty();
                drop(queue);
                if more {
                    self.ready.notify_one();
                } else if self.closed.load(Ordering::SeqCst) {
                    // The last unit: workers waiting behind the head can end now.
                    self.ready.notify_waiters();
                }
                unit.map_or(Head::Empty, |u| Head::Unit(u, more))
            }
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

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        match self.queue.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
