//! What a run did, for the end-of-run table, `ramp` and the exit code.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use captures::{Divergence, RunEnd};
use hdrhistogram::Histogram;

use super::Dispatched;
use super::results::Written;
use crate::clock::nanos;
use crate::target::Speed;
use crate::verdict::{Facts, Verdict};

#[derive(Debug)]
pub struct RunSummary {
    pub run_id: String,
    pub commands: u64,
    pub errors: u64,
    /// Commands whose answer differed from the capture's, by kind.
    pub diverged: BTreeMap<Divergence, u64>,
    pub skipped: u64,
    /// Captured connections replayed × `--scale`.
    pub connections: u64,
    pub connect_failures: u64,
    pub wall: Duration,
    /// Span of the replayed part of the capture (first to last command start).
    pub captured_span: Duration,
    pub latency: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub corrected: Histogram<u64>,
    /// Why the capture ended early (truncated tail, corruption), if it did.
    pub capture_problem: Option<String>,
    /// The capture is damaged (corrupt, not merely cut short): the run replayed the part
    /// before the damage.
    pub capture_damaged: bool,
    pub stopped_by_max_errors: bool,
    /// Ctrl-C (SIGINT) or SIGTERM ended the run early; what ran is in the results.
    pub interrupted: bool,
    /// Error codes and how often each happened.
    pub error_codes: Vec<(u16, u64)>,
    /// Pool, pins, commit order: as written at the end of the results file.
    pub end: RunEnd,
    pub verdict: Verdict,
    /// Bytes the reader parked on disk for lanes that fell behind.
    pub spilled_bytes: u64,
}

impl RunSummary {
    pub(super) fn new(
        run_id: String,
        speed: Speed,
        w: Written,
        end: RunEnd,
        d: &Dispatched,
    ) -> Self {
        let mut facts = Facts {
            speed: speed.factor(),
            captured_ns: end.captured_ns,
            wall_ns: nanos(w.last_finish),
            lag_p99_us: w.lag.value_at_quantile(0.99),
            commands: w.commands,
            captured_commands: end.captured_commands,
            captured_errors: end.captured_errors,
            ..Facts::default()
        };
        for &(code, n) in &w.error_codes {
            facts.count_errors(code, n);
        }
        let verdict = Verdict::of(&facts);
        RunSummary {
            run_id,
            commands: w.commands,
            errors: w.errors,
            diverged: w.diverged,
            skipped: w.skipped,
            connections: d.connections,
            connect_failures: end.connect_failures,
            wall: w.last_finish,
            captured_span: Duration::from_nanos(end.captured_ns),
            latency: w.latency,
            lag: w.lag,
            corrected: w.corrected,
            capture_problem: end.capture_problem.clone(),
            capture_damaged: d.damaged,
            stopped_by_max_errors: end.stopped_by_max_errors,
            interrupted: end.interrupted,
            error_codes: w.error_codes,
            verdict,
            spilled_bytes: d.spilled_bytes,
            end,
        }
    }

    /// Commands per second the capture asked for at this speed.
    pub fn scheduled_rate(&self, speed: Speed) -> Option<f64> {
        let span = self.captured_span.as_secs_f64();
        match speed {
            Speed::Factor(f) if span > 0.0 => Some(self.commands as f64 / (span / f)),
            _ => None,
        }
    }

    /// Commands whose answer differed from the capture's, all kinds together.
    pub fn diverged_commands(&self) -> u64 {
        self.diverged.values().sum()
    }

    pub fn achieved_rate(&self) -> f64 {
        self.commands as f64 / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Prints the end-of-run table.
pub fn print_summary(s: &RunSummary, speed: Speed, out: &Path) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!("replay {} → {}", s.run_id, out.display());
    println!(
        "  commands {:>10}   errors {:>8}   diverged {:>8}   skipped {:>6}   connections {}",
        s.commands,
        s.errors,
        s.diverged_commands(),
        s.skipped,
        s.connections
    );
    if !s.diverged.is_empty() {
        let kinds: Vec<String> = s.diverged.iter().map(|(k, n)| format!("{k} {n}")).collect();
        println!(
            "  answers that differ from the capture: {}",
            kinds.join(", ")
        );
    }
    let scheduled = s
        .scheduled_rate(speed)
        .map_or("back to back".to_string(), |r| format!("{r:.0}/s"));
    println!(
        "  wall {:.2}s for {:.2}s captured at {speed}   rate {:.0}/s achieved vs {scheduled} scheduled",
        s.wall.as_secs_f64(),
        s.captured_span.as_secs_f64(),
        s.achieved_rate()
    );
    println!("  verdict: {}", s.verdict);
    println!(
        "  latency ms  p50 {:.3}  p95 {:.3}  p99 {:.3}  max {:.3}",
        ms(s.latency.value_at_quantile(0.50)),
        ms(s.latency.value_at_quantile(0.95)),
        ms(s.latency.value_at_quantile(0.99)),
        ms(s.latency.max())
    );
    println!(
        "  lag ms      p50 {:.3}  p99 {:.3}  max {:.3}   (from schedule: p99 {:.3})",
        ms(s.lag.value_at_quantile(0.50)),
        ms(s.lag.value_at_quantile(0.99)),
        ms(s.lag.max()),
        ms(s.corrected.value_at_quantile(0.99))
    );
    print_connections(s);
    print_problems(s);
}

fn print_connections(s: &RunSummary) {
    let e = &s.end;
    if e.connections == "pooled" {
        println!(
            "  pooled: {} target connections at most in use (bound {}), {} opened",
            e.peak_connections, e.max_connections, e.opened_connections
        );
    }
    if !e.pinned.is_empty() {
        let pins: Vec<String> = e
            .pinned
            .iter()
            .map(|(r, n)| format!("{n} by {r}"))
            .collect();
        println!("  pinned connections: {}", pins.join(", "));
    }
    if e.sync_commits {
        println!(
            "  commit order: {} units waited for earlier commits, {:.3}s in all",
            e.sync_waits,
            e.sync_wait_ns as f64 / 1e9
        );
    }
    if s.spilled_bytes > 0 {
        println!(
            "  lanes fell behind the reader: {:.1} MiB of steps waited on disk",
            s.spilled_bytes as f64 / (1024.0 * 1024.0)
        );
    }
}

fn print_problems(s: &RunSummary) {
    if !s.error_codes.is_empty() {
        let codes: Vec<String> = s
            .error_codes
            .iter()
            .take(5)
            .map(|(c, n)| format!("{c}×{n}"))
            .collect();
        println!("  error codes {}", codes.join(", "));
    }
    if s.connect_failures > 0 {
        println!("  connection attempts failed: {}", s.connect_failures);
    }
    if s.interrupted {
        println!("  stopped early: interrupted");
    }
    if s.stopped_by_max_errors {
        println!("  stopped early: --max-errors reached");
    }
    if let Some(problem) = &s.capture_problem {
        println!("  capture ended early: {problem}");
    }
}
