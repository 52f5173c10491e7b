//! `replayer run`: the capture's connections re-enacted against a target, on the
//! captured timeline scaled by the speed, every command measured.
//!
//! Shape: one reader thread streams the capture and hands each record to its
//! connection's bounded queue; one task per replay connection waits for each command's
//! scheduled time, runs it, and sends an [`Executed`] to the results thread, which writes
//! the results file, keeps the histograms and drives the progress bar. Memory is bounded
//! by the queues, whatever the target does.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use captures::fingerprint::Fingerprinter;
use captures::{
    CaptureReader, Cmd, Executed, Record, ResultRecord, ResultsWriter, RunMeta, WriterOptions,
};
use hdrhistogram::Histogram;
use mysql_async::Conn;
use tokio::sync::{mpsc, watch};

use crate::clock::Clock;
use crate::error::Error;
use crate::exec::{self, CANNOT_CONNECT, CONNECTION_LOST, Done, Session};
use crate::metrics::Metrics;
use crate::refill::Refill;
use crate::target::{Speed, Target};

/// How many captured records may wait per replay connection. Bounds memory (×
/// connections × scale) while letting a connection run ahead of the reader a little; when a
/// connection's target is slower than its schedule its queue fills and the reader waits.
pub const DEFAULT_READ_AHEAD: usize = 256;

/// Batches of executed commands in flight to the results thread (at most
/// `RESULTS_QUEUE × BATCH` commands, ~6 MiB); if the disk is slow, replay connections
/// wait here rather than buffering without limit.
const RESULTS_QUEUE: usize = 1024;

/// Executed commands a replay connection collects before handing them to the results
/// thread. One message per command cost the replay more than the work it carried (a
/// channel operation per command and a results thread that ran for every few
/// commands, evicting the target's caches on a shared CPU); batches make both rare.
const BATCH: usize = 64;

/// The longest a batch is held back while its connection keeps busy, so the results
/// file and the progress line stay current when commands are slow.
const BATCH_AGE: Duration = Duration::from_millis(50);

/// How long the results thread pauses when its queue is empty. It never blocks on the
/// queue, so sending a batch never has to wake it (a futex call and a context switch
/// per batch on a CPU shared with the target), and it wakes rarely (see
/// [`crate::refill`] for what a wake-up costs); 50 ms is ~25 batches at 30 k commands/s,
/// far inside [`RESULTS_QUEUE`], and fresh enough for a progress line redrawn at 4 Hz.
const RESULTS_PAUSE: Duration = Duration::from_millis(50);

/// The longest a reconnect waits between attempts (backoff doubles from 50 ms).
const MAX_BACKOFF: Duration = Duration::from_secs(2);

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
    pub progress: bool,
    pub metrics: Option<Metrics>,
    /// Take over SIGINT/SIGTERM to end the run gracefully (the binary does; a library
    /// caller embedding `run` may not want its signals taken).
    pub handle_signals: bool,
}

/// What a run did, for the summary table and for `ramp`.
#[derive(Debug)]
pub struct RunSummary {
    pub run_id: String,
    pub commands: u64,
    pub errors: u64,
    pub mismatches: u64,
    pub skipped: u64,
    pub connections: u64,
    pub connect_failures: u64,
    pub wall: Duration,
    /// Span of the replayed part of the capture (first to last command start).
    pub captured_span: Duration,
    pub latency: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub corrected: Histogram<u64>,
    /// Why the capture ended early (truncated tail, corruption), if it did.
    pub capture_problem: Option<String>,
    pub stopped_by_max_errors: bool,
    /// Ctrl-C (SIGINT) or SIGTERM ended the run early; what ran is in the results.
    pub interrupted: bool,
    /// Error codes and how often each happened.
    pub error_codes: Vec<(u16, u64)>,
}

impl RunSummary {
    /// Commands per second the capture asked for at this speed.
    pub fn scheduled_rate(&self, speed: Speed) -> Option<f64> {
        let span = self.captured_span.as_secs_f64();
        match speed {
            Speed::Factor(f) if span > 0.0 => Some(self.commands as f64 / (span / f)),
            _ => None,
        }
    }

