//! statsd (DogStatsD tags) through `metrics` + metrics-exporter-statsd.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cadence::{BufferedUdpMetricSink, MetricSink, QueuingMetricSink};
use captures::Executed;
use captures::fingerprint::class_id_hex;
use metrics::Histogram;
use metrics_exporter_statsd::StatsdBuilder;

use crate::error::Error;

/// Metrics waiting for the UDP socket. Past this the exporter drops (and never blocks a
/// replay connection): a replay at 50k commands/s fills it in 0.4 s if Telegraf stalls.
const QUEUE: usize = 20_000;
/// One datagram: stays under the 1472-byte UDP payload of a 1500 MTU with room for IP
/// options, as statsd servers expect.
const DATAGRAM: usize = 1432;

/// Latency and lag histograms per (class, command kind), so labels are built once.
type Handles = HashMap<(u64, u8), (Histogram, Histogram)>;

static SINK: std::sync::OnceLock<Arc<QueuingMetricSink>> = std::sync::OnceLock::new();

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

/// Sends what is still queued or buffered (call at the end of a run): waits up to a
/// second for the queue to drain, then flushes the partly filled datagram.
pub fn flush() {
    let Some(sink) = SINK.get() else { return };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while sink.queued() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let _ = sink.flush();
}

/// Sends `replay.query.latency` / `replay.query.lag` (ms, as statsd histograms) and
/// `replay.errors`, tagged class, cmd, target and run.
#[derive(Debug, Clone)]
pub struct Metrics {
    target: String,
    run: String,
    handles: Arc<Mutex<Handles>>,
}

impl Metrics {
    /// Metrics for one run, sending to `addr` (the process-wide statsd recorder is
    /// installed on first use; later runs, e.g. of a ramp, reuse it).
    pub fn new(addr: &str, target: &str, run: &str) -> Result<Self, Error> {
        static INSTALLED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
        INSTALLED
            .get_or_init(|| Self::install(addr).map_err(|e| e.to_string()))
            .clone()
            .map_err(|reason| Error::Statsd {
                addr: addr.into(),
                reason,
            })?;
        Ok(Metrics {
            target: target.into(),
            run: run.into(),
            handles: Arc::new(Mutex::new(HashMap::new())),
        })
    }

    fn install(addr: &str) -> Result<(), Error> {
        let bad = |reason: String| Error::Statsd {
            addr: addr.into(),
            reason,
        };
        let (host, port) = addr
            .rsplit_once(':')
            .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
            .ok_or_else(|| bad("expected HOST:PORT".into()))?;
        // The exporter's own sink is the same pair (a bounded queue in front of a
        // buffered UDP socket), but private: we build it so `flush` can push out the
        // last partly filled datagram when a run ends.
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").map_err(|e| bad(e.to_string()))?;
        socket
            .set_nonblocking(true)
            .map_err(|e| bad(e.to_string()))?;
        let udp = BufferedUdpMetricSink::with_capacity((host, port), socket, DATAGRAM)
            .map_err(|e| bad(e.to_string()))?;
        let queue = Arc::new(QueuingMetricSink::with_capacity(udp, QUEUE));
        let _ = SINK.set(queue.clone());
        let recorder = StatsdBuilder::from(host, port)
            .with_queue_size(QUEUE)
            .with_buffer_size(DATAGRAM)
            .with_sink(SharedSink(queue))
            .build(None)
            .map_err(|e| Error::Statsd {
                addr: addr.into(),
                reason: e.to_string(),
            })?;
        metrics::set_global_recorder(recorder).map_err(|e| Error::Statsd {
            addr: addr.into(),
            reason: e.to_string(),
        })
    }

    pub fn record(&self, e: &Executed) {
        let key = (e.class, e.kind as u8);
        let handles = {
            let Ok(mut map) = self.handles.lock() else {
                return;
            };
            map.entry(key)
                .or_insert_with(|| {
                    let labels = [
                        ("class", class_id_hex(e.class)),
                        ("cmd", e.kind.as_str().to_string()),
                        ("target", self.target.clone()),
                        ("run", self.run.clone()),
                    ];
                    (
                        metrics::histogram!("replay.query.latency", &labels),
                        metrics::histogram!("replay.query.lag", &labels),
                    )
                })
                .clone()
        };
        handles.0.record(e.latency_ns() as f64 / 1e6);
        handles.1.record(e.lag_ns() as f64 / 1e6);
        if let Some(code) = e.error {
            metrics::counter!(
                "replay.errors",
                "class" => class_id_hex(e.class),
                "code" => code.to_string(),
                "target" => self.target.clone(),
                "run" => self.run.clone()
            )
            .increment(1);
        }
    }
}
