//! `replayer`: inspect, run, fingerprint, compare and ramp.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use captures::fingerprint::io::{Input, Output, transform};
use clap::{Args, Parser, Subcommand};
use replayer::run::{Connections, RunConfig, print_summary};
use replayer::target::{Speed, Target, redact_url};

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
    Compare(replayer::compare::CompareArgs),
    /// One run's latency over time, cut into phases at events (e.g. a reshard's cut-overs).
    Timeline(replayer::timeline::TimelineArgs),
    /// Replay at increasing speeds until the target saturates.
    Ramp(RampArgs),
}

/// Order kept across connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Sync {
    /// Each unit on its own schedule.
    None,
    /// Commit order: a unit waits for the commits captured before it.
    Commits,
}

/// Most replay connections per captured connection: beyond, a replay opens more
/// connections than a server accepts (and `--scale` is about load, not fan-out).
const MAX_SCALE: u32 = 1000;

#[derive(Debug, Args)]
struct TargetArgs {
    /// mysql://USER[:PASS]@HOST:PORT[/DB] (password also from MYSQL_PWD).
    #[arg(long)]
    target: String,
    /// Rename a captured database: OLD=NEW (NEW empty: no default database). Repeatable.
    #[arg(long = "db-map")]
    db_map: Vec<String>,
    /// Replay connections per captured connection.
    #[arg(long, default_value_t = 1)]
    scale: u32,
    /// Replay only these classes (16-hex ids from `inspect`). Repeatable.
    #[arg(long = "only-class")]
    only_class: Vec<String>,
    /// Leave out statements that change data (INSERT, UPDATE, DELETE, DDL, ... FOR UPDATE).
    #[arg(long)]
    skip_writes: bool,
    /// Stop after this many errors.
    #[arg(long)]
    max_errors: Option<u64>,
    /// Replay only the first part of the capture, e.g. 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// statsd server (DogStatsD tags), e.g. 127.0.0.1:8125.
    #[arg(long)]
    statsd: Option<String>,
    /// Captured records queued per lane (bounds memory).
    #[arg(long, default_value_t = replayer::run::DEFAULT_READ_AHEAD, hide = true)]
    read_ahead: usize,
    /// `pooled`: units of work on a shared pool of target connections, as the
    /// application's own pool would under N× load; `captured`: one target connection per
    /// captured connection, strictly serial.
    #[arg(long, value_enum, default_value_t = Connections::Pooled)]
    connections: Connections,
    /// Pooled replay: most target connections open at once (default: 4 × the capture's
    /// peak busy connections × speed, at least 16; at --speed max 2 × peak, at least 8).
    #[arg(long)]
    max_connections: Option<usize>,
    /// `commits`: a unit starts only after every transaction that committed before it
    /// in the capture has committed in the replay.
    #[arg(long, value_enum, default_value_t = Sync::None)]
    sync: Sync,
    /// Do not digest the rows of each answer: answers are then compared by row count,
    /// affected rows, warnings and error code only.
    #[arg(long)]
    no_result_digest: bool,
    /// Shell command run before each replay (e.g. a snapshot restore or `shop seed`), so
    /// every run starts from the same state; its failure stops the run.
    #[arg(long)]
    before: Option<String>,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    capture: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
    /// Results file to write.
    #[arg(long)]
    out: PathBuf,
    /// Factor on the captured timeline (0.1 … 100 …) or `max` (back to back).
    #[arg(long, default_value = "1")]
    speed: String,
    /// Name of this run in reports and metrics.
    #[arg(long, default_value = "run")]
    label: String,
    /// Print what would be replayed and exit without connecting.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct RampArgs {
    capture: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
    /// Speeds to try in order.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8,16")]
    speeds: Vec<String>,
    /// Directory for one results file per speed, ramp.json and ramp.html.
    #[arg(long)]
    out: PathBuf,
    /// Saturated when p99 latency exceeds this (ms).
    #[arg(long, default_value_t = 100.0)]
    max_p99: f64,
    /// Saturated when the achieved rate is below this share of the scheduled rate.
    #[arg(long, default_value_t = 0.9)]
    min_rate_share: f64,
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::init_logging(&args.log);
    // Output below goes through cli::stdout; this catches the println!s that do not yet.
    cli::exit_quietly_on_closed_stdout();
    cli::exit("replayer", dispatch(args.command))
}

fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Inspect { capture, json, top } => {
            let i = replayer::inspect::inspect(&capture, top)?;
            let mut out = cli::stdout();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&i)?)?;
            } else {
                replayer::inspect::print_text(&mut out, &i)?;
            }
            i.check()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Fingerprint { file, sql, text } => {
            let input = if sql { Input::Sql } else { Input::JsonLines };
            let output = if text { Output::Text } else { Output::Json };
            let stdout = cli::stdout();
            match file {
                Some(path) => {
                    let f = std::fs::File::open(&path)
                        .with_context(|| format!("opening {}", path.display()))?;
                    transform(
                        BufReader::with_capacity(256 * 1024, f),
                        stdout,
                        input,
                        output,
                    )?
                }
                None => transform(std::io::stdin().lock(), stdout, input, output)?,
            };
            Ok(ExitCode::SUCCESS)
        }
        Command::Compare(args) => replayer::compare::run(&args),
        Command::Timeline(args) => {
            replayer::timeline::run(&args, &mut cli::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => {
            let speed: Speed = args.speed.parse()?;
            if args.dry_run {
                let i = replayer::inspect::inspect(&args.capture, 10)?;
                let mut out = cli::stdout();
                writeln!(
                    out,
                    "would replay {} commands on {} connections (× scale {}) from {}",
                    i.commands,
                    i.connections,
                    args.target.scale,
                    args.capture.display()
                )?;
                match speed {
                    Speed::Factor(f) => writeln!(
                        out,
                        "at {speed}: about {:.1}s of wall time for {:.1}s captured",
                        i.duration_s / f,
                        i.duration_s
                    )?,
                    Speed::Max => writeln!(out, "at max speed: back to back per connection")?,
                }
                writeln!(out, "against {}", redact_url(&args.target.target))?;
                replayer::inspect::print_text(&mut out, &i)?;
                i.check()?;
                return Ok(ExitCode::SUCCESS);
            }
            let cfg = run_config(
                &args.capture,
                &args.target,
                args.out.clone(),
                speed,
                &args.label,
            )?;
            run_before(args.target.before.as_deref())?;
            let rt = replayer::run::runtime()?;
            let summary = rt.block_on(replayer::run::run(cfg))?;
            print_summary(&summary, speed, &args.out);
            if summary.interrupted {
                // The results hold what ran; the caller asked to stop, so no explaining.
                return Ok(ExitCode::from(130));
            }
            if let replayer::verdict::Verdict::Invalid { reason } = &summary.verdict {
                bail!("the run is invalid: {reason}");
            }
            // Against Vitess: how vtgate routes each class, for `compare`.
            let target = Target::parse(
                &args.target.target,
                std::env::var("MYSQL_PWD").ok(),
                &args.target.db_map,
            )?;
            if rt
                .block_on(replayer::routes::is_vtgate(&target))
                .unwrap_or(false)
            {
                match rt.block_on(replayer::routes::explain(&args.capture, &target)) {
                    Ok(routes) => {
                        replayer::routes::write_sidecar(&args.out, &routes)?;
                        let scatter = routes
                            .values()
                            .filter(|r| r.shards.as_deref() == Some("all"))
                            .count();
                        writeln!(
                            cli::stdout(),
                            "vtgate routing: {} classes explained, {scatter} scatter ({}.routes.json)",
                            routes.len(),
                            args.out.display()
                        )?;
                    }
                    Err(e) => eprintln!("replayer: could not explain routes on vtgate: {e}"),
                }
            }
            capture_check(
                &args.capture,
                summary.capture_problem.as_deref(),
                summary.capture_damaged,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ramp(args) => ramp(&args),
    }
}

fn run_config(
    capture: &std::path::Path,
    t: &TargetArgs,
    out: PathBuf,
    speed: Speed,
    label: &str,
) -> Result<RunConfig> {
    if !(1..=MAX_SCALE).contains(&t.scale) {
        bail!("--scale must be between 1 and {MAX_SCALE}, not {}", t.scale);
    }
    if same_file(capture, &out) {
        bail!(
            "--out {} is the capture itself: refusing to overwrite it",
            out.display()
        );
    }
    let target = Target::parse(&t.target, std::env::var("MYSQL_PWD").ok(), &t.db_map)?;
    let only_class = t
        .only_class
        .iter()
        .map(|h| {
            u64::from_str_radix(h, 16)
                .with_context(|| format!("--only-class {h:?} is not a 16-hex class id"))
        })
        .collect::<Result<Vec<_>>>()?;
    let metrics = match &t.statsd {
        Some(addr) => Some(replayer::metrics::Metrics::new(
            addr,
            target.display(),
            label,
        )?),
        None => None,
    };
    Ok(RunConfig {
        capture: capture.to_path_buf(),
        target_url_display: redact_url(&t.target),
        target,
        out,
        speed,
        scale: t.scale.max(1),
        label: label.to_string(),
        only_class,
        skip_writes: t.skip_writes,
        max_errors: t.max_errors,
        duration: t.duration,
        read_ahead: t.read_ahead,
        connections: t.connections,
        max_connections: t.max_connections,
        sync_commits: t.sync == Sync::Commits,
        result_digest: !t.no_result_digest,
        progress: !t.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        metrics,
        handle_signals: true,
    })
}

/// A capture that writes, replayed at several speeds on one database, collides with
/// itself from the second step on (the same keys inserted again): say so up front.
fn warn_if_ramping_writes(args: &RampArgs) -> Result<()> {
    if args.target.before.is_some() || args.target.skip_writes {
        return Ok(());
    }
    let shape = replayer::inspect::shape(&args.capture)
        .with_context(|| format!("reading {}", args.capture.display()))?;
    if shape.writes > 0 {
        eprintln!(
            "replayer: warning: the capture holds {} writes and every step replays them on the \
             same database: from the second step on they collide with the first's rows. \
             Restore the starting state with --before CMD, or leave them out with --skip-writes",
            shape.writes
        );
    }
    Ok(())
}

/// After a replay: a damaged capture fails the command (what came before the damage was
/// replayed and reported), as `inspect` and `timeline` fail on damaged input; a tail cut
/// short by a killed recorder is only a warning.
fn capture_check(capture: &std::path::Path, problem: Option<&str>, damaged: bool) -> Result<()> {
    match problem {
        Some(problem) if damaged => Err(replayer::Error::Damaged {
            path: capture.to_path_buf(),
            problem: problem.to_string(),
        }
        .into()),
        Some(problem) => {
            replayer::inspect::warn_incomplete(capture, problem);
            Ok(())
        }
        None => Ok(()),
    }
}

/// Whether two paths name one file (the second may not exist yet).
fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `--before CMD`: runs it with `sh -c` so every replay starts from the same state; its
/// failure stops the run, showing what it printed.
fn run_before(before: Option<&str>) -> Result<()> {
    let Some(cmd) = before else { return Ok(()) };
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("running --before {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "--before {cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Replays at each speed in turn until the target saturates; writes one results file
/// per speed, ramp.json and ramp.html, and prints the knee.
fn ramp(args: &RampArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let rt = replayer::run::runtime()?;
    warn_if_ramping_writes(args)?;
    let mut steps = Vec::new();
    let mut interrupted = false;
    // Every step reads the same capture: how it ended, from the last step.
    let mut capture_end = (None, false);
    for s in &args.speeds {
        let speed: Speed = s.parse()?;
        let Speed::Factor(factor) = speed else {
            bail!("--speeds must be numbers (max has no scheduled rate to saturate)");
        };
        let label = format!("ramp-{factor}x");
        let out = args.out.join(format!("speed-{factor}x.results"));
        let cfg = run_config(&args.capture, &args.target, out.clone(), speed, &label)?;
        run_before(args.target.before.as_deref())?;
        let summary = rt.block_on(replayer::run::run(cfg))?;
        print_summary(&summary, speed, &out);
        capture_end = (summary.capture_problem.clone(), summary.capture_damaged);
        if summary.interrupted {
            // A cut-short step says nothing about capacity: report the steps before it.
            interrupted = true;
            break;
        }
        let scheduled = summary.scheduled_rate(speed).unwrap_or(0.0);
        let achieved = summary.achieved_rate();
        let p99 = summary.latency.value_at_quantile(0.99) as f64 / 1000.0;
        let saturated = achieved < args.min_rate_share * scheduled || p99 > args.max_p99;
        steps.push(replayer::report::ramp::RampStep {
            speed: factor,
            scheduled_qps: scheduled,
            achieved_qps: achieved,
            p50_ms: summary.latency.value_at_quantile(0.5) as f64 / 1000.0,
            p99_ms: p99,
            error_rate: summary.errors as f64 / summary.commands.max(1) as f64,
            saturated,
            kept: summary.verdict.kept(),
            lag_p99_ms: summary.lag.value_at_quantile(0.99) as f64 / 1000.0,
        });
        if saturated {
            break;
        }
    }
    let knee = steps.iter().position(|s| s.saturated);
    std::fs::write(
        args.out.join("ramp.json"),
        serde_json::to_vec_pretty(&steps)?,
    )?;
    replayer::report::ramp::write_ramp_html(&steps, knee, &args.out.join("ramp.html"))?;
    let mut out = cli::stdout();
    writeln!(
        out,
        "\n{:>8} {:>12} {:>12} {:>9} {:>9} {:>11} {:>7}  schedule",
        "speed", "scheduled/s", "achieved/s", "p50 ms", "p99 ms", "lag p99 ms", "errors"
    )?;
    for s in &steps {
        writeln!(
            out,
            "{:>7}x {:>12.0} {:>12.0} {:>9.3} {:>9.3} {:>11.3} {:>6.2}%  {}{}",
            s.speed,
            s.scheduled_qps,
            s.achieved_qps,
            s.p50_ms,
            s.p99_ms,
            s.lag_p99_ms,
            s.error_rate * 100.0,
            if s.kept { "kept" } else { "FELL BEHIND" },
            if s.saturated { "  ← saturated" } else { "" }
        )?;
    }
    match replayer::report::ramp::highest_kept(&steps) {
        Some(speed) => writeln!(out, "highest speed that kept its schedule: {speed}x")?,
        None => writeln!(out, "no speed kept its schedule")?,
    }
    match knee {
        Some(0) => writeln!(
            out,
            "the target is saturated already at {}x",
            steps[0].speed
        )?,
        Some(k) => writeln!(
            out,
            "knee: the target keeps up to {}x and saturates at {}x",
            steps[k - 1].speed,
            steps[k].speed
        )?,
        None if interrupted => writeln!(out, "interrupted before the target saturated")?,
        None => writeln!(
            out,
            "no saturation up to {}x",
            steps.last().map_or(0.0, |s| s.speed)
        )?,
    }
    if !interrupted {
        capture_check(&args.capture, capture_end.0.as_deref(), capture_end.1)?;
    }
    Ok(if interrupted {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}
