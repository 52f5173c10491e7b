//! `recorder`: put it between an application and its database.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cadence::{BufferedUdpMetricSink, MetricSink, QueuingMetricSink};
use clap::Parser;
use recorder::config::Config;

fn main() -> ExitCode {
    let config = Config::parse();
    cli::init_logging(&config.log);
    cli::exit_quietly_on_closed_stdout();
    cli::exit(
        "recorder",
        run(config).map(|summary| {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }),
    )
}

fn run(config: Config) -> anyhow::Result<String> {
    // One thread: a current-thread runtime, where a wake-up is a function call rather
    // than a hand-off between the accept thread and a worker (measured in
    // bench/recorder.sh). More threads: the work-stealing runtime.
    let runtime = if config.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        let mut runtime = tokio::runtime::Builder::new_multi_thread();
        if config.threads > 0 {
            runtime.worker_threads(config.threads);
        }
        runtime.enable_all().build()?
    };
    let statsd = config.statsd.as_deref().map(install_statsd).transpose()?;
    let summary = runtime.block_on(async {
        // Before listening: a SIGTERM as soon as the port answers must stop the recorder
        // cleanly, not kill it (a test that signals then saw it).
        let shutdown = cli::shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        recorder::listener::serve(config, listener, shutdown).await
    });
    if let Some(sink) = statsd {
        flush_statsd(&sink);
    }
    summary
}

/// Metrics waiting for the UDP socket: bounded so a stalled collector never holds
/// memory (past it the exporter drops, never blocking a relay).
const STATSD_QUEUE: usize = 10_000;
/// One datagram: under the 1472-byte UDP payload of a 1500 MTU.
const DATAGRAM: usize = 1432;

/// Our handle on the exporter's sink, so the last datagram can be flushed at exit.
struct SharedSink(Arc<QueuingMetricSink>);

impl MetricSink for SharedSink {
    fn emit(&self, metric: &str) -> std::io::Result<usize> {
        self.0.emit(metric)
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Installs the statsd exporter on a sink we keep: the exporter's own would lose what
/// is still queued or buffered when the process exits (the last drops, typically).
fn install_statsd(addr: &str) -> anyhow::Result<Arc<QueuingMetricSink>> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
        .ok_or_else(|| anyhow::anyhow!("--statsd {addr:?}: expected HOST:PORT"))?;
    let socket = std::net::UdpSocket::bind("0.0.0.0:0")?;
    socket.set_nonblocking(true)?;
    let udp = BufferedUdpMetricSink::with_capacity((host, port), socket, DATAGRAM)?;
    let queue = Arc::new(QueuingMetricSink::with_capacity(udp, STATSD_QUEUE));
    let recorder = metrics_exporter_statsd::StatsdBuilder::from(host, port)
        .with_queue_size(STATSD_QUEUE)
        .with_buffer_size(DATAGRAM)
        .with_sink(SharedSink(queue.clone()))
        .build(None)?;
    metrics::set_global_recorder(recorder)?;
    Ok(queue)
}

/// Sends what is still queued (waiting up to a second), then the partly filled datagram.
fn flush_statsd(sink: &QueuingMetricSink) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while sink.queued() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = sink.flush();
}
