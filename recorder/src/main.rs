//! `recorder`: put it between an application and its database.

use std::process::ExitCode;

use clap::Parser;
use recorder::config::Config;

fn main() -> ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&config.log))
        .with_writer(std::io::stderr)
        .init();
    match run(config) {
        Ok(summary) => {
            eprintln!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("recorder: {e:#}");
            ExitCode::FAILURE
        }
    }
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
    runtime.block_on(async {
        if let Some(addr) = &config.statsd {
            install_statsd(addr)?;
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
        recorder::listener::serve(config, listener, recorder::listener::shutdown_signal()).await
    })
}

fn install_statsd(addr: &str) -> anyhow::Result<()> {
    let (host, port) = addr
        .rsplit_once(':')
        .and_then(|(h, p)| p.parse::<u16>().ok().map(|p| (h, p)))
        .ok_or_else(|| anyhow::anyhow!("--statsd {addr:?}: expected HOST:PORT"))?;
    // Queue bounded so a stalled collector never holds memory; 1432-byte datagrams.
    let recorder = metrics_exporter_statsd::StatsdBuilder::from(host, port)
        .with_queue_size(10_000)
        .with_buffer_size(1432)
        .build(None)?;
    metrics::set_global_recorder(recorder)?;
    Ok(())
}