    pub fn achieved_rate(&self) -> f64 {
        self.commands as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Shared by all replay connections of one run.
#[derive(Debug)]
struct Ctx {
    target: Target,
    speed: Speed,
    origin: Instant,
    /// Capture time (ns) of the first replayed record: the replay's time zero.
    t0: AtomicU64,
    t0_set: AtomicBool,
    only_class: HashSet<u64>,
    skip_writes: bool,
    max_errors: Option<u64>,
    errors: AtomicU64,
    stop: AtomicBool,
    /// Wakes connections that wait for a due time when the run stops.
    stop_signal: watch::Sender<bool>,
    interrupted: AtomicBool,
    connect_failures: AtomicU64,
    results: mpsc::Sender<Msg>,
    metrics: Option<Metrics>,
    clock: Clock,
    /// Wakes the capture reader when the queue it waits on has room.
    refill: Refill,
}

impl Ctx {
    /// When a record captured at `t` (ns) is due: from the absolute origin, never by
    /// adding up sleeps, so long replays do not drift.
    fn due(&self, t: u64) -> Instant {
        match self.speed {
            Speed::Max => Instant::now(),
            Speed::Factor(f) => {
                let offset = t.saturating_sub(self.t0.load(Ordering::Relaxed));
                self.origin + Duration::from_nanos((offset as f64 / f) as u64)
            }
        }
    }

    /// Ends the run early: no new commands are sent; those in flight finish.
    fn halt(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.stop_signal.send_replace(true);
        self.refill.wake();
    }

    /// Waits until `due`; false if the run was stopped meanwhile.
    async fn wait_until(&self, due: Instant, stop: &mut watch::Receiver<bool>) -> bool {
        // Already due (always, at --speed max): no timer and no select to set up.
        if due <= Instant::now() {
            return !self.stop.load(Ordering::Relaxed);
        }
        tokio::select! {
            () = self.clock.sleep_until(due) => !self.stop.load(Ordering::Relaxed),
            _ = stop.wait_for(|stopped| *stopped) => false,
        }
    }

    fn since_origin(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX)
    }
}

enum Msg {
    Class {
        class: u64,
        fingerprint: String,
        example: Option<String>,
    },
    /// A connection's executed commands in the order they ran, and how many it skipped.
    Batch {
        executed: Vec<Executed>,
        skipped: u64,
    },
}

/// A replay connection's results on their way to the results thread (see [`BATCH`]).
struct Pending {
    executed: Vec<Executed>,
    skipped: u64,
    /// When the first command of the batch finished.
    since: Option<Instant>,
}

impl Pending {
    fn new() -> Self {
        Pending {
            executed: Vec::with_capacity(BATCH),
            skipped: 0,
            since: None,
        }
    }

    fn push(&mut self, executed: Executed, finished_at: Instant) {
        self.since.get_or_insert(finished_at);
        self.executed.push(executed);
    }

    /// Whether the batch should go now: full, or held long enough.
    fn due(&self, now: Instant) -> bool {
        self.executed.len() >= BATCH || self.since.is_some_and(|t| now - t >= BATCH_AGE)
    }

    /// Sends what is pending; false if the results thread is gone.
    async fn send(&mut self, results: &mpsc::Sender<Msg>) -> bool {
        if self.executed.is_empty() && self.skipped == 0 {
            return true;
        }
        let executed = std::mem::replace(&mut self.executed, Vec::with_capacity(BATCH));
        let skipped = std::mem::take(&mut self.skipped);
        self.since = None;
        results.send(Msg::Batch { executed, skipped }).await.is_ok()
    }
}

/// The runtime a replay runs on: multi-thread, unless this process may use one CPU only
/// (e.g. `taskset -c 0`): then current-thread, which runs every replay connection on the
/// calling thread with no hand-off to a worker.
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
    let reader = CaptureReader::open(&cfg.capture).map_err(|source| Error::Capture {
        path: cfg.capture.clone(),
        source,
    })?;
    if reader.header().redacted {
        return Err(Error::Redacted {
            path: cfg.capture.clone(),
        });
    }

