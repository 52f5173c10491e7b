//! Target connections: opening them with backoff, and the pool that pooled replay
//! shares among units of work, as the application's own pool would under N× load.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mysql_async::Conn;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
}

impl Connector {
    pub fn new(target: Target) -> Self {
        Connector {
            target,
            backoff: Mutex::new((FIRST_BACKOFF, Instant::now())),
            failures: AtomicU64::new(0),
        }
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Connection attempts that failed.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// A new connection with `db` (target name) as default database, or `None` while
    /// backing off or when the attempt fails.
    pub async fn open(&self, db: Option<String>) -> Option<TargetConn> {
        if Instant::now() < self.lock().1 {
            return None;
        }
        match Conn::new(self.target.opts_for(db.clone())).await {
            Ok(conn) => {
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

/// Target connections shared by units of work: at most `max` in use, opened on demand,
/// handed out first come first served (the semaphore is fair), kept open when idle.
#[derive(Debug)]
pub struct Pool {
    pub connector: Connector,
    permits: Arc<Semaphore>,
    /// Idle connections, most recently used last (reused first: warm caches, and the
    /// pool's size shows what the load needed).
    idle: Mutex<Vec<TargetConn>>,
    in_use: AtomicU64,
    peak: AtomicU64,
    opened: AtomicU64,
}

/// The right to use one pool connection (and the connection, once opened).
#[derive(Debug)]
pub struct Lease {
    pub conn: Option<TargetConn>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub fn new(target: Target, max: usize) -> Self {
        Pool {
            connector: Connector::new(target),
            permits: Arc::new(Semaphore::new(max.max(1))),
            idle: Mutex::new(Vec::new()),
            in_use: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    /// Waits for a free slot and takes an idle connection if there is one (the caller
    /// opens one otherwise, see [`Pool::open`]).
    pub async fn acquire(&self) -> Option<Lease> {
        let permit = self.permits.clone().acquire_owned().await.ok()?;
        let n = self.in_use.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(n, Ordering::Relaxed);
        let conn = self.idle_lock().pop();
        Some(Lease {
            conn,
            _permit: permit,
        })
    }

    /// Opens a connection for a lease that has none.
    pub async fn open(&self, db: Option<String>) -> Option<TargetConn> {
        let conn = self.connector.open(db).await;
        if conn.is_some() {
            self.opened.fetch_add(1, Ordering::Relaxed);
        }
        conn
    }

    /// Gives a lease back; its connection stays open for the next unit if `reusable`
    /// (no session state left behind), else it is closed.
    pub async fn release(&self, mut lease: Lease, reusable: bool) {
        self.in_use.fetch_sub(1, Ordering::Relaxed);
        match lease.conn.take() {
            Some(conn) if reusable => self.idle_lock().push(conn),
            Some(conn) => conn.close().await,
            None => {}
        }
    }

    /// Closes every idle connection (end of the run).
    pub async fn close(&self) {
        let idle: Vec<TargetConn> = std::mem::take(&mut *self.idle_lock());
        for conn in idle {
            conn.close().await;
        }
    }

    /// Most connections in use at once.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// Connections opened in all (more than the peak when some were closed dirty).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn idle_lock(&self) -> std::sync::MutexGuard<'_, Vec<TargetConn>> {
        match self.idle.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
