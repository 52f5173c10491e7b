//! What a replay measured: one [`RunMeta`] header, then [`ResultRecord`]s as commands
//! finish (streamed, so a long run never holds its results in memory).
//!
//! Times are nanoseconds since the replay started (monotonic).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::record::{CmdKind, Outcome};

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
    /// The first execution of a class that diverged in one way (version 2).
    Diverged(Box<Divergent>),
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
    /// Warnings the target reported. Version 2.
    pub warnings: u16,
    /// Digest of the rows returned (see [`crate::digest`]), for commands that returned
    /// rows. Version 2.
    pub digest: Option<Digest>,
    /// How the answer differed from the captured one. Version 2 (version 1 files keep
    /// only "rows" or "error", read as [`Divergence::RowCount`] and
    /// [`Divergence::ErrorChanged`]).
    pub divergence: Divergence,
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

    /// The answer, as [`Divergent`] examples keep it.
    pub fn answer(&self) -> Answer {
        Answer {
            rows: self.rows,
            digest: self.digest,
            error: self.error,
            warnings: self.warnings,
        }
    }
}

/// How a replayed answer differed from the captured one: the most telling difference
/// when there are several (an error over a row count over rows, warnings last).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
// Names for self-describing formats (the JSON report), the same as `as_str`; postcard
// keeps the variant index.
#[serde(rename_all = "snake_case")]
pub enum Divergence {
    /// The same answer (or nothing to compare: no response captured, command skipped).
    #[default]
    None,
    /// It failed where the capture succeeded.
    ErrorNew,
    /// It succeeded where the capture failed.
    ErrorResolved,
    /// It failed with another error code.
    ErrorChanged,
    /// Another number of rows returned.
    RowCount,
    /// As many rows, but other ones.
    RowsDiffer,
    /// The same rows in another order. Not a wrong answer by itself: without `ORDER BY`
    /// any order is correct (and a sharded target merges in its own), with it, ties may
    /// come in any order.
    OrderOnly,
    /// Another number of affected rows.
    #[serde(rename = "affected_rows")]
    Affected,
    /// Another number of warnings.
    Warnings,
}

impl Divergence {
    pub const ALL: [Divergence; 8] = [
        Divergence::ErrorNew,
        Divergence::ErrorResolved,
        Divergence::ErrorChanged,
        Divergence::RowCount,
        Divergence::RowsDiffer,
        Divergence::OrderOnly,
        Divergence::Affected,
        Divergence::Warnings,
    ];

    pub fn is_none(self) -> bool {
        self == Divergence::None
    }

    /// Stable snake_case name, used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Divergence::None => "none",
            Divergence::ErrorNew => "error_new",
            Divergence::ErrorResolved => "error_resolved",
            Divergence::ErrorChanged => "error_changed",
            Divergence::RowCount => "row_count",
            Divergence::RowsDiffer => "rows_differ",
            Divergence::OrderOnly => "order_only",
            Divergence::Affected => "affected_rows",
            Divergence::Warnings => "warnings",
        }
    }

    /// Words for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Divergence::None => "same answer",
            Divergence::ErrorNew => "error new",
            Divergence::ErrorResolved => "error resolved",
            Divergence::ErrorChanged => "error changed",
            Divergence::RowCount => "row count differs",
            Divergence::RowsDiffer => "rows differ",
            Divergence::OrderOnly => "order differs only",
            Divergence::Affected => "affected rows differ",
            Divergence::Warnings => "warnings differ",
        }
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// One answer, captured or replayed: what a report shows of a diverging execution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// Rows returned or affected.
    pub rows: u64,
    pub digest: Option<Digest>,
    pub error: Option<u16>,
    pub warnings: u16,
}

impl From<&Outcome> for Answer {
    /// A captured answer.
    fn from(o: &Outcome) -> Self {
        Answer {
            rows: o.rows(),
            digest: o.digest(),
            error: o.error_code(),
            warnings: o.warnings(),
        }
    }
}

/// The first execution of a class that diverged in a given way: enough for a report to
/// show what was sent and both answers. A run writes at most one per (class, kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergent {
    pub class: u64,
    pub conn: u64,
    pub seq: u64,
    pub divergence: Divergence,
    /// The statement: its SQL, and for an EXECUTE its parameters (bounded in length).
    pub statement: String,
    pub captured: Answer,
    pub replayed: Answer,
}

/// Records as results version 1 wrote them.
#[derive(Deserialize)]
enum ResultRecordV1 {
    Class {
        class: u64,
        fingerprint: String,
        example: Option<String>,
    },
    Exec(ExecutedV1),
    End(RunEnd),
}

/// [`Executed`] in version 1: a bit set of differences (1 rows, 2 error).
#[derive(Deserialize)]
struct ExecutedV1 {
    conn: u64,
    seq: u64,
    class: u64,
    kind: CmdKind,
    scheduled_ns: u64,
    sent_ns: u64,
    finished_ns: u64,
    rows: u64,
    error: Option<u16>,
    mismatch: u8,
}

impl From<ResultRecordV1> for ResultRecord {
    fn from(r: ResultRecordV1) -> Self {
        match r {
            ResultRecordV1::Class {
                class,
                fingerprint,
                example,
            } => ResultRecord::Class {
                class,
                fingerprint,
                example,
            },
            ResultRecordV1::Exec(e) => ResultRecord::Exec(Executed {
                conn: e.conn,
                seq: e.seq,
                class: e.class,
                kind: e.kind,
                scheduled_ns: e.scheduled_ns,
                sent_ns: e.sent_ns,
                finished_ns: e.finished_ns,
                rows: e.rows,
                error: e.error,
                warnings: 0,
                digest: None,
                divergence: match e.mismatch {
                    0 => Divergence::None,
                    m if m & 2 != 0 => Divergence::ErrorChanged,
                    _ => Divergence::RowCount,
                },
            }),
            ResultRecordV1::End(end) => ResultRecord::End(end),
        }
    }
}

/// Decodes one record of a results file written by format `version`.
pub(crate) fn take_record(version: u16, bytes: &[u8]) -> postcard::Result<(ResultRecord, &[u8])> {
    if version == 1 {
        let (r, rest) = postcard::take_from_bytes::<ResultRecordV1>(bytes)?;
        Ok((r.into(), rest))
    } else {
        postcard::take_from_bytes(bytes)
    }
}
