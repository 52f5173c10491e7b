//! `replayer ramp`: replays at increasing speeds until the target saturates.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Args;
use replayer::report::ramp::RampStep;
use replayer::run::{RunSummary, print_summary};
use replayer::target::Speed;

use super::run::{TargetArgs, capture_check, run_before, run_config};

#[derive(Debug, Args)]
pub struct RampArgs {
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

/// The steps a ramp ran.
struct Ramp {
    steps: Vec<RampStep>,
    /// A step was interrupted (and left out): the steps before it are reported.
    interrupted: bool,
    /// How the capture ended (problem, damaged), from the last step: every step reads
    /// the same capture.
    capture_end: (Option<String>, bool),
}

/// Replays at each speed in turn until the target saturates; writes one results file
/// per speed, ramp.json and ramp.html, and prints the knee.
pub fn ramp(args: &RampArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let rt = replayer::run::runtime()?;
    warn_if_ramping_writes(args)?;
    let ramp = run_steps(args, &rt)?;
    let steps = &ramp.steps;
    let knee = steps.iter().position(|s| s.saturated);
    std::fs::write(
        args.out.join("ramp.json"),
        serde_json::to_vec_pretty(steps)?,
    )?;
    replayer::report::ramp::write_ramp_html(steps, knee, &args.out.join("ramp.html"))?;
    let mut out = cli::stdout();
    print_table(&mut out, steps)?;
    print_conclusion(&mut out, steps, knee, ramp.interrupted)?;
    if ramp.interrupted {
        return Ok(ExitCode::from(130));
    }
    capture_check(
        &args.capture,
        ramp.capture_end.0.as_deref(),
        ramp.capture_end.1,
    )?;
    Ok(ExitCode::SUCCESS)
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

/// One replay per speed, up to the first that saturates (or is interrupted).
fn run_steps(args: &RampArgs, rt: &tokio::runtime::Runtime) -> Result<Ramp> {
    let mut ramp = Ramp {
        steps: Vec::new(),
        interrupted: false,
        capture_end: (None, false),
    };
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
        ramp.capture_end = (summary.capture_problem.clone(), summary.capture_damaged);
        if summary.interrupted {
            // A cut-short step says nothing about capacity: report the steps before it.
            ramp.interrupted = true;
            break;
        }
        let step = step(args, &summary, factor);
        let saturated = step.saturated;
        ramp.steps.push(step);
        if saturated {
            break;
        }
    }
    Ok(ramp)
}

/// What one speed achieved, and whether the target saturated there.
fn step(args: &RampArgs, summary: &RunSummary, factor: f64) -> RampStep {
    let scheduled = summary.scheduled_rate(Speed::Factor(factor)).unwrap_or(0.0);
    let achieved = summary.achieved_rate();
    let p99 = summary.latency.value_at_quantile(0.99) as f64 / 1000.0;
    RampStep {
        speed: factor,
        scheduled_qps: scheduled,
        achieved_qps: achieved,
        p50_ms: summary.latency.value_at_quantile(0.5) as f64 / 1000.0,
        p99_ms: p99,
        error_rate: summary.errors as f64 / summary.commands.max(1) as f64,
        saturated: achieved < args.min_rate_share * scheduled || p99 > args.max_p99,
        kept: summary.verdict.kept(),
        lag_p99_ms: summary.lag.value_at_quantile(0.99) as f64 / 1000.0,
    }
}

/// One line per step.
fn print_table(out: &mut impl Write, steps: &[RampStep]) -> std::io::Result<()> {
    writeln!(
        out,
        "\n{:>8} {:>12} {:>12} {:>9} {:>9} {:>11} {:>7}  schedule",
        "speed", "scheduled/s", "achieved/s", "p50 ms", "p99 ms", "lag p99 ms", "errors"
    )?;
    for s in steps {
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
    Ok(())
}

/// The highest speed that kept its schedule, and where the target saturated.
fn print_conclusion(
    out: &mut impl Write,
    steps: &[RampStep],
    knee: Option<usize>,
    interrupted: bool,
) -> std::io::Result<()> {
    match replayer::report::ramp::highest_kept(steps) {
        Some(speed) => writeln!(out, "highest speed that kept its schedule: {speed}x")?,
        None => writeln!(out, "no speed kept its schedule")?,
    }
    match knee {
        Some(0) => writeln!(
            out,
            "the target is saturated already at {}x",
            steps[0].speed
        ),
        Some(k) => writeln!(
            out,
            "knee: the target keeps up to {}x and saturates at {}x",
            steps[k - 1].speed,
            steps[k].speed
        ),
        None if interrupted => writeln!(out, "interrupted before the target saturated"),
        None => writeln!(
            out,
            "no saturation up to {}x",
            steps.last().map_or(0.0, |s| s.speed)
        ),
    }
}
