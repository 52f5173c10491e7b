//! `replayer run`: a capture re-enacted against a target, on the captured timeline
//! scaled by the speed, every command measured.
//!
//! Shape (see ARCHITECTURE.md):
//! - [`feed`]: one reader thread streams the capture, classifies every command, cuts
//!   each captured connection into units of work and hands steps to lanes, never
//!   waiting on one lane ([`overflow`]);
//! - [`lane`]: one task per lane (a captured connection, or a unit of work in pooled
//!   replay) paces, runs and measures its steps on a target connection ([`pool`]),
//!   honouring commit order ([`commits`]) when asked;
//! - [`results`]: one thread writes the results file, keeps the histograms and the
//!   progress line.
//!
//! Memory is bounded by the lane queues, the overflow budget and the results queue,
//! whatever the target does; what a slow target leaves behind waits on disk.

mod admission;
mod commits;
mod ctx;
mod examples;
mod feed;
mod lane;
mod overflow;
mod park;
mod pool;
mod results;
mod session;
mod step;
mod summary;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use captures::{CaptureReader, ResultsWriter, RunEnd, RunMeta, WriterOptions};
use mysql_async::Conn;
use tokio::sync::{mpsc, watch};

use self::admission::Admission;
use self::ctx::Ctx;
use self::feed::{Feed, FeedOptions};
use self::pool::{Connector, Pool, TargetConn};
use self::results::{Msg, RESULTS_QUEUE, Written, write_results};
use crate::classify::PinReason;
use crate::clock::{Clock, nanos};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::target::{Speed, Target};

pub use self::summary::{RunSummary, print_summary};

/// How many steps may wait per lane. Bounds memory (× lanes) while letting a lane run
/// ahead of the reader a little; what does not fit waits in the reader's overflow.
pub const DEFAULT_READ_AHEAD: usize = 256;

/// Most target connections pooled replay opens when `--max-connections` is not given.
const DEFAULT_MAX_CONNECTIONS_CAP: usize = 512;

/// How replay connections map to captured ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Connections {
    /// Units of work on a shared pool of target connections, as the application's own
    /// pool would run them under N× load.
    #[default]
    Pooled,
    /// One target connection per captured connection (× `--scale`), strictly serial.
    Captured,
}

impl Connections {
    pub fn as_str(self) -> &'static str {
        match self {
            Connections::Pooled => "pooled",
            Connections::Captured => "captured",
        }
    }
}

/// Everything `replayer run` needs.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub capture: PathBuf,
    pub target: Target,
    pub target_url_display: String,
    pub out: PathBuf,
    pub speed: Speed,
    pub scale: u32,
    pub label: String,
    pub only_class: Vec<u64>,
    pub skip_writes: bool,
    pub max_errors: Option<u64>,
    pub duration: Option<Duration>,
    pub read_ahead: usize,
    pub connections: Connections,
    /// Pooled replay: the pool's bound (`None`: from the capture's peak concurrency).
    pub max_connections: Option<usize>,
    /// `--sync commits`.
    pub sync_commits: bool,
    /// Digest the rows of every answer and compare them with the capture's (off:
    /// `--no-result-digest`).
    pub result_digest: bool,
    pub progress: bool,
    pub metrics: Option<Metrics>,
    /// Take over SIGINT/SIGTERM to end the run gracefully (the binary does; a library
    /// caller embedding `run` may not want its signals taken).
    pub handle_signals: bool,
}

/// What the reader found, handed back when it is done.
#[derive(Debug, Default)]
struct Dispatched {
    connections: u64,
    span_ns: u64,
    problem: Option<String>,
    /// The capture is damaged (not merely cut short by a killed recorder).
    damaged: bool,
    pinned: BTreeMap<PinReason, u64>,
    captured_commands: u64,
    captured_errors: u64,
    spilled_bytes: u64,
}

/// The runtime a replay runs on: multi-thread, unless this process may use one CPU only
/// (e.g. `taskset -c 0`): then current-thread, which runs every lane on the calling
/// thread with no hand-off to a worker.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut builder = if cpus == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    builder.enable_all().build()
}

