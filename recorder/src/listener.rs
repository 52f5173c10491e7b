//! The accept loop, clean shutdown and the summary line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use captures::{Meta, WriterOptions};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::error::Error;
use crate::relay::{Phase, Shared, Stats, handle};
use crate::sink::{self, Sink, SinkStats, SinkWriter};

/// After the grace period, how long cut connections get to write their last records
/// before their tasks are aborted (they only have to notice and return).
const STOP_WAIT: Duration = Duration::from_secs(1);

/// How long accepting pauses after accept() failed. Out of file descriptors (EMFILE,
/// ENFILE) or memory, the pending connection stays in the backlog and accept() fails
/// again at once: retrying without a pause spins a core until a connection closes.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Runs until `shutdown` resolves (SIGINT/SIGTERM in the binary): then stops accepting,
/// closes idle connections, lets busy ones finish the command in flight for up to
/// `--shutdown-grace`, cuts the rest, and closes the capture.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<String, Error> {
    config.validate()?;
    let tls = crate::tls::Tls::from_config(&config)?;
    // Before the probe, which may wait: a bad --out fails at once.
    let file = match &config.out {
        Some(path) => Some(sink::create_file(path, config.force)?),
        None => None,
    };
    let server_version = probe_upstream(&config.upstream).await;
    let origin = Instant::now();
    let (sink, writer) = open_capture(&config, file, server_version.as_deref(), origin)?;
    let (phase_tx, phase) = watch::channel(Phase::Running);
    let shared = Arc::new(Shared {
        upstream: config.upstream.clone(),
        sink,
        origin,
        redact: config.redact,
        next_conn: AtomicU64::new(1),
        stats: Stats::default(),
        tls,
        phase,
        handshake_timeout: config.handshake_timeout,
        // validate() keeps it at most 512 MiB, which fits any usize of 32 bits or more.
        max_infile_bytes: usize::try_from(config.max_infile_bytes).unwrap_or(usize::MAX),
        result_digest: !config.no_result_digest && !config.redact,
    });
    tracing::info!(
        "recording {} → {} ({}){}",
        listener.local_addr()?,
        config.upstream,
        server_version
            .as_deref()
            .unwrap_or("upstream not answering yet"),
        config
            .out
            .as_ref()
            .map_or(" [capture off]".to_string(), |p| format!(
                " into {}",
                p.display()
            ))
    );
    let mut tasks = JoinSet::new();
    accept(&config, &listener, &shared, &mut tasks, shutdown).await;
    drop(listener);
    drain(&mut tasks, &phase_tx, config.shutdown_grace).await;
    let sink_stats = shared.sink.stats_handle();
    let shared = Arc::into_inner(shared);
    // Every connection task is over: this was the last sender, the writer drains.
    let stats = shared.map(|s| s.stats).unwrap_or_default();
    if let Some(writer) = writer
        && let Some(file) = writer.finish()
    {
        tracing::debug!("capture: {} chunks, {} bytes", file.chunks, file.file_bytes);
    }
    // After finish(): `written` counts the last chunk, `dropped` what a failure lost.
    Ok(summary(&config, &stats, &sink_stats))
}

/// The capture's sink and writer thread, or a disabled sink without `--out`.
fn open_capture(
    config: &Config,
    file: Option<std::fs::File>,
    server_version: Option<&str>,
    origin: Instant,
) -> Result<(Sink, Option<SinkWriter>), Error> {
    let (Some(path), Some(file)) = (&config.out, file) else {
        return Ok((Sink::disabled(), None));
    };
    let meta = Meta {
        tool: format!("recorder {}", env!("CARGO_PKG_VERSION")),
        started_unix_ns: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(0))
            .unwrap_or(0),
        upstream: config.upstream.clone(),
        server_version: server_version.unwrap_or_default().to_string(),
        redacted: config.redact,
        labels: config
            .labels
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let (sink, writer) = sink::open(
        file,
        path,
        &meta,
        config.capture_queue,
        WriterOptions::default(),
        origin,
    )?;
    Ok((sink, Some(writer)))
}