    // Fail before anything runs if the target cannot be reached.
    let probe = Conn::new(cfg.target.opts_for(None))
        .await
        .map_err(|source| Error::Unreachable {
            target: cfg.target.display().to_string(),
            source,
        })?;
    let (major, minor, patch) = probe.server_version();
    let _ = probe.disconnect().await;

    let started = SystemTime::now();
    let started_unix_ns = started
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let run_id = format!("{}-{:x}", cfg.label, started_unix_ns / 1_000_000);
    let meta = RunMeta {
        tool: format!("replayer {}", env!("CARGO_PKG_VERSION")),
        run_id: run_id.clone(),
        label: cfg.label.clone(),
        target: cfg.target_url_display.clone(),
        server_version: format!("{major}.{minor}.{patch}"),
        speed: cfg.speed.factor(),
        scale: cfg.scale,
        capture: cfg.capture.display().to_string(),
        captured_ns: 0,
        started_unix_ns,
        labels: Default::default(),
    };
    let writer =
        // zstd level 1: the results thread shares the CPU with the replay (and often the
        // target); level 3 would cost it twice the time for a file ~10 % smaller.
        ResultsWriter::create(
            &cfg.out,
            &meta,
            WriterOptions {
                level: 1,
                ..WriterOptions::default()
            },
        ).map_err(|source| {
            Error::Capture {
                path: cfg.out.clone(),
                source,
            }
        })?;

    let (results_tx, results_rx) = mpsc::channel(RESULTS_QUEUE);
    let ctx = Arc::new(Ctx {
        target: cfg.target.clone(),
        speed: cfg.speed,
        origin: Instant::now(),
        t0: AtomicU64::new(0),
        t0_set: AtomicBool::new(false),
        only_class: cfg.only_class.iter().copied().collect(),
        skip_writes: cfg.skip_writes,
        max_errors: cfg.max_errors,
        errors: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        stop_signal: watch::Sender::new(false),
        interrupted: AtomicBool::new(false),
        connect_failures: AtomicU64::new(0),
        results: results_tx,
        metrics: cfg.metrics.clone(),
        clock: Clock::start().map_err(|e| Error::Io {
            what: "starting the replay clock thread".into(),
            source: e,
        })?,
        refill: Refill::default(),
    });

    // Ctrl-C / SIGTERM: stop sending, let what is in flight finish, and still write the
    // results and the summary (a long replay cut short is worth reading). A second
    // signal exits at once.
    let handle_signals = cfg.handle_signals;
    let interrupt = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            if handle_signals && crate::signal::first().await.is_ok() {
                tracing::warn!("interrupted: finishing the commands in flight (again to quit)");
                ctx.interrupted.store(true, Ordering::Relaxed);
                ctx.halt();
                if crate::signal::first().await.is_ok() {
                    std::process::exit(130);
                }
            }
        }
    });

    // The results thread: file, histograms, progress.
    let progress = cfg.progress;
    let speed = cfg.speed;
    let origin = ctx.origin;
    let results_thread = std::thread::Builder::new()
        .name("results".into())
        .spawn(move || write_results(writer, results_rx, progress, speed, origin))
        .map_err(|e| Error::Io {
            what: "starting the results thread".into(),
            source: e,
        })?;

    // The reader thread: capture → per-connection queues.
    let handle = tokio::runtime::Handle::current();
    let reader_ctx = ctx.clone();
    let read_ahead = cfg.read_ahead.max(1);
    let scale = cfg.scale.max(1);
    let duration = cfg.duration;
    let reader_thread = std::thread::Builder::new()
        .name("capture-reader".into())
        .spawn(move || dispatch(reader, reader_ctx, handle, read_ahead, scale, duration))
        .map_err(|e| Error::Io {
            what: "starting the capture reader thread".into(),
            source: e,
        })?;

    let dispatched = tokio::task::spawn_blocking(move || reader_thread.join())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    // Wait for every connection task, then close the results channel.
    for task in dispatched.tasks {
        let _ = task.await;
    }
    if ctx.metrics.is_some() {
        tokio::task::spawn_blocking(crate::metrics::flush)
            .await
            .ok();
    }
    interrupt.abort();
    let connect_failures = ctx.connect_failures.load(Ordering::Relaxed);
    let interrupted = ctx.interrupted.load(Ordering::Relaxed);
    let stopped = ctx.stop.load(Ordering::Relaxed) && !interrupted;
    drop(ctx);
    let written = tokio::task::spawn_blocking(move || results_thread.join())
        .await
        .ok()
        .and_then(Result::ok)
        .ok_or_else(|| Error::Io {
            what: "the results thread failed".into(),
            source: std::io::Error::other("panicked"),
        })??;

    Ok(RunSummary {
        run_id,
        commands: written.commands,
        errors: written.errors,
        mismatches: written.mismatches,
        skipped: written.skipped,
        connections: dispatched.connections,
        connect_failures,
        wall: written.last_finish,
        captured_span: Duration::from_nanos(dispatched.span_ns),
        latency: written.latency,
        lag: written.lag,
        corrected: written.corrected,
        capture_problem: dispatched.problem,
        stopped_by_max_errors: stopped,
        interrupted,
        error_codes: written.error_codes,
    })
}

