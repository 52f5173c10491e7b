//! `replayer`: inspect, run, fingerprint, compare, timeline and ramp. This file parses
//! the arguments and hands each command to one function (`commands/`, or the library).

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use commands::ramp::RampArgs;
use commands::run::RunArgs;

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Replay captured MySQL traffic at N× speed and compare runs class by class"
)]
struct Cli {
    /// Log filter (tracing syntax), e.g. `info` or `replayer=debug`.
    #[arg(long, env = "REPLAYER_LOG", default_value = "warn", global = true)]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// What a capture holds: connections, commands by kind, duration, top classes.
    Inspect {
        capture: PathBuf,
        #[arg(long)]
        json: bool,
        /// Classes listed per table.
        #[arg(long, default_value_t = 15)]
        top: usize,
    },
    /// Replay a capture against a target and write a results file.
    Run(RunArgs),
    /// Query classes: JSON lines {"query":..} in, {"fingerprint":..,"id":..} out.
    Fingerprint {
        /// Input file (stdin if absent).
        file: Option<PathBuf>,
        /// Input is SQL statements ending in `;` at end of line (pt-fingerprint's FILE mode).
        #[arg(long)]
        sql: bool,
        /// Output one fingerprint per line instead of JSON.
        #[arg(long)]
        text: bool,
    },
    /// Compare results files class by class (the first is the baseline).
    Compare(replayer::command::compare::CompareArgs),
    /// One run's latency over time, cut into phases at events (e.g. a reshard's cut-overs).
    Timeline(replayer::command::timeline::TimelineArgs),
    /// Replay at increasing speeds until the target saturates.
    Ramp(RampArgs),
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::init_logging(&args.log);
    // Output below goes through cli::stdout; this catches the println!s that do not yet.
    cli::exit_quietly_on_closed_stdout();
    cli::exit("replayer", dispatch(args.command))
}

/// One call per command.
fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Inspect { capture, json, top } => commands::inspect(&capture, json, top),
        Command::Fingerprint { file, sql, text } => {
            commands::fingerprint(file.as_deref(), sql, text)
        }
        Command::Compare(args) => Ok(replayer::command::compare::run(&args)?),
        Command::Timeline(args) => {
            replayer::command::timeline::run(&args, &mut cli::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => commands::run::run(&args),
        Command::Ramp(args) => commands::ramp::ramp(&args),
    }
}
