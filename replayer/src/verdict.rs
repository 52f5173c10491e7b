//! Did a run keep its schedule? The one judgement `run`, `compare` and `ramp` show.
//!
//! A replay at N× only answers "what would the target do under N× my traffic" if it
//! actually sent N× the traffic. When the target (or the replay) could not keep up,
//! commands went out late, the offered load was lower than asked, and service-time
//! ratios describe a gentler load than the one named: the run *fell behind*, and every
//! report says so next to its numbers. A run whose target failed answers nothing: it is
//! *invalid*.

use serde::{Deserialize, Serialize};

/// A run kept its schedule when its lag p99 stays within this...
pub const MAX_LAG_P99_MS: f64 = 10.0;
/// ...and its wall time within this share of the captured span ÷ speed...
pub const MAX_WALL_OVER: f64 = 0.02;
/// ...plus this much, for the last command's own service time in short runs.
pub const WALL_SLACK_MS: f64 = 20.0;

/// Client-side errors that end a connection get this code in results: CR_SERVER_LOST.
pub const CONNECTION_LOST: u16 = 2013;
/// A command that could not be sent because the connection could not be (re)opened:
/// CR_CONN_HOST_ERROR.
pub const CANNOT_CONNECT: u16 = 2003;

/// Client-side codes of commands that never reached a server.
const UNREACHABLE: [u16; 2] = [CANNOT_CONNECT, CONNECTION_LOST];

/// What a verdict is judged from (all available from a results file alone).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// `None`: `--speed max` (no schedule).
    pub speed: Option<f64>,
    /// Captured span of what was replayed (first to last command start), ns.
    pub captured_ns: u64,
    /// Last command finished, ns after the replay started.
    pub wall_ns: u64,
    pub lag_p99_us: u64,
    pub commands: u64,
    pub errors: u64,
    /// Commands that could not be sent (target unreachable, connection lost).
    pub unreachable: u64,
    /// The capture's own commands and errors over the same part, when known.
    pub captured_commands: u64,
    pub captured_errors: u64,
}

impl Facts {
    /// Counts `n` errors with `code`.
    pub fn count_errors(&mut self, code: u16, n: u64) {
        self.errors += n;
        if is_unreachable(code) {
            self.unreachable += n;
        }
    }
}

/// Whether an error code means the command never reached a server.
pub fn is_unreachable(code: u16) -> bool {
    UNREACHABLE.contains(&code)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Lag and wall time within bounds: the target took the load as scheduled.
    Kept { lag_p99_ms: f64, wall_over_pct: f64 },
    /// Commands went out late: the load offered was lower than the speed names.
    FellBehind { lag_p99_ms: f64, wall_over_pct: f64 },
    /// `--speed max`: no schedule to keep (back to back, as fast as the target goes).
    BackToBack,
    /// The target failed: nothing to compare.
    Invalid { reason: String },
}

impl Verdict {
    pub fn of(f: &Facts) -> Verdict {
        if let Some(reason) = invalid(f) {
            return Verdict::Invalid { reason };
        }
        let Some(speed) = f.speed.filter(|s| *s > 0.0) else {
            return Verdict::BackToBack;
        };
        let schedule_ms = f.captured_ns as f64 / speed / 1e6;
        let wall_ms = f.wall_ns as f64 / 1e6;
        let lag_p99_ms = f.lag_p99_us as f64 / 1000.0;
        let wall_over_pct = if schedule_ms > 0.0 {
            (wall_ms / schedule_ms - 1.0) * 100.0
        } else {
            0.0
        };
        let wall_ok = wall_ms <= schedule_ms * (1.0 + MAX_WALL_OVER) + WALL_SLACK_MS;
        if lag_p99_ms <= MAX_LAG_P99_MS && wall_ok {
            Verdict::Kept {
                lag_p99_ms,
                wall_over_pct,
            }
        } else {
            Verdict::FellBehind {
                lag_p99_ms,
                wall_over_pct,
            }
        }
    }

    pub fn kept(&self) -> bool {
        matches!(self, Verdict::Kept { .. })
    }

    pub fn fell_behind(&self) -> bool {
        matches!(self, Verdict::FellBehind { .. })
    }

    pub fn is_invalid(&self) -> bool {
        matches!(self, Verdict::Invalid { .. })
    }

    /// A short label for tables.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Kept { .. } => "kept schedule",
            Verdict::FellBehind { .. } => "FELL BEHIND",
            Verdict::BackToBack => "back to back",
            Verdict::Invalid { .. } => "INVALID",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Kept {
                lag_p99_ms,
                wall_over_pct,
            } => write!(
                f,
                "kept its schedule (lag p99 {lag_p99_ms:.2} ms, wall {wall_over_pct:+.1} %)"
            ),
            Verdict::FellBehind {
                lag_p99_ms,
                wall_over_pct,
            } => write!(
                f,
                "FELL BEHIND its schedule: lag p99 {lag_p99_ms:.1} ms (bound {MAX_LAG_P99_MS} ms), \
                 wall {wall_over_pct:+.1} % (bound +{:.0} %); the load offered was lower than \
                 the speed names",
                MAX_WALL_OVER * 100.0
            ),
            Verdict::BackToBack => f.write_str("back to back (--speed max): no schedule to keep"),
            Verdict::Invalid { reason } => write!(f, "INVALID: {reason}"),
        }
    }
}

/// Why a run cannot be compared: its target was unreachable, or failed far more often
/// than the captured server did.
fn invalid(f: &Facts) -> Option<String> {
    if f.commands == 0 {
        return None;
    }
    let share = |n: u64, of: u64| n as f64 / of.max(1) as f64;
    if f.unreachable >= 10 && share(f.unreachable, f.commands) >= 0.01 {
        return Some(format!(
            "the target was unreachable: {} of {} commands could not be sent",
            f.unreachable, f.commands
        ));
    }
    let rate = share(f.errors, f.commands);
    let captured_rate = share(f.captured_errors, f.captured_commands);
    if f.errors >= 10 && rate >= 0.2 && rate >= 10.0 * captured_rate {
        return Some(format!(
            "{:.0} % of commands failed ({} errors), against {:.1} % in the capture",
            rate * 100.0,
            f.errors,
            captured_rate * 100.0
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(speed: f64, wall_ms: u64, lag_ms: u64) -> Facts {
        Facts {
            speed: Some(speed),
            captured_ns: 10_000_000_000,
            wall_ns: wall_ms * 1_000_000,
            lag_p99_us: lag_ms * 1000,
            commands: 1000,
            ..Facts::default()
        }
    }

    #[test]
    fn a_run_keeps_its_schedule_within_both_bounds() {
        assert!(Verdict::of(&facts(2.0, 5_050, 3)).kept());
        assert!(Verdict::of(&facts(2.0, 5_050, 30)).fell_behind());
        assert!(Verdict::of(&facts(2.0, 6_000, 3)).fell_behind());
        let max = Facts {
            speed: None,
            ..facts(1.0, 1, 1)
        };
        assert_eq!(Verdict::of(&max), Verdict::BackToBack);
    }

    #[test]
    fn an_unreachable_target_makes_a_run_invalid() {
        let mut f = facts(1.0, 10_000, 0);
        f.count_errors(CANNOT_CONNECT, 50);
        assert!(Verdict::of(&f).is_invalid());
        let mut f = facts(1.0, 10_000, 0);
        f.errors = 500;
        f.captured_commands = 1000;
        f.captured_errors = 400;
        assert!(Verdict::of(&f).kept(), "errors the capture had too");
    }
}
