//! StatsD export (DogStatsD tags) through `metrics` and metrics-exporter-statsd, set up
//! one way for every binary: a bounded queue in front of a buffered, non-blocking UDP
//! socket. The exporter builds the same pair itself, but keeps it private; here we keep a
//! handle, so that [`flush`] can send what is still queued and the last, partly filled
//! datagram when the process is done (with the exporter's own sink they are lost).

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use cadence::{BufferedUdpMetricSink, MetricSink, QueuingMetricSink};
use metrics_exporter_statsd::StatsdBuilder;

/// One datagram: under the 1472-byte UDP payload of a 1500 MTU, with room for IP
/// options, as statsd servers expect.
const DATAGRAM: usize = 1432;

/// How long [`flush`] waits for the queue to drain.
const DRAIN: Duration = Duration::from_secs(1);

/// The installed exporter's queue.
static SINK: OnceLock<Arc<QueuingMetricSink>> = OnceLock::new();

/// Our handle on the exporter's sink.
struct SharedSink(Arc<QueuingMetricSink>);

impl MetricSink for SharedSink {
    fn emit(&self, metric: &str) -> std::io::Result<usize> {
        self.0.emit(metric)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Why statsd export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StatsdError {
    #[error("expected HOST:PORT")]
    Address,
    #[error("opening the UDP socket")]
    Socket(#[source] std::io::Error),
    #[error("building the exporter: {0}")]
    Exporter(String),
    #[error("a metrics recorder is already installed in this process")]
    AlreadyInstalled,
}

/// Installs the process's metrics recorder: statsd at `addr` (HOST:PORT), at most
/// `queue` metrics waiting for the socket (past that the exporter drops them, never
/// blocking the caller), every metric tagged with `tags`. A process has one recorder:
/// a second install fails.
pub fn install(addr: &str, queue: usize, tags: &[(&str, &str)]) -> Result<(), StatsdError> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
        .ok_or(StatsdError::Address)?;
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(StatsdError::Socket)?;
    socket.set_nonblocking(true).map_err(StatsdError::Socket)?;
    let udp = BufferedUdpMetricSink::with_capacity((host, port), socket, DATAGRAM)
        .map_err(|e| StatsdError::Exporter(e.to_string()))?;
    let sink = Arc::new(QueuingMetricSink::with_capacity(udp, queue));
    let mut builder = StatsdBuilder::from(host, port)
        .with_queue_size(queue)
        .with_buffer_size(DATAGRAM)
        .with_sink(SharedSink(sink.clone()));
    for (key, value) in tags {
        builder = builder.with_default_tag(key, value);
    }
    let recorder = builder
        .build(None)
        .map_err(|e| StatsdError::Exporter(e.to_string()))?;
    metrics::set_global_recorder(recorder).map_err(|_| StatsdError::AlreadyInstalled)?;
    let _ = SINK.set(sink);
    Ok(())
}

/// Sends what is still queued (waiting up to a second for the queue to drain), then the
/// partly filled datagram. Call it when the process is done sending; without
/// [`install`] it does nothing.
pub fn flush() {
    let Some(sink) = SINK.get() else { return };
    let deadline = Instant::now() + DRAIN;
    while sink.queued() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = sink.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_metrics_reach_the_server_on_flush() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let addr = server.local_addr().unwrap().to_string();
        assert!(install("no-port", 16, &[]).is_err(), "HOST:PORT");
        install(&addr, 16, &[("app", "test")]).unwrap();
        // Far less than a datagram: it stays buffered until the flush.
        metrics::counter!("cli.test").increment(1);
        flush();
        let mut buf = [0u8; DATAGRAM];
        let n = server.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.contains("cli.test:1|c"), "{text}");
        assert!(text.contains("app:test"), "{text}");
    }
}