#[derive(Default)]
struct Dispatched {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    connections: u64,
    span_ns: u64,
    problem: Option<String>,
}

/// A replay connection's queue, and its id (whose progress wakes the reader).
type Feed = (mpsc::Sender<Arc<Record>>, u64);

/// Streams the capture into per-connection queues (× scale), spawning a task per
/// connection as it opens.
fn dispatch(
    reader: CaptureReader<std::fs::File>,
    ctx: Arc<Ctx>,
    handle: tokio::runtime::Handle,
    read_ahead: usize,
    scale: u32,
    duration: Option<Duration>,
) -> Dispatched {
    let mut out = Dispatched::default();
    let mut queues: HashMap<u64, Vec<Feed>> = HashMap::new();
    let mut first_t = None;
    let mut last_t = 0u64;
    let limit = duration.map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    for item in reader {
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        let record = match item {
            Ok(record) => record,
            Err(e) => {
                out.problem = Some(e.to_string());
                break;
            }
        };
        let t = record.t();
        let t0 = *first_t.get_or_insert_with(|| {
            ctx.t0.store(t, Ordering::Relaxed);
            ctx.t0_set.store(true, Ordering::Relaxed);
            t
        });
        if limit.is_some_and(|l| t.saturating_sub(t0) > l)
            && !matches!(record, Record::ConnClose(_))
        {
            // `--duration`: replay a prefix; connections still close when captured.
            continue;
        }
        if let Record::Command(_) = &record {
            last_t = last_t.max(t);
        }
        let conn = record.conn();
        let is_close = matches!(record, Record::ConnClose(_));
        let senders = queues.entry(conn).or_insert_with(|| {
            out.connections += u64::from(scale);
            (0..scale)
                .map(|copy| {
                    let (tx, rx) = mpsc::channel(read_ahead);
                    let ctx = ctx.clone();
                    out.tasks
                        .push(handle.spawn(replay_connection(ctx, conn, copy, rx)));
                    (tx, replay_conn_id(conn, copy))
                })
                .collect()
        });
        let record = Arc::new(record);
        for (tx, id) in senders.iter() {
            // Waits while this connection is `read_ahead` records behind: bounded memory.
            // An error means the connection task ended (max errors): nothing to deliver.
            let mut item = record.clone();
            while let Err(mpsc::error::TrySendError::Full(back)) = tx.try_send(item) {
                // Wait until half the queue is free, not one slot: a wake-up per record
                // would cost more than the record, and the other connections' queues
                // would run dry meanwhile.
                item = back;
                ctx.refill.wait_for(*id, || {
                    tx.capacity() >= tx.max_capacity() / 2 || tx.is_closed()
                });
            }
        }
        if is_close {
            queues.remove(&conn);
        }
    }
    out.span_ns = first_t.map_or(0, |t0| last_t.saturating_sub(t0));
    out
}

