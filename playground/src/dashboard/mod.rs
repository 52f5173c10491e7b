//! The live dashboard: a page served by the playground that charts, every 2 s, what the
//! tools send to InfluxDB (through Telegraf) — replay load and errors, latency, the
//! slowest classes, schedule lag, the shop's routes, the recorder — with events
//! (replays, ramp steps, reshard phases) as vertical markers.
//!
//! The browser talks only to this server; the server asks InfluxDB bounded InfluxQL
//! queries (see `queries`) and answers with HTML fragments holding server-drawn SVG.

mod chart;
mod classes;
pub mod influx;
mod page;
mod queries;
mod server;
mod views;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

pub use classes::ClassNames;
pub use influx::Influx;
pub use server::now_ms;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// InfluxDB's HTTP API holding this project's metrics, e.g. http://localhost:8086
    /// (the compose stack's).
    #[arg(long, env = "SQLREPLAY_INFLUX_URL")]
    pub influx: String,
    /// The database Telegraf writes to.
    #[arg(long, default_value = "sqlreplay")]
    pub database: String,
    /// Where to serve the page (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// `replayer inspect --json --top 10000 CAPTURE` output: the slowest-classes legend
    /// then shows each class's fingerprint beside its id. Repeatable.
    #[arg(long)]
    pub classes: Vec<PathBuf>,
}

/// A dashboard started beside the rest of the playground.
#[derive(Debug)]
pub struct Dashboard {
    pub addr: SocketAddr,
    /// Teach it a capture's class fingerprints (`replayer inspect --json`).
    pub classes: ClassNames,
}

/// `playground dashboard`: serves the page until interrupted.
pub fn run(args: DashboardArgs) -> Result<()> {
    let influx = Influx::new(&args.influx, &args.database)?;
    let names = ClassNames::default();
    for path in &args.classes {
        let json =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        names.learn(&json).with_context(|| {
            format!("{} is not `replayer inspect --json` output", path.display())
        })?;
    }
    let listener = bind(args.listen)?;
    announce(&listener)?;
    runtime()?.block_on(server::serve(listener, influx, names))?;
    Ok(())
}

/// Starts the dashboard on its own thread beside the rest of the playground (which is
/// blocking code) and prints its address. It lives as long as the process.
pub fn start(influx_url: &str, port: u16) -> Result<Dashboard> {
    let influx = Influx::new(influx_url, testkit::MetricsStack::DATABASE)?;
    let listener = bind(SocketAddr::from(([127, 0, 0, 1], port)))?;
    let addr = announce(&listener)?;
    let rt = runtime()?;
    let classes = ClassNames::default();
    let names = classes.clone();
    std::thread::Builder::new()
        .name("dashboard".into())
        .spawn(move || {
            if let Err(e) = rt.block_on(server::serve(listener, influx, names)) {
                eprintln!("playground: the dashboard stopped: {e}");
            }
        })
        .context("starting the dashboard thread")?;
    Ok(Dashboard { addr, classes })
}

fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr).with_context(|| format!("serving the dashboard on {addr}"))
}

/// Prints the one line people (and tests) look for.
fn announce(listener: &TcpListener) -> Result<SocketAddr> {
    let addr = listener.local_addr()?;
    println!("dashboard http://{addr}/");
    Ok(addr)
}

/// Two worker threads: the machine is shared with the servers being measured, and the
/// dashboard's work is a few small queries every 2 s.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("dashboard")
        .enable_all()
        .build()
        .context("starting the dashboard's runtime")
}
