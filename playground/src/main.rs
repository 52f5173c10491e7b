//! `playground`: run the whole story locally, or keep the stack up to experiment.

mod dashboard;
mod demo;
mod events;
mod live;
mod procs;
mod replay;
mod stack;
mod stage;
mod targets;
mod tools;
mod vitess;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "What will sharding do to my app's queries? One command, real servers."
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Seed, record the shop, replay against MariaDB and Vitess, compare.
    Demo(demo::DemoArgs),
    /// Start MariaDB or Vitess, the recorder, the shop, Telegraf and InfluxDB; Ctrl-C stops.
    Up(stack::UpArgs),
    /// Stop whatever an interrupted or crashed playground left running.
    Down {
        #[arg(long)]
        repo: Option<PathBuf>,
    },
    /// Show what the last playground started and whether it still runs.
    Status,
    /// Serve the live dashboard for an InfluxDB holding this project's metrics.
    Dashboard(dashboard::DashboardArgs),
    /// Write one event (a marker on the dashboard's charts) to InfluxDB.
    Event(events::EventArgs),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    // Its output is short progress and status lines (println!): a reader that leaves
    // early ends the playground as it does the other binaries.
    cli::exit_quietly_on_closed_stdout();
    // Only the commands that start servers take over Ctrl-C (to stop them first); the
    // dashboard and the rest keep the default, which simply ends them.
    let result = match args.command {
        Cmd::Demo(args) => run_interruptible(move || demo::run(args), &install_interrupt_handler()),
        Cmd::Up(args) => run_interruptible(move || stack::up(args), &install_interrupt_handler()),
        Cmd::Down { repo } => stack::down(repo),
        Cmd::Status => stack::status(),
        Cmd::Dashboard(args) => dashboard::run(args),
        Cmd::Event(args) => events::run(args),
    };
    cli::exit("playground", result.map(|()| ExitCode::SUCCESS))
}

type Interrupted = std::sync::mpsc::Receiver<()>;

/// Ctrl-C / SIGTERM arrive on a small tokio runtime thread and are forwarded as one
/// message; the stages themselves are plain blocking code.
fn install_interrupt_handler() -> Interrupted {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(stop) = cli::shutdown_signal() else {
                return;
            };
            stop.await;
            let _ = tx.send(());
        });
    });
    rx
}

/// Runs `work` on its own thread; if interrupted first, undoes what it started (Vitess
/// clusters via their script; direct children die with us through PDEATHSIG) and exits.
fn run_interruptible(
    work: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
    interrupted: &Interrupted,
) -> anyhow::Result<()> {
    let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let _ = done_tx.send(work());
    });
    loop {
        if let Ok(result) = done_rx.recv_timeout(std::time::Duration::from_millis(100)) {
            return result;
        }
        if interrupted.try_recv().is_ok() {
            eprintln!("\ninterrupted: stopping everything the playground started");
            let _ = stack::down(None);
            std::process::exit(130);
        }
    }
}