/// One replay connection: opens, runs each command at its time, closes.
async fn replay_connection(
    ctx: Arc<Ctx>,
    conn_id: u64,
    copy: u32,
    mut rx: mpsc::Receiver<Arc<Record>>,
) {
    let replay_conn_id = replay_conn_id(conn_id, copy);
    let mut conn: Option<Conn> = None;
    let mut db: Option<String> = ctx.target.map_db(None);
    let mut session = Session::default();
    let mut fp = Fingerprinter::new();
    let mut stmt_class: HashMap<u32, (u64, bool)> = HashMap::new();
    let mut seen_classes: HashSet<u64> = HashSet::new();
    let mut backoff = Duration::from_millis(50);
    let mut next_attempt = Instant::now();
    let mut seq = 0u64;
    let mut stop = ctx.stop_signal.subscribe();
    let mut pending = Pending::new();

    loop {
        // Nothing queued (the reader is behind, or waits on a lagging connection): what
        // ran so far goes to the results thread before this connection waits for more.
        if rx.is_empty() && !pending.send(&ctx.results).await {
            break;
        }
        let Some(record) = rx.recv().await else { break };
        ctx.refill
            .took(replay_conn_id, || rx.len() <= rx.max_capacity() / 2);
        if ctx.stop.load(Ordering::Relaxed) {
            break;
        }
        match record.as_ref() {
            Record::ConnOpen(open) => {
                db = ctx.target.map_db(open.db.as_deref());
                if !ctx.wait_until(ctx.due(open.t), &mut stop).await {
                    break;
                }
                match Conn::new(ctx.target.opts_for(db.clone())).await {
                    Ok(c) => conn = Some(c),
                    Err(e) => {
                        ctx.connect_failures.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(conn = replay_conn_id, "connect failed: {e}");
                    }
                }
            }
            Record::ConnClose(close) => {
                // Stopping or not, the connection closes; its results go first, not
                // after a wait that may be long.
                pending.send(&ctx.results).await;
                ctx.wait_until(ctx.due(close.t), &mut stop).await;
                if let Some(c) = conn.take() {
                    let _ = c.disconnect().await;
                }
            }
            Record::Command(command) => {
                let kind = command.cmd.kind();
                // Class: the statement's text for queries and prepared statements.
                let (class, is_write, new_class) = match &command.cmd {
                    Cmd::Query { sql } | Cmd::Prepare { sql, .. } => {
                        let text = fp.fingerprint(sql);
                        let id = captures::fingerprint::class_id(text);
                        let write = is_write(text);
                        if let Cmd::Prepare { stmt_id, .. } = &command.cmd {
                            stmt_class.insert(*stmt_id, (id, write));
                        }
                        let new = seen_classes.insert(id).then(|| {
                            (
                                text.to_string(),
                                String::from_utf8_lossy(&sql[..sql.len().min(1024)]).into_owned(),
                            )
                        });
                        (id, write, new)
                    }
                    Cmd::Execute { stmt_id, .. }
                    | Cmd::SendLongData { stmt_id, .. }
                    | Cmd::StmtClose { stmt_id }
                    | Cmd::StmtReset { stmt_id }
                    | Cmd::StmtFetch { stmt_id, .. } => {
                        let (id, write) = stmt_class.get(stmt_id).copied().unwrap_or((0, false));
                        (id, write, None)
                    }
                    other => {
                        let text = format!("administrator command: {}", other.kind());
                        let id = captures::fingerprint::class_id(&text);
                        let new = seen_classes.insert(id).then(|| (text, String::new()));
                        (id, false, new)
                    }
                };
                if (!ctx.only_class.is_empty() && !ctx.only_class.contains(&class))
                    || (ctx.skip_writes && is_write)
                {
                    continue;
                }
                if let Some((fingerprint, example)) = new_class {
                    let example = (!example.is_empty()).then_some(example);
                    let _ = ctx
                        .results
                        .send(Msg::Class {
                            class,
                            fingerprint,
                            example,
                        })
                        .await;
                }
                if matches!(command.cmd, Cmd::Quit) {
                    if let Some(c) = conn.take() {
                        let _ = c.disconnect().await;
                    }
                    continue;
                }

                // At --speed max a command is due when it is sent: no clock read for it.
                let due = match ctx.speed {
                    Speed::Max => None,
                    Speed::Factor(_) => Some(ctx.due(command.t_start)),
                };
                if let Some(due) = due {
                    // About to wait: what ran so far goes to the results thread first.
                    if due > Instant::now() && !pending.send(&ctx.results).await {
                        break;
                    }
                    if !ctx.wait_until(due, &mut stop).await {
                        break;
                    }
                }
                if due.is_none() && ctx.stop.load(Ordering::Relaxed) {
                    break;
                }

                // (Re)connect if needed, with backoff so a dead target is not hammered.
                if conn.is_none() && Instant::now() >= next_attempt {
                    match Conn::new(ctx.target.opts_for(db.clone())).await {
                        Ok(c) => {
                            conn = Some(c);
                            session.clear();
                            backoff = Duration::from_millis(50);
                        }
                        Err(_) => {
                            ctx.connect_failures.fetch_add(1, Ordering::Relaxed);
                            next_attempt = Instant::now() + backoff;
                            backoff = (backoff * 2).min(MAX_BACKOFF);
                        }
                    }
                }
                let sent_at = Instant::now();
                let done = match conn.as_mut() {
                    Some(c) => match session.execute(c, &command.cmd, &ctx.target).await {
                        Ok(done) => done,
                        Err(e) => {
                            tracing::debug!(conn = replay_conn_id, "connection lost: {e}");
                            conn = None;
                            Done::ServerError(CONNECTION_LOST)
                        }
                    },
                    None => Done::ServerError(CANNOT_CONNECT),
                };
                let finished_at = Instant::now();
                if done == Done::Skipped {
                    pending.skipped += 1;
                    continue;
                }
                let error = match done {
                    Done::ServerError(code) => Some(code),
                    _ => None,
                };
                let mismatch = exec::judge(&command.outcome, done);
                let executed = Executed {
                    conn: replay_conn_id,
                    seq,
                    class,
                    kind,
                    scheduled_ns: ctx.since_origin(due.unwrap_or(sent_at)),
                    sent_ns: ctx.since_origin(sent_at),
                    finished_ns: ctx.since_origin(finished_at),
                    rows: exec::rows_of(done),
                    error,
                    mismatch,
                };
                seq += 1;
                if let Some(metrics) = &ctx.metrics {
                    metrics.record(&executed);
                }
                if error.is_some() {
                    let n = ctx.errors.fetch_add(1, Ordering::Relaxed) + 1;
                    if ctx.max_errors.is_some_and(|max| n >= max) {
                        ctx.halt();
                    }
                }
                pending.push(executed, finished_at);
                if pending.due(finished_at) && !pending.send(&ctx.results).await {
                    break;
                }
            }
        }
    }
    pending.send(&ctx.results).await;
    // The reader may be waiting to queue more for this connection: it must see the end.
    drop(rx);
    ctx.refill.wake();
    if let Some(c) = conn.take() {
        let _ = c.disconnect().await;
    }
}

