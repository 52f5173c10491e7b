//! `recorder`: put it between an application and its database.

use std::process::ExitCode;

use anyhow::Context as _;
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
    if let Some(addr) = &config.statsd {
        cli::statsd::install(addr, STATSD_QUEUE, &[])
            .with_context(|| format!("--statsd {addr:?}"))?;
    }
    let summary = runtime.block_on(async {
        // Before listening: a SIGTERM as soon as the port answers must stop the recorder
        // cleanly, not kill it (a test that signals then saw it).
        let shutdown = cli::shutdown_signal()?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        Ok(recorder::listener::serve(config, listener, shutdown).await?)
    });
    // The last datagram, partly filled, would be lost with the process.
    cli::statsd::flush();
    summary
}

/// Metrics waiting for the UDP socket: bounded so a stalled collector never holds
/// memory (past it the exporter drops, never blocking a relay).
const STATSD_QUEUE: usize = 10_000;
