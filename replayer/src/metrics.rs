//! statsd (DogStatsD tags) through `metrics` + metrics-exporter-statsd.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use captures::Executed;
use captures::fingerprint::class_id_hex;
use metrics::Histogram;

use crate::error::Error;

/// Metrics waiting for the UDP socket. Past this the exporter drops (and never blocks a
/// replay connection): a replay at 50k commands/s fills it in 0.4 s if Telegraf stalls.
const QUEUE: usize = 20_000;

/// Latency and lag histograms per (class, command kind), so labels are built once.
type Handles = HashMap<(u64, u8), (Histogram, Histogram)>;

/// Sends what is still queued or buffered (call at the end of a run): waits up to a
/// second for the queue to drain, then flushes the partly filled datagram.
pub fn flush() {
    cli::statsd::flush();
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
            .get_or_init(|| cli::statsd::install(addr, QUEUE, &[]).map_err(|e| e.to_string()))
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