/// The id a replay connection has in results: the captured id × 1000 + its copy.
fn replay_conn_id(captured: u64, copy: u32) -> u64 {
    captured * 1000 + u64::from(copy)
}

/// Whether a statement changes data (for `--skip-writes`).
fn is_write(fingerprint: &str) -> bool {
    let first = fingerprint
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .split([' ', '('])
        .next()
        .unwrap_or("");
    matches!(
        first,
        "insert"
            | "update"
            | "delete"
            | "replace"
            | "create"
            | "drop"
            | "alter"
            | "truncate"
            | "rename"
            | "load"
            | "grant"
            | "revoke"
            | "call"
    ) || fingerprint.ends_with(" for update")
}

struct Written {
    commands: u64,
    errors: u64,
    mismatches: u64,
    skipped: u64,
    last_finish: Duration,
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    corrected: Histogram<u64>,
    error_codes: Vec<(u16, u64)>,
}

/// Latencies in µs, 1 µs .. 1 h at 3 significant digits: fixed size, whatever the run.
pub fn histogram() -> Histogram<u64> {
    #[allow(clippy::expect_used)] // constant, valid bounds: cannot fail
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn write_results(
    mut writer: ResultsWriter<std::fs::File>,
    mut rx: mpsc::Receiver<Msg>,
    progress: bool,
    speed: Speed,
    origin: Instant,
) -> Result<Written, Error> {
    let mut w = Written {
        commands: 0,
        errors: 0,
        mismatches: 0,
        skipped: 0,
        last_finish: Duration::ZERO,
        latency: histogram(),
        lag: histogram(),
        corrected: histogram(),
        error_codes: Vec::new(),
    };
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
                    w.commands += 1;
                    let _ = w.latency.record((e.latency_ns() / 1000).max(1));
                    let _ = w.lag.record((e.lag_ns() / 1000).max(1));
                    let _ = w.corrected.record((e.corrected_ns() / 1000).max(1));
                    let _ = window.record((e.latency_ns() / 1000).max(1));
                    if let Some(code) = e.error {
                        w.errors += 1;
                        *codes.entry(code).or_default() += 1;
                    }
                    if !e.mismatch.is_empty() {
                        w.mismatches += 1;
                    }
                    w.last_finish = w.last_finish.max(Duration::from_nanos(e.finished_ns));
                    bar.update(&e, w.commands, w.errors, &mut window, &w.lag, origin);
                    writer.append(&ResultRecord::Exec(e))?;
                }
            }
        }
    }
    bar.finish();
    writer.close()?;
    let mut codes: Vec<(u16, u64)> = codes.into_iter().collect();
    codes.sort_by_key(|c| std::cmp::Reverse(c.1));
    w.error_codes = codes;
    Ok(w)
}