/// Checks the capture and the target, then replays. Errors before anything runs
/// (unreadable or redacted capture, unreachable target) come back as `Err`.
pub async fn run(cfg: RunConfig) -> Result<RunSummary, Error> {
    let reader = open_capture(&cfg)?;
    let server_version = probe(&cfg.target).await?;
    let (max_connections, warm) = match cfg.connections {
        Connections::Captured => (0, 0),
        Connections::Pooled => pool_size(&cfg)?,
    };
    let (run_id, meta) = run_meta(&cfg, server_version);
    let writer = create_results(&cfg, &meta)?;
    let (results_tx, results_rx) = mpsc::channel(RESULTS_QUEUE);
    let connector = Connector::new(cfg.target.clone());
    let opened = warm_up(&connector, warm).await;
    let ctx = Arc::new(new_ctx(&cfg, max_connections, results_tx, connector)?);
    let interrupt = watch_signals(&ctx, cfg.handle_signals);

    let (progress, speed) = (cfg.progress, cfg.speed);
    let results_thread = spawn_thread("results", move || {
        write_results(writer, results_rx, progress, speed)
    })?;

    // Lanes hold a clone of `alive`; when the last is gone, every lane has ended.
    let (alive, mut all_ended) = mpsc::channel::<()>(1);
    if let Some(pool) = &ctx.pool {
        for conn in opened {
            pool.add_worker(&ctx, &alive, Some(conn));
        }
    }
    let feed = Feed::new(
        ctx.clone(),
        tokio::runtime::Handle::current(),
        feed_options(&cfg),
        alive,
    );
    let reader_thread = spawn_thread("capture-reader", move || feed.run(reader))?;
    let dispatched = tokio::task::spawn_blocking(move || reader_thread.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let _ = all_ended.recv().await;
    if ctx.metrics.is_some() {
        tokio::task::spawn_blocking(crate::metrics::flush)
            .await
            .ok();
    }
    interrupt.abort();

    let end = run_end(&ctx, &cfg, max_connections, &dispatched);
    let _ = ctx.results.send(Msg::End(Box::new(end.clone()))).await;
    drop(ctx);
    let written: Written = tokio::task::spawn_blocking(move || results_thread.join())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| Error::Io {
            what: "the results thread failed".into(),
            source: std::io::Error::other("panicked"),
        })??;
    Ok(RunSummary::new(
        run_id,
        cfg.speed,
        written,
        end,
        &dispatched,
    ))
}

fn open_capture(cfg: &RunConfig) -> Result<CaptureReader<std::fs::File>, Error> {
    let reader = CaptureReader::open(&cfg.capture).map_err(|source| Error::Capture {
        path: cfg.capture.clone(),
        source,
    })?;
    if reader.header().redacted {
        return Err(Error::Redacted {
            path: cfg.capture.clone(),
        });
    }
    Ok(reader)
}

/// Fails before anything runs if the target cannot be reached; its version otherwise.
async fn probe(target: &Target) -> Result<String, Error> {
    let probe = Conn::new(target.opts_for(None))
        .await
        .map_err(|source| Error::Unreachable {
            target: target.display().to_string(),
            source,
        })?;
    let (major, minor, patch) = probe.server_version();
    let _ = probe.disconnect().await;
    Ok(format!("{major}.{minor}.{patch}"))
}

/// The pool's bound, and how many of its connections to open before the replay's clock
/// starts.
///
/// Bound, when none is given: on a schedule, four times what the capture kept busy at
/// its peak, times the speed, at least 16 — an application under N× load keeps about N×
/// as many connections busy, and a target slower than the captured server keeps each
/// one busy longer (the demo's capture, recorded on MariaDB, needs twice its 1× pool on
/// Vitess at 4×), so the pool must not be what falls behind. Flat out: twice the peak,
/// at least 8, so `--speed max` keeps about as many connections busy as the capture had.
///
/// Opened beforehand: the peak times the speed (flat out: the bound), as an
/// application's pool is already open when its load arrives; opened on demand instead,
/// the first half second of a 2× replay fell 75 ms behind while connections were made.
fn pool_size(cfg: &RunConfig) -> Result<(usize, usize), Error> {
    if let (Some(n), Speed::Max) = (cfg.max_connections, cfg.speed) {
        // Nothing to size from the capture: spare the pass over it.
        let max = n.max(1);
        return Ok((max, max));
    }
    let peak = crate::inspect::shape(&cfg.capture)
        .map_err(|source| Error::Capture {
            path: cfg.capture.clone(),
            source,
        })?
        .peak_busy
        .max(1) as f64
        * f64::from(cfg.scale.max(1));
    let (scaled, floor) = match cfg.speed {
        Speed::Factor(f) => (peak * f.max(1.0) * 4.0, 16),
        Speed::Max => (peak * 2.0, 8),
    };
    let max = match cfg.max_connections {
        Some(n) => n.max(1),
        None => (scaled.ceil() as usize).clamp(floor, DEFAULT_MAX_CONNECTIONS_CAP),
    };
    let warm = match cfg.speed {
        Speed::Factor(f) => (peak * f).ceil() as usize,
        Speed::Max => max,
    };
    Ok((max, warm.clamp(1, max)))
}

/// Opens `n` target connections at once (those that fail are simply not there: the
/// pool opens connections on demand, with backoff, during the run).
async fn warm_up(connector: &Connector, n: usize) -> Vec<TargetConn> {
    let db = connector.target().map_db(None);
    let opening = (0..n).map(|_| connector.open(db.clone()));
    futures_util::future::join_all(opening)
        .await
        .into_iter()
        .flatten()
        .collect()
}

