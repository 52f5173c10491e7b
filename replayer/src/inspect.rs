//! `replayer inspect`: what a capture holds, without a target.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::Path;

use captures::fingerprint::ClassId;
use captures::{CaptureReader, Cmd, Command, Outcome, Record};
use serde::Serialize;

use crate::classify::Classifier;
use crate::error::Error;

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub path: String,
    pub tool: String,
    pub upstream: String,
    pub server_version: String,
    pub redacted: bool,
    pub labels: BTreeMap<String, String>,
    pub connections: u64,
    pub commands: u64,
    pub errors: u64,
    pub duration_s: f64,
    pub by_kind: BTreeMap<String, u64>,
    pub classes: u64,
    pub top_by_count: Vec<ClassLine>,
    pub top_by_time: Vec<ClassLine>,
    /// Set when the file ends in a truncated or damaged chunk (everything before it counted).
    pub problem: Option<String>,
    /// The problem is damage (corruption), not a tail cut short by a killed recorder.
    pub damaged: bool,
    /// The recorder closed the capture cleanly (its end record is there); false for a
    /// recorder that was killed or crashed, and for captures of older versions.
    pub ended_cleanly: bool,
    /// Records the recorder dropped (queue full, write failure), from its end record.
    pub dropped: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassLine {
    pub id: ClassId,
    pub fingerprint: String,
    pub count: u64,
    pub total_ms: f64,
    pub errors: u64,
}

/// Reads the whole capture once, streaming.
pub fn inspect(path: &Path, top: usize) -> Result<Inspection, Error> {
    let mut reader = CaptureReader::open(path).map_err(|source| Error::Capture {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = reader.header().clone();
    let mut dropped = None;
    let mut connections = HashSet::new();
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut classes = Classes::new();
    let (mut commands, mut errors) = (0u64, 0u64);
    let (mut first, mut last) = (u64::MAX, 0u64);
    let mut problem = None;
    let mut damaged = false;
    for item in reader.by_ref() {
        let record = match item {
            Ok(r) => r,
            Err(e) => {
                damaged = !e.is_truncation();
                problem = Some(e.to_string());
                break;
            }
        };
        first = first.min(record.t());
        match &record {
            Record::End(end) => dropped = Some(end.dropped),
            Record::ConnOpen(o) => {
                connections.insert(o.conn);
            }
            Record::ConnClose(c) => last = last.max(c.t),
            Record::Command(c) => {
                commands += 1;
                last = last.max(c.t_end);
                *by_kind.entry(c.cmd.kind().to_string()).or_default() += 1;
                let failed = matches!(c.outcome, Outcome::Err { .. });
                errors += u64::from(failed);
                classes.count(c, failed);
            }
        }
    }
    let (n_classes, top_by_count, top_by_time) = classes.top(top);
    Ok(Inspection {
        path: path.display().to_string(),
        tool: meta.tool,
        upstream: meta.upstream,
        server_version: meta.server_version,
        redacted: meta.redacted,
        labels: meta.labels,
        connections: connections.len() as u64,
        commands,
        errors,
        duration_s: if first == u64::MAX {
            0.0
        } else {
            last.saturating_sub(first) as f64 / 1e9
        },
        by_kind,
        classes: n_classes,
        top_by_count,
        top_by_time,
        problem,
        damaged,
        ended_cleanly: reader.ended_cleanly(),
        dropped,
    })
}

/// The query classes of a capture: queries, prepares and LOAD DATA LOCAL by their
/// fingerprint, executes under the class of the statement they run.
struct Classes {
    classifier: Classifier,
    lines: HashMap<u64, ClassLine>,
    /// (connection, statement id) → the class it was prepared from.
    stmt_class: HashMap<(u64, u32), u64>,
}

impl Classes {
    fn new() -> Self {
        Classes {
            classifier: Classifier::new(),
            lines: HashMap::new(),
            stmt_class: HashMap::new(),
        }
    }

    fn count(&mut self, c: &Command, failed: bool) {
        let id = match &c.cmd {
            Cmd::Query { sql } | Cmd::Prepare { sql, .. } | Cmd::LoadLocal { sql, .. } => {
                let (id, text) = self.classifier.fingerprint(sql);
                if let Cmd::Prepare { stmt_id, .. } = &c.cmd {
                    self.stmt_class.insert((c.conn, *stmt_id), id);
                }
                self.lines.entry(id).or_insert_with(|| ClassLine {
                    id: ClassId(id),
                    fingerprint: text.to_string(),
                    count: 0,
                    total_ms: 0.0,
                    errors: 0,
                });
                Some(id)
            }
            Cmd::Execute { stmt_id, .. } => self.stmt_class.get(&(c.conn, *stmt_id)).copied(),
            _ => None,
        };
        if let Some(line) = id.and_then(|id| self.lines.get_mut(&id)) {
            // Prepares are bookkeeping; the class's time is its queries and executes.
            if !matches!(c.cmd, Cmd::Prepare { .. }) {
                line.count += 1;
                line.total_ms += c.t_end.saturating_sub(c.t_start) as f64 / 1e6;
                line.errors += u64::from(failed);
            }
        }
    }

    /// How many classes ran, and the `top` of them by count and by captured time.
    fn top(self, top: usize) -> (u64, Vec<ClassLine>, Vec<ClassLine>) {
        let mut lines: Vec<ClassLine> = self.lines.into_values().filter(|c| c.count > 0).collect();
        let n_classes = lines.len() as u64;
        lines.sort_by(|a, b| b.count.cmp(&a.count).then(a.id.cmp(&b.id)));
        let top_by_count = lines.iter().take(top).cloned().collect();
        lines.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms).then(a.id.cmp(&b.id)));
        let top_by_time = lines.into_iter().take(top).collect();
        (n_classes, top_by_count, top_by_time)
    }
}