/// Accepts clients until `shutdown` resolves, spawning a task for each into `tasks`
/// (reaping finished ones as it goes); also enforces the capture limits.
async fn accept(
    config: &Config,
    listener: &TcpListener,
    shared: &Arc<Shared>,
    tasks: &mut JoinSet<()>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    // Bounds concurrent connections (each holds two sockets and two buffers).
    let slots = Arc::new(Semaphore::new(config.max_connections));
    tokio::pin!(shutdown);
    let limit_deadline = config.max_capture_time.map(|d| Instant::now() + d);
    let mut limit_check = tokio::time::interval(Duration::from_secs(1));
    let resume = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(resume);
    let mut paused = false;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            () = &mut resume, if paused => paused = false,
            accepted = listener.accept(), if !paused => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Logged once per run of failures, not ten times a second.
                        if !std::mem::replace(&mut failing, true) {
                            tracing::warn!("accept failed: {e}; retrying every {ACCEPT_BACKOFF:?}");
                        }
                        paused = true;
                        resume.as_mut().reset(tokio::time::Instant::now() + ACCEPT_BACKOFF);
                        continue;
                    }
                };
                failing = false;
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "refused: --max-connections {} reached", config.max_connections);
                    drop(stream);
                    continue;
                };
                let shared = shared.clone();
                tasks.spawn(async move {
                    handle(stream, peer, shared).await;
                    drop(permit);
                });
            }
            _ = limit_check.tick() => {
                let over_time = limit_deadline.is_some_and(|d| Instant::now() >= d);
                let over_size = config.max_capture_bytes.is_some_and(|max| {
                    config.out.as_ref().and_then(|p| std::fs::metadata(p).ok()).is_some_and(|m| m.len() >= max)
                });
                if (over_time || over_size) && shared.sink.enabled() {
                    tracing::info!("capture limit reached; relaying continues without capture");
                    shared.sink.stop();
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
}

/// Shuts the connections down: idle ones close at once, busy ones get `grace` to finish
/// their command, then are cut; each writes its ConnClose (reason Shutdown) itself.
async fn drain(tasks: &mut JoinSet<()>, phase: &watch::Sender<Phase>, grace: Duration) {
    phase.send_replace(Phase::Draining);
    if join_within(tasks, grace).await {
        return;
    }
    tracing::info!(
        "{} connection(s) still busy after the {grace:?} grace period: cutting them",
        tasks.len()
    );
    phase.send_replace(Phase::Stopping);
    if !join_within(tasks, STOP_WAIT).await {
        // Stuck in a write to a client that does not read: nothing more to capture.
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
}

/// Waits for every task to end, for at most `limit`; whether they all did.
async fn join_within(tasks: &mut JoinSet<()>, limit: Duration) -> bool {
    tokio::time::timeout(limit, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_ok()
}

/// The line printed at exit.
fn summary(config: &Config, stats: &Stats, sink_stats: &SinkStats) -> String {
    let (written, dropped) = (
        sink_stats.written.load(Ordering::Relaxed),
        sink_stats.dropped.load(Ordering::Relaxed),
    );
    let failed = if sink_stats.failed.load(Ordering::Relaxed) {
        " (the capture file failed: see the log)"
    } else {
        ""
    };
    format!(
        "recorder: {} connections ({} failed), {} commands, {} MB up / {} MB down, capture: {}",
        stats.connections.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.commands.load(Ordering::Relaxed),
        stats.bytes_up.load(Ordering::Relaxed) / 1_000_000,
        stats.bytes_down.load(Ordering::Relaxed) / 1_000_000,
        match &config.out {
            None => "off".to_string(),
            Some(p) => format!(
                "{written} records to {}, {dropped} dropped{failed}",
                p.display()
            ),
        }
    )
}

/// The upstream's version string from its greeting, for the capture header.
async fn probe_upstream(upstream: &str) -> Option<String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(upstream))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .ok()?
        .ok()?;
    crate::codec::handshake::server_version(buf.get(..n)?)
}