fn run_meta(cfg: &RunConfig, server_version: String) -> (String, RunMeta) {
    let started_unix_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(nanos)
        .unwrap_or(0);
    let run_id = format!("{}-{:x}", cfg.label, started_unix_ns / 1_000_000);
    let mut labels = BTreeMap::new();
    labels.insert("connections".into(), cfg.connections.as_str().into());
    if cfg.sync_commits {
        labels.insert("sync".into(), "commits".into());
    }
    let meta = RunMeta {
        tool: format!("replayer {}", env!("CARGO_PKG_VERSION")),
        run_id: run_id.clone(),
        label: cfg.label.clone(),
        target: cfg.target_url_display.clone(),
        server_version,
        speed: cfg.speed.factor(),
        scale: cfg.scale,
        capture: cfg.capture.display().to_string(),
        captured_ns: 0,
        started_unix_ns,
        labels,
    };
    (run_id, meta)
}

fn create_results(cfg: &RunConfig, meta: &RunMeta) -> Result<ResultsWriter<std::fs::File>, Error> {
    // zstd level 1: the results thread shares the CPU with the replay (and often the
    // target); level 3 would cost it twice the time for a file ~10 % smaller.
    let options = WriterOptions {
        level: 1,
        ..WriterOptions::default()
    };
    ResultsWriter::create(&cfg.out, meta, options).map_err(|source| Error::Capture {
        path: cfg.out.clone(),
        source,
    })
}

fn new_ctx(
    cfg: &RunConfig,
    max_connections: usize,
    results: mpsc::Sender<Msg>,
    connector: Connector,
) -> Result<Ctx, Error> {
    let pool = (cfg.connections == Connections::Pooled).then(|| Pool::new(max_connections));
    Ok(Ctx {
        speed: cfg.speed,
        anchor: Instant::now(),
        started_ns: AtomicU64::new(0),
        t0: AtomicU64::new(0),
        max_errors: cfg.max_errors,
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        stop_signal: watch::Sender::new(false),
        interrupted: AtomicBool::new(false),
        results,
        metrics: cfg.metrics.clone(),
        clock: Clock::start().map_err(|e| Error::Io {
            what: "starting the replay clock thread".into(),
            source: e,
        })?,
        park: Default::default(),
        pool,
        connector,
        commits: cfg.sync_commits.then(Default::default),
        sync_waits: AtomicU64::new(0),
        sync_wait_ns: AtomicU64::new(0),
        progress: AtomicU64::new(0),
        admission: Admission::new(max_connections),
        result_digest: cfg.result_digest,
        examples: Default::default(),
    })
}

fn feed_options(cfg: &RunConfig) -> FeedOptions {
    FeedOptions {
        connections: cfg.connections,
        scale: cfg.scale.max(1),
        read_ahead: cfg.read_ahead.max(1),
        duration: cfg.duration,
        only_class: cfg.only_class.iter().copied().collect::<HashSet<u64>>(),
        skip_writes: cfg.skip_writes,
        sync_commits: cfg.sync_commits,
    }
}

/// Ctrl-C / SIGTERM: stop sending, let what is in flight finish, and still write the
/// results and the summary (a long replay cut short is worth reading). A second signal
/// exits at once.
fn watch_signals(ctx: &Arc<Ctx>, handle_signals: bool) -> tokio::task::JoinHandle<()> {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        if handle_signals && crate::signal::first().await.is_ok() {
            tracing::warn!("interrupted: finishing the commands in flight (again to quit)");
            ctx.interrupted.store(true, Ordering::Relaxed);
            ctx.halt();
            if crate::signal::first().await.is_ok() {
                std::process::exit(130);
            }
        }
    })
}

fn spawn_thread<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, Error> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::Io {
            what: format!("starting the {name} thread"),
            source: e,
        })
}

fn run_end(ctx: &Ctx, cfg: &RunConfig, max_connections: usize, d: &Dispatched) -> RunEnd {
    let interrupted = ctx.interrupted.load(Ordering::Relaxed);
    RunEnd {
        captured_ns: d.span_ns,
        captured_commands: d.captured_commands,
        captured_errors: d.captured_errors,
        connections: cfg.connections.as_str().into(),
        max_connections: max_connections as u64,
        peak_connections: ctx.pool.as_ref().map_or(d.connections, Pool::peak),
        opened_connections: ctx.connector.opened(),
        pinned: d
            .pinned
            .iter()
            .map(|(reason, n)| (reason.as_str().to_string(), *n))
            .collect(),
        sync_commits: cfg.sync_commits,
        sync_waits: ctx.sync_waits.load(Ordering::Relaxed),
        sync_wait_ns: ctx.sync_wait_ns.load(Ordering::Relaxed),
        connect_failures: ctx.connect_failures(),
        interrupted,
        stopped_by_max_errors: ctx.stopped() && !interrupted,
        capture_problem: d.problem.clone(),
    }
}
