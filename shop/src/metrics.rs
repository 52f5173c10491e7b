//! StatsD metrics (metrics + metrics-exporter-statsd), all in milliseconds:
//! `shop.request.latency` {route, status} from `shop serve`, and
//! `shop.scenario.latency` {scenario, outcome} and `shop.client.latency` {route, status}
//! from `shop drive`. Without `--statsd` the calls are no-ops (no recorder installed).

use std::time::Duration;

/// Metrics waiting for the UDP socket. When the collector is slow or gone, the exporter
/// drops rather than queue more: metrics must never slow the shop down.
const QUEUE: usize = 8192;

/// Installs the StatsD exporter for `HOST:PORT` as the process's metrics recorder, every
/// metric tagged `app`; `cli::statsd::flush` sends the last of them at exit.
pub fn install(addr: &str, app: &str) -> Result<(), cli::statsd::StatsdError> {
    cli::statsd::install(addr, QUEUE, &[("app", app)])
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