/// The inspection as text. Writes fail rather than panic (a closed stdout: `| head`).
pub fn print_text(out: &mut impl Write, i: &Inspection) -> std::io::Result<()> {
    writeln!(out, "capture      {}", i.path)?;
    writeln!(
        out,
        "recorded by  {} from {} (server {})",
        i.tool, i.upstream, i.server_version
    )?;
    if i.redacted {
        writeln!(out, "redacted     yes: classes only, cannot be replayed")?;
    }
    for (k, v) in &i.labels {
        writeln!(out, "label        {k} = {v}")?;
    }
    writeln!(
        out,
        "contents     {} connections, {} commands ({} errors) over {:.1}s, {} query classes",
        i.connections, i.commands, i.errors, i.duration_s, i.classes
    )?;
    let kinds: Vec<String> = i.by_kind.iter().map(|(k, v)| format!("{k} {v}")).collect();
    writeln!(out, "by kind      {}", kinds.join(", "))?;
    let mut table = |title: &str, lines: &[ClassLine]| -> std::io::Result<()> {
        writeln!(out, "\n{title}")?;
        writeln!(
            out,
            "  {:>9} {:>11} {:>6}  {:<16}  fingerprint",
            "count", "total ms", "errors", "class"
        )?;
        for l in lines {
            let mut fp = l.fingerprint.clone();
            if fp.len() > 100 {
                let mut cut = 97;
                while !fp.is_char_boundary(cut) {
                    cut -= 1;
                }
                fp.truncate(cut);
                fp.push_str("...");
            }
            writeln!(
                out,
                "  {:>9} {:>11.1} {:>6}  {}  {fp}",
                l.count, l.total_ms, l.errors, l.id
            )?;
        }
        Ok(())
    };
    table("top classes by count", &i.top_by_count)?;
    table("top classes by captured time", &i.top_by_time)?;
    if let Some(p) = &i.problem {
        let what = if i.damaged {
            "is damaged"
        } else {
            "ends early"
        };
        writeln!(out, "\nWARNING: the capture {what}: {p}")?;
        writeln!(
            out,
            "         (everything before that point is counted above and can be replayed)"
        )?;
    } else if !i.ended_cleanly {
        writeln!(
            out,
            "\nnote: the capture ended without a clean close (recorder killed, or an older version)"
        )?;
    }
    if let Some(n) = i.dropped.filter(|n| *n > 0) {
        writeln!(
            out,
            "WARNING: the recorder dropped {n} records: the capture is incomplete"
        )?;
    }
    Ok(())
}

/// Width of the windows in which [`Shape::peak_busy`] averages concurrency.
const BUSY_WINDOW_NS: u64 = 100_000_000;

/// What a replay plans by, from one quick pass over a capture.
#[derive(Debug, Clone, Copy, Default)]
pub struct Shape {
    /// How many connections the capture kept busy at its peak: the most command time
    /// that fell into one 100 ms window, divided by the window (so 1 for a single
    /// connection busy throughout; an average, so short bursts count for what they last).
    pub peak_busy: u64,
    /// Statements that change data.
    pub writes: u64,
}

/// Reads the capture once for its [`Shape`].
pub fn shape(path: &Path) -> Result<Shape, captures::Error> {
    let reader = CaptureReader::open(path)?;
    let mut busy: HashMap<u64, u64> = HashMap::new();
    let mut classifier = crate::classify::Classifier::new();
    let mut writes = 0;
    for item in reader {
        let Ok(record) = item else { break };
        let Record::Command(c) = record else { continue };
        if let Cmd::Query { sql } | Cmd::Prepare { sql, .. } | Cmd::LoadLocal { sql, .. } = &c.cmd {
            writes += u64::from(classifier.statement(sql).0.is_write);
        }
        let (mut from, to) = (c.t_start, c.t_end.max(c.t_start));
        while from < to {
            let window = from / BUSY_WINDOW_NS;
            let end = ((window + 1) * BUSY_WINDOW_NS).min(to);
            *busy.entry(window).or_default() += end - from;
            from = end;
        }
    }
    let peak = busy.values().copied().max().unwrap_or(0);
    Ok(Shape {
        peak_busy: peak.div_ceil(BUSY_WINDOW_NS).max(1),
        writes,
    })
}

impl Inspection {
    /// After the report: a damaged capture is an error (the report covers the part before
    /// the damage); a truncated tail, what a killed recorder leaves, only a warning.
    pub fn check(&self) -> Result<(), Error> {
        match &self.problem {
            Some(problem) if self.damaged => Err(Error::Damaged {
                path: self.path.clone().into(),
                problem: problem.clone(),
            }),
            Some(problem) => {
                warn_incomplete(Path::new(&self.path), problem);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// One line on stderr for a file that ends early but is not damaged (a cut tail, records
/// the recorder dropped): the records it has were used.
pub fn warn_incomplete(path: &Path, problem: &str) {
    let _ = writeln!(
        std::io::stderr(),
        "replayer: warning: {}: {problem}",
        path.display()
    );
}
