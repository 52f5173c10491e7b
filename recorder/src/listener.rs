//! The accept loop, clean shutdown and the summary line.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use captures::{Meta, WriterOptions};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

use crate::config::Config;
use crate::relay::{Shared, Stats, handle};
use crate::sink::{self, Sink};

/// Runs until SIGINT/SIGTERM: then stops accepting, lets open connections finish their
/// current exchange (up to a grace period), flushes and closes the capture.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<String> {
    let tls = crate::tls::Tls::from_config(&config)?;
    let server_version = probe_upstream(&config.upstream).await;
    let (sink, writer) = match &config.out {
        Some(path) => {
            let meta = Meta {
                tool: format!("recorder {}", env!("CARGO_PKG_VERSION")),
                started_unix_ns: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map(|d| u64::try_from(d.as_nanos()).unwrap_or(0))
                    .unwrap_or(0),
                upstream: config.upstream.clone(),
                server_version: server_version.clone().unwrap_or_default(),
                redacted: config.redact,
                labels: config
                    .labels
                    .iter()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
            let (sink, writer) =
                sink::open(path, &meta, config.capture_queue, WriterOptions::default())?;
            (sink, Some(writer))
        }
        None => (Sink::disabled(), None),
    };
    let shared = Arc::new(Shared {
        upstream: config.upstream.clone(),
        sink,
        origin: Instant::now(),
        redact: config.redact,
        next_conn: AtomicU64::new(1),
        stats: Stats::default(),
        tls,
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

    // Bounds concurrent connections (each holds two sockets and two buffers).
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut tasks = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    let limit_deadline = config.max_capture_time.map(|d| Instant::now() + d);
    let mut limit_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
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
                    shared.sink.stats().failed.store(true, Ordering::Relaxed);
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    // Let connections finish briefly, then cut them: the capture must be closed promptly.
    let grace = tokio::time::sleep(Duration::from_secs(2));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            _ = &mut grace => { tasks.abort_all(); break; }
            next = tasks.join_next() => if next.is_none() { break },
        }
    }
    while tasks.join_next().await.is_some() {}
    let stats = &shared.stats;
    let sink_stats = shared.sink.stats();
    let (written, dropped) = (
        sink_stats.written.load(Ordering::Relaxed),
        sink_stats.dropped.load(Ordering::Relaxed),
    );
    let summary = format!(
        "recorder: {} connections ({} failed), {} commands, {} MB up / {} MB down, capture: {}",
        stats.connections.load(Ordering::Relaxed),
        stats.failed.load(Ordering::Relaxed),
        stats.commands.load(Ordering::Relaxed),
        stats.bytes_up.load(Ordering::Relaxed) / 1_000_000,
        stats.bytes_down.load(Ordering::Relaxed) / 1_000_000,
        match &config.out {
            None => "off".to_string(),
            Some(p) => format!("{} records to {}, {dropped} dropped", written, p.display()),
        }
    );
    drop(shared);
    if let Some(writer) = writer
        && let Some(file) = writer.finish()
    {
        tracing::debug!("capture: {} chunks, {} bytes", file.chunks, file.file_bytes);
    }
    Ok(summary)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
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
    let payload = buf.get(4..n)?;
    if payload.first() != Some(&10) {
        return None;
    }
    let end = payload.iter().skip(1).position(|b| *b == 0)? + 1;
    Some(String::from_utf8_lossy(&payload[1..end]).into_owned())
}