/// Prints the end-of-run table.
pub fn print_summary(s: &RunSummary, speed: Speed, out: &Path) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!("replay {} → {}", s.run_id, out.display());
    println!(
        "  commands {:>10}   errors {:>8}   mismatches {:>8}   skipped {:>6}   connections {}",
        s.commands, s.errors, s.mismatches, s.skipped, s.connections
    );
    let scheduled = s
        .scheduled_rate(speed)
        .map_or("back to back".to_string(), |r| format!("{r:.0}/s"));
    println!(
        "  wall {:.2}s for {:.2}s captured at {speed}   rate {:.0}/s achieved vs {scheduled} scheduled",
        s.wall.as_secs_f64(),
        s.captured_span.as_secs_f64(),
        s.achieved_rate()
    );
    println!(
        "  latency ms  p50 {:.3}  p95 {:.3}  p99 {:.3}  max {:.3}",
        ms(s.latency.value_at_quantile(0.50)),
        ms(s.latency.value_at_quantile(0.95)),
        ms(s.latency.value_at_quantile(0.99)),
        ms(s.latency.max())
    );
    println!(
        "  lag ms      p50 {:.3}  p99 {:.3}  max {:.3}   (corrected latency p99 {:.3})",
        ms(s.lag.value_at_quantile(0.50)),
        ms(s.lag.value_at_quantile(0.99)),
        ms(s.lag.max()),
        ms(s.corrected.value_at_quantile(0.99))
    );
    if !s.error_codes.is_empty() {
        let codes: Vec<String> = s
            .error_codes
            .iter()
            .take(5)
            .map(|(c, n)| format!("{c}×{n}"))
            .collect();
        println!("  error codes {}", codes.join(", "));
    }
    if s.connect_failures > 0 {
        println!("  connection attempts failed: {}", s.connect_failures);
    }
    if s.interrupted {
        println!("  stopped early: interrupted");
    }
    if s.stopped_by_max_errors {
        println!("  stopped early: --max-errors reached");
    }
    if let Some(problem) = &s.capture_problem {
        println!("  capture ended early: {problem}");
    }
}
