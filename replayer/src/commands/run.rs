//! `replayer run`, and the replay settings it shares with `ramp`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use replayer::run::{Connections, RunConfig, print_summary};
use replayer::target::{Speed, Target, redact_url};

/// Order kept across connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sync {
    /// Each unit on its own schedule.
    None,
    /// Commit order: a unit waits for the commits captured before it.
    Commits,
}

/// Most replay connections per captured connection: beyond, a replay opens more
/// connections than a server accepts (and `--scale` is about load, not fan-out).
const MAX_SCALE: u32 = 1000;

#[derive(Debug, Args)]
pub struct TargetArgs {
    /// mysql://USER[:PASS]@HOST:PORT[/DB] (password also from MYSQL_PWD).
    #[arg(long)]
    pub target: String,
    /// Rename a captured database: OLD=NEW (NEW empty: no default database). Repeatable.
    #[arg(long = "db-map")]
    pub db_map: Vec<String>,
    /// Replay connections per captured connection.
    #[arg(long, default_value_t = 1)]
    pub scale: u32,
    /// Replay only these classes (16-hex ids from `inspect`). Repeatable.
    #[arg(long = "only-class")]
    pub only_class: Vec<captures::fingerprint::ClassId>,
    /// Leave out statements that change data (INSERT, UPDATE, DELETE, DDL, ... FOR UPDATE).
    #[arg(long)]
    pub skip_writes: bool,
    /// Stop after this many errors.
    #[arg(long)]
    pub max_errors: Option<u64>,
    /// Replay only the first part of the capture, e.g. 30s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// statsd server (DogStatsD tags), e.g. 127.0.0.1:8125.
    #[arg(long)]
    pub statsd: Option<String>,
    /// Captured records queued per lane (bounds memory).
    #[arg(long, default_value_t = replayer::run::DEFAULT_READ_AHEAD, hide = true)]
    pub read_ahead: usize,
    /// `pooled`: units of work on a shared pool of target connections, as the
    /// application's own pool would under N× load; `captured`: one target connection per
    /// captured connection, strictly serial.
    #[arg(long, value_enum, default_value_t = Connections::Pooled)]
    pub connections: Connections,
    /// Pooled replay: most target connections open at once (default: 4 × the capture's
    /// peak busy connections × speed, at least 16; at --speed max 2 × peak, at least 8).
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// `commits`: a unit starts only after every transaction that committed before it
    /// in the capture has committed in the replay.
    #[arg(long, value_enum, default_value_t = Sync::None)]
    pub sync: Sync,
    /// Do not digest the rows of each answer: answers are then compared by row count,
    /// affected rows, warnings and error code only.
    #[arg(long)]
    pub no_result_digest: bool,
    /// Shell command run before each replay (e.g. a snapshot restore or `shop seed`), so
    /// every run starts from the same state; its failure stops the run.
    #[arg(long)]
    pub before: Option<String>,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RunArgs {
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

/// `replayer run`: one replay, its summary, and (against vtgate) how each class routes.
pub fn run(args: &RunArgs) -> Result<ExitCode> {
    let speed: Speed = args.speed.parse()?;
    if args.dry_run {
        return dry_run(args, speed);
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
    explain_routes(&rt, args)?;
    capture_check(
        &args.capture,
        summary.capture_problem.as_deref(),
        summary.capture_damaged,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `--dry-run`: what would be replayed, and how long it would take, without connecting.
fn dry_run(args: &RunArgs, speed: Speed) -> Result<ExitCode> {
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
    Ok(ExitCode::SUCCESS)
}

/// Against Vitess: how vtgate routes each class, in a sidecar file for `compare`.
fn explain_routes(rt: &tokio::runtime::Runtime, args: &RunArgs) -> Result<()> {
    let target = Target::parse(
        &args.target.target,
        std::env::var("MYSQL_PWD").ok(),
        &args.target.db_map,
    )?;
    if !rt
        .block_on(replayer::routes::is_vtgate(&target))
        .unwrap_or(false)
    {
        return Ok(());
    }
    match rt.block_on(replayer::routes::explain(&args.capture, &target)) {
        Ok(routes) => {
            replayer::routes::write_sidecar(&args.out, &routes)?;
            let scatter = routes.values().filter(|r| r.is_scatter()).count();
            writeln!(
                cli::stdout(),
                "vtgate routing: {} classes explained, {scatter} scatter ({}.routes.json)",
                routes.len(),
                args.out.display()
            )?;
        }
        Err(e) => eprintln!("replayer: could not explain routes on vtgate: {e}"),
    }
    Ok(())
}

/// The replay's settings from the command line.
pub fn run_config(
    capture: &Path,
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
    let only_class = t.only_class.iter().map(|c| c.0).collect();
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

/// After a replay: a damaged capture fails the command (what came before the damage was
/// replayed and reported), as `inspect` and `timeline` fail on damaged input; a tail cut
/// short by a killed recorder is only a warning.
pub fn capture_check(capture: &Path, problem: Option<&str>, damaged: bool) -> Result<()> {
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
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// `--before CMD`: runs it with `sh -c` so every replay starts from the same state; its
/// failure stops the run, showing what it printed.
pub fn run_before(before: Option<&str>) -> Result<()> {
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
