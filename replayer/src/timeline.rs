//! `replayer timeline`: one run's latency over time, cut at events that happened while
//! it ran (a reshard's cut-overs, a failover, a deploy): "what did the application see
//! through the change?".
//!
//! The run is bucketed by send time into at most [`MAX_BUCKETS`] equal buckets, each a
//! small HdrHistogram, and into phases between consecutive events, so memory depends on
//! neither the run's length nor its rate.

use std::io::BufRead;
use std::path::Path;

use captures::{ResultRecord, ResultsReader, RunMeta};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Buckets a chart can show legibly; long runs get wider buckets.
pub const MAX_BUCKETS: u64 = 600;

/// Something that happened at a wall-clock time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub unix_ns: u64,
    pub label: String,
}

/// Latency of the commands sent in one stretch of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Stretch {
    /// Seconds since the run started.
    pub from_s: f64,
    pub to_s: f64,
    /// For phases: the event that opened it ("start" for the first).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub commands: u64,
    pub errors: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Timeline {
    pub label: String,
    pub run_id: String,
    pub bucket_s: f64,
    pub buckets: Vec<Stretch>,
    pub phases: Vec<Stretch>,
    /// Events inside the run, as seconds since its start.
    pub events: Vec<(f64, String)>,
    /// Why the results file ended early (a cut tail or damage), if it did: the timeline
    /// covers the records before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// The problem is damage, not a tail cut short by a killed run.
    #[serde(skip)]
    pub damaged: bool,
}

struct Acc {
    commands: u64,
    errors: u64,
    hist: Histogram<u64>,
}

impl Acc {
    fn new() -> Self {
        Self {
            commands: 0,
            errors: 0,
            hist: crate::histogram::coarse_histogram(),
        }
    }

    fn record(&mut self, latency_us: u64, error: bool) {
        self.commands += 1;
        self.errors += u64::from(error);
        let _ = self.hist.record(latency_us.max(1));
    }

    fn stretch(&self, from_s: f64, to_s: f64, label: Option<String>) -> Stretch {
        let ms = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        Stretch {
            from_s,
            to_s,
            label,
            commands: self.commands,
            errors: self.errors,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            max_ms: self.hist.max() as f64 / 1000.0,
        }
    }
}

/// Reads `{"unix_ns": .., "label": ..}` lines; blank lines are skipped.
pub fn read_events(path: &Path) -> Result<Vec<Event>, Error> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut events = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(&line).map_err(|source| Error::Events {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        events.push(event);
    }
    events.sort_by_key(|e| e.unix_ns);
    Ok(events)
}

/// Streams the results file once into buckets and phases.
pub fn build(results: &Path, events: &[Event], bucket: Option<f64>) -> Result<Timeline, Error> {
    let reader = ResultsReader::open(results).map_err(|source| Error::Open {
        path: results.to_path_buf(),
        source,
    })?;
    let meta: RunMeta = reader.header().clone();
    let bucket_s = bucket_width(&meta, bucket);
    let bucket_ns = (bucket_s * 1e9) as u64;
    // Events as offsets into the run; those before it start the first phase.
    let offsets: Vec<(u64, String)> = events
        .iter()
        .map(|e| {
            (
                e.unix_ns.saturating_sub(meta.started_unix_ns),
                e.label.clone(),
            )
        })
        .collect();
    let mut buckets: Vec<Acc> = Vec::new();
    let mut phases: Vec<Acc> = (0..=offsets.len()).map(|_| Acc::new()).collect();
    let mut last_ns = 0u64;
    let (mut problem, mut damaged) = (None, false);
    for item in reader {
        let record = match item {
            Ok(record) => record,
            Err(e) => {
                damaged = !e.is_truncation();
                problem = Some(e.to_string());
                break;
            }
        };
        let ResultRecord::Exec(e) = record else {
            continue;
        };
        last_ns = last_ns.max(e.sent_ns);
        let b = usize::try_from((e.sent_ns / bucket_ns.max(1)).min(MAX_BUCKETS * 4))
            .unwrap_or(usize::MAX);
        while buckets.len() <= b {
            buckets.push(Acc::new());
        }
        let phase = offsets.partition_point(|(at, _)| *at <= e.sent_ns);
        for acc in [&mut buckets[b], &mut phases[phase]] {
            acc.record(e.latency_ns() / 1000, e.error.is_some());
        }
    }
    let end_s = last_ns as f64 / 1e9;
    Ok(Timeline {
        label: meta.label.clone(),
        run_id: meta.run_id.clone(),
        bucket_s,
        buckets: buckets
            .iter()
            .enumerate()
            .map(|(i, acc)| acc.stretch(i as f64 * bucket_s, (i + 1) as f64 * bucket_s, None))
            .collect(),
        phases: phase_stretches(&phases, &offsets, end_s),
        events: offsets
            .iter()
            .map(|(at, label)| (*at as f64 / 1e9, label.clone()))
            .filter(|(at, _)| *at <= end_s)
            .collect(),
        problem,
        damaged,
    })
}

/// Seconds per bucket: as asked, or the run's length / 300; at least 1 s, and wide
/// enough for the run to fit in [`MAX_BUCKETS`].
fn bucket_width(meta: &RunMeta, bucket: Option<f64>) -> f64 {
    // The run's length is only known at the end; the header's captured span / speed is
    // the planned one, good enough to size buckets (a longer run widens nothing: late
    // commands fall in the last bucket).
    let planned_s = match meta.speed {
        Some(f) if f > 0.0 => meta.captured_ns as f64 / 1e9 / f,
        _ => meta.captured_ns as f64 / 1e9,
    };
    bucket
        .unwrap_or(planned_s / 300.0)
        .max(1.0)
        .max(planned_s / MAX_BUCKETS as f64)
}

/// The phases that saw commands, each from its event (the first from the start) to the
/// next one (the last to the run's end).
fn phase_stretches(phases: &[Acc], offsets: &[(u64, String)], end_s: f64) -> Vec<Stretch> {
    let bounds: Vec<f64> = std::iter::once(0.0)
        .chain(offsets.iter().map(|(at, _)| *at as f64 / 1e9))
        .chain(std::iter::once(end_s))
        .collect();
    phases
        .iter()
        .enumerate()
        .filter(|(_, acc)| acc.commands > 0)
        .map(|(i, acc)| {
            let label = if i == 0 {
                "start".to_string()
            } else {
                offsets[i - 1].1.clone()
            };
            acc.stretch(bounds[i], bounds[i + 1].max(bounds[i]), Some(label))
        })
        .collect()
}
