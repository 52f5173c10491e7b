//! What a replay measured: one [`RunMeta`] header, then [`ResultRecord`]s as commands
//! finish (streamed, so a long run never holds its results in memory).
//!
//! Times are nanoseconds since the replay started (monotonic).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::record::CmdKind;

/// Run-wide facts, written once in the results header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub tool: String,
    /// Unique id of this run (tags metrics, names the run in reports).
    pub run_id: String,
    /// Human label, e.g. `mariadb`, `vitess-sharded`.
    pub label: String,
    /// Target address without credentials, e.g. `127.0.0.1:15306/commerce`.
    pub target: String,
    /// Version string the target reported.
    pub server_version: String,
    /// Replay speed factor; `None` means `--speed max` (back to back).
    pub speed: Option<f64>,
    /// Each captured connection was replayed this many times in parallel.
    pub scale: u32,
    /// Identifies the capture replayed (see [`crate::Meta`]): its path and start time.
    pub capture: String,
    /// Captured duration that was replayed, in ns (the whole capture or a `--duration`
    /// prefix), so readers can compare wall time with the schedule.
    pub captured_ns: u64,
    pub started_unix_ns: u64,
    pub labels: BTreeMap<String, String>,
}

/// One entry of a results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ResultRecord {
    /// Defines a query class the first time a run meets it, so reports can print its
    /// fingerprint without the capture.
    Class {
        class: u64,
        fingerprint: String,
        /// One literal example (absent when the capture was redacted).
        example: Option<String>,
    },
    /// One executed command.
    Exec(Executed),
    /// How the run went as a whole, written once after its last command (absent from
    /// files of older versions and from runs that were killed).
    End(RunEnd),
}

/// A run's closing facts: what reports need beyond the commands themselves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunEnd {
    /// Span of the replayed part of the capture (first to last command start), ns.
    pub captured_ns: u64,
    /// Commands the capture held for the replayed part, and how many of them failed
    /// there (a replay's errors are judged against these).
    pub captured_commands: u64,
    pub captured_errors: u64,
    /// `pooled` or `captured`.
    pub connections: String,
    /// Pooled replay: the pool's bound, the most target connections in use at once,
    /// and how many were opened in all.
    pub max_connections: u64,
    pub peak_connections: u64,
    pub opened_connections: u64,
    /// Captured connections pinned to one target connection, by reason.
    pub pinned: Vec<(String, u64)>,
    /// `--sync commits`: whether it was on, how many units waited for earlier commits,
    /// and their total wait.
    pub sync_commits: bool,
    pub sync_waits: u64,
    pub sync_wait_ns: u64,
    pub connect_failures: u64,
    pub interrupted: bool,
    pub stopped_by_max_errors: bool,
    /// Why the capture ended early (truncated tail, corruption), if it did.
    pub capture_problem: Option<String>,
}

/// Timing and outcome of one replayed command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Executed {
    /// Replay connection (captured connection × scale copy).
    pub conn: u64,
    /// Position of the command within its captured connection.
    pub seq: u64,
    /// Query class id (0 for commands without SQL).
    pub class: u64,
    pub kind: CmdKind,
    /// When the timeline said to send it.
    pub scheduled_ns: u64,
    /// When it was actually sent (≥ scheduled: waits for the previous command).
    pub sent_ns: u64,
    pub finished_ns: u64,
    /// Rows returned or affected.
    pub rows: u64,
    /// Server or client error code, if the command failed.
    pub error: Option<u16>,
    /// How the outcome differed from the captured one.
    pub mismatch: Mismatch,
}

impl Executed {
    /// Service time: finished − sent.
    pub fn latency_ns(&self) -> u64 {
        self.finished_ns.saturating_sub(self.sent_ns)
    }
    /// How late it was sent: sent − scheduled.
    pub fn lag_ns(&self) -> u64 {
        self.sent_ns.saturating_sub(self.scheduled_ns)
    }
    /// Latency as the user of the original timeline saw it (corrects for coordinated
    /// omission): finished − scheduled.
    pub fn corrected_ns(&self) -> u64 {
        self.finished_ns.saturating_sub(self.scheduled_ns)
    }
}

/// Outcome differences against the capture, as a bit set (one byte on disk).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mismatch(u8);

impl Mismatch {
    pub const NONE: Mismatch = Mismatch(0);
    /// Different row count or affected rows.
    pub const ROWS: Mismatch = Mismatch(1);
    /// Failed where the capture succeeded, succeeded where it failed, or another code.
    pub const ERROR: Mismatch = Mismatch(2);

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn contains(self, other: Mismatch) -> bool {
        self.0 & other.0 == other.0
    }
    pub fn bits(self) -> u8 {
        self.0
    }
}

impl std::ops::BitOr for Mismatch {
    type Output = Mismatch;
    fn bitor(self, rhs: Mismatch) -> Mismatch {
        Mismatch(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Mismatch {
    fn bitor_assign(&mut self, rhs: Mismatch) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.contains(Mismatch::ROWS) {
            parts.push("ROWS");
        }
        if self.contains(Mismatch::ERROR) {
            parts.push("ERROR");
        }
        if parts.is_empty() {
            f.write_str("NONE")
        } else {
            f.write_str(&parts.join("|"))
        }
    }
}
