//! `shop seed | serve | drive`: see the crate docs and the README.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use shop::api::{self, App};
use shop::drive::{self, DriveConfig, Mix};
use shop::seed::{self, SeedConfig};
use shop::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "shop",
    version,
    about = "A small headless web shop, its seeder and its load driver"
)]
struct Cli {
    /// Log filter (RUST_LOG syntax).
    #[arg(long, global = true, env = "SHOP_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create the schema if missing and fill it deterministically from a seed.
    Seed(SeedArgs),
    /// Serve the JSON API.
    Serve(ServeArgs),
    /// Run shopping scenarios as parallel virtual users.
    Drive(DriveArgs),
}

#[derive(Debug, Args)]
struct SeedArgs {
    /// mysql://user:pass@host:port/db (vtgate: no db, tables route by name).
    #[arg(long, env = "SHOP_DB")]
    db: String,
    #[arg(long, default_value_t = 1000)]
    customers: u64,
    #[arg(long, default_value_t = 500)]
    products: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Empty the shop's tables first.
    #[arg(long)]
    reset: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[arg(long, env = "SHOP_DB")]
    db: String,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: String,
    /// Database connections at most (the shop's pool).
    #[arg(long, default_value_t = 32)]
    pool_size: usize,
    /// Send metrics to a StatsD server (e.g. Telegraf) at HOST:PORT.
    #[arg(long, env = "SHOP_STATSD")]
    statsd: Option<String>,
    /// Connections served at once; more wait in the kernel's accept queue. Bounds
    /// memory and file descriptors whatever clients do.
    #[arg(long, default_value_t = api::MAX_CONNECTIONS)]
    max_connections: usize,
    /// Close a connection that has not sent a whole request head this long after
    /// opening or after its last response, so idle sockets cannot hold every slot.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    header_read_timeout: Duration,
}

#[derive(Debug, Args)]
struct DriveArgs {
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value_t = 16)]
    users: usize,
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Scenarios per second across all users (open loop); closed loop without it.
    #[arg(long)]
    rate: Option<f64>,
    /// Scenario weights.
    #[arg(
        long,
        default_value = "browse=50,search=20,signup=5,cart=15,checkout=10"
    )]
    mix: Mix,
    /// Seed of the users' random choices (the same seed makes the same choices).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, env = "SHOP_STATSD")]
    statsd: Option<String>,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Double the users each step (of --duration) until throughput stops rising.
    #[arg(long)]
    ramp: bool,
    /// Upper bound on users for --ramp.
    #[arg(long, default_value_t = 512)]
    max_users: usize,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::init_logging(&args.log);
    cli::exit_quietly_on_closed_stdout();
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the runtime")
        .and_then(|runtime| runtime.block_on(run(args.command)));
    // The last metrics, queued or in a partly filled datagram, would die with the process.
    cli::statsd::flush();
    cli::exit("shop", result.map(|()| ExitCode::SUCCESS))
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Seed(args) => seed_command(args).await,
        Command::Serve(args) => serve_command(args).await,
        Command::Drive(args) => drive_command(args).await,
    }
}

async fn seed_command(args: SeedArgs) -> anyhow::Result<()> {
    let SeedArgs {
        db,
        customers,
        products,
        seed,
        reset,
    } = args;
    let cfg = SeedConfig {
        customers,
        products,
        seed,
        reset,
        progress: true,
    };
    let r = seed::seed(&db, &cfg).await.context("seeding")?;
    writeln!(
        cli::stdout(),
        "seeded {} products, {} customers, {} addresses, {} orders ({} items) with seed {seed} in {:.1} s ({:.0} rows/s)",
        r.products,
        r.customers,
        r.addresses,
        r.orders,
        r.order_items,
        r.seconds,
        r.rows() as f64 / r.seconds.max(1e-9)
    )?;
    Ok(())
}

async fn serve_command(args: ServeArgs) -> anyhow::Result<()> {
    if let Some(addr) = &args.statsd {
        shop::metrics::install(addr, "shop").with_context(|| format!("--statsd {addr:?}"))?;
    }
    let store = Store::new(&args.db, args.pool_size)?;
    let counts = store
        .counts()
        .await
        .context("reading the catalogue (is the database seeded?)")?;
    // Before listening: a SIGTERM as soon as the port answers must stop the shop
    // cleanly (closing its pool), not kill it with the default action.
    let shutdown = cli::shutdown_signal()?;
    let listen = &args.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(
        "shop on http://{} ({} products, {} customers)",
        listener.local_addr()?,
        counts.products,
        counts.customers
    );
    let app = Arc::new(App {
        store: store.clone(),
        counts,
    });
    let limits = api::Limits {
        max_connections: args.max_connections,
        header_read_timeout: args.header_read_timeout,
    };
    api::serve_with(app, listener, shutdown, limits).await?;
    store.close().await;
    Ok(())
}

async fn drive_command(args: DriveArgs) -> anyhow::Result<()> {
    if let Some(addr) = &args.statsd {
        shop::metrics::install(addr, "driver").with_context(|| format!("--statsd {addr:?}"))?;
    }
    let cfg = DriveConfig {
        url: args.url,
        users: args.users,
        duration: args.duration,
        rate: args.rate,
        mix: args.mix,
        seed: args.seed,
        progress: !args.ramp,
    };
    if args.ramp {
        let (steps, knee) = drive::ramp(&cfg, args.max_users).await?;
        writeln!(
            cli::stdout(),
            "throughput stopped rising beyond {knee} users"
        )?;
        if let Some(path) = args.json {
            let report = serde_json::json!({"steps": steps, "knee_users": knee});
            write_json(&path, &report)?;
        }
        return Ok(());
    }
    let report = drive::drive(&cfg).await?;
    write!(cli::stdout(), "{}", drive::render(&report))?;
    if let Some(path) = args.json {
        write_json(&path, &report)?;
    }
    Ok(())
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_vec_pretty(value)?)
        .with_context(|| format!("writing {}", path.display()))
}
