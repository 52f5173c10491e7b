//! StatsD metrics (metrics + metrics-exporter-statsd), all in milliseconds:
//! `shop.request.latency` {route, status} from `shop serve`, and
//! `shop.scenario.latency` {scenario, outcome} and `shop.client.latency` {route, status}
//! from `shop drive`. Without `--statsd` the calls are no-ops (no recorder installed).

use std::time::Duration;

use metrics_exporter_statsd::StatsdBuilder;

/// Metrics waiting for the UDP socket. When the collector is slow or gone, the exporter
/// drops rather than queue more: metrics must never slow the shop down.
const QUEUE: usize = 8192;
/// One UDP datagram: below the loopback MTU, and small enough for any network.
const DATAGRAM: usize = 1432;

/// Installs the StatsD exporter for `HOST:PORT` as the process's metrics recorder.
pub fn install(addr: &str, app: &str) -> anyhow::Result<()> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
        .ok_or_else(|| anyhow::anyhow!("--statsd {addr:?}: expected HOST:PORT"))?;
    let recorder = StatsdBuilder::from(host, port)
        .with_queue_size(QUEUE)
        .with_buffer_size(DATAGRAM)
        .with_default_tag("app", app)
        .build(None)
        .map_err(|e| anyhow::anyhow!("--statsd {addr}: {e}"))?;
    metrics::set_global_recorder(recorder).map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
    Ok(())
}

pub fn request(route: &'static str, status: u16, elapsed: Duration) {
    metrics::histogram!("shop.request.latency", "route" => route, "status" => status.to_string())
        .record(elapsed.as_secs_f64() * 1e3);
}

pub fn client_request(route: &'static str, status: u16, elapsed: Duration) {
    metrics::histogram!("shop.client.latency", "route" => route, "status" => status.to_string())
        .record(elapsed.as_secs_f64() * 1e3);
}

pub fn scenario(name: &'static str, ok: bool, elapsed: Duration) {
    metrics::histogram!("shop.scenario.latency", "scenario" => name, "outcome" => if ok { "ok" } else { "error" })
        .record(elapsed.as_secs_f64() * 1e3);
}
