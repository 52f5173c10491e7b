//! `replayer compare`: per-class statistics across results files, baseline first.
//!
//! Each results file is streamed once into fixed-size per-class HdrHistograms plus a
//! bounded reservoir of latencies (for the bootstrap), so memory depends on the number
//! of classes, not on the length of the run.

pub mod answers;
mod bootstrap;
mod load;

use captures::fingerprint::ClassId;
use serde::Serialize;

pub use load::{ClassRun, Routing, RunData, load_run};

/// What a comparison is judged by (the command line's `--threshold`, `--min-samples`,
/// `--verdict-on`, `--ignore-class`).
#[derive(Debug, Clone)]
pub struct CompareOptions {
    /// A change smaller than this (%) is "no significant change".
    pub threshold: f64,
    /// Classes with fewer executions than this in either run get no verdict.
    pub min_samples: u64,
    pub verdict_on: Quantile,
    /// Classes left out of "answers that changed".
    pub ignore_class: Vec<ClassId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantile {
    P50,
    P99,
}

/// The whole comparison, as the JSON file holds it.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub schema_version: u32,
    pub threshold_pct: f64,
    pub min_samples: u64,
    pub verdict_on: Quantile,
    pub runs: Vec<RunSummaryJson>,
    /// Answers that changed: divergences from the capture, per run and class.
    pub answers: answers::Answers,
    pub classes: Vec<ClassJson>,
}

#[derive(Debug, Serialize)]
pub struct RunSummaryJson {
    pub file: String,
    pub label: String,
    pub run_id: String,
    pub target: String,
    pub server_version: String,
    pub speed: Option<f64>,
    pub commands: u64,
    pub errors: u64,
    /// Commands whose answer differed from the capture's.
    pub diverged: u64,
    pub wall_s: f64,
    pub throughput: f64,
    pub total_time_s: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub lag_p99_ms: f64,
    /// Latency measured from the schedule (finished − scheduled): what the application
    /// would have seen, free of coordinated omission.
    pub from_schedule_p50_ms: f64,
    pub from_schedule_p99_ms: f64,
    /// Did the run keep its schedule? Ratios of a run that fell behind describe a
    /// lower load than its speed names; an invalid run gets no ratios.
    pub verdict: crate::verdict::Verdict,
    /// `pooled` or `captured` (absent in files of older versions).
    pub connections: Option<String>,
    pub peak_connections: Option<u64>,
    pub pinned: Vec<(String, u64)>,
    /// With `--sync commits`: units that waited for earlier commits.
    pub sync_waits: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct ClassJson {
    pub id: ClassId,
    pub fingerprint: String,
    pub example: Option<String>,
    /// One entry per run, in run order; `null` where the class did not occur.
    pub runs: Vec<Option<ClassRunJson>>,
}

#[derive(Debug, Serialize)]
pub struct ClassRunJson {
    pub count: u64,
    /// Share of the run's total execution time spent in this class.
    pub time_share: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// p99 measured from the schedule (see [`RunSummaryJson::from_schedule_p99_ms`]).
    pub from_schedule_p99_ms: f64,
    pub errors: u64,
    /// Commands whose answer differed from the capture's (kinds in `answers`).
    pub diverged: u64,
    pub routing: Option<Routing>,
    /// Against the baseline (absent for the baseline itself).
    pub vs_base: Option<Delta>,
}

/// A class that vtgate routes to every shard in some run.
#[derive(Debug, Clone)]
pub struct ScatterClass<'a> {
    pub class: &'a ClassJson,
    /// Index into `Comparison::runs`.
    pub run: usize,
    pub opcode: &'a str,
    /// p50 ratio against the baseline, when there is one.
    pub p50_ratio: Option<f64>,
}

impl Comparison {
    /// Every (class, run) whose route touches all shards, busiest classes first: the
    /// question users ask first after sharding.
    pub fn scatter_classes(&self) -> Vec<ScatterClass<'_>> {
        let mut out = Vec::new();
        for class in &self.classes {
            for (run, r) in class.runs.iter().enumerate() {
                if let Some(r) = r
                    && let Some(routing) = &r.routing
                    && routing.is_scatter()
                {
                    out.push(ScatterClass {
                        class,
                        run,
                        opcode: &routing.opcode,
                        p50_ratio: r.vs_base.as_ref().map(|d| d.p50_ratio),
                    });
                }
            }
        }
        out
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    pub p50_ratio: f64,
    pub p50_ci: [f64; 2],
    pub p99_ratio: f64,
    pub p99_ci: [f64; 2],
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Faster,
    Slower,
    NoSignificantChange,
    Insufficient,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "SLOWER",
            Verdict::NoSignificantChange => "same",
            Verdict::Insufficient => "few samples",
        }
    }
}

/// Builds the comparison from loaded runs.
pub fn compare(runs: &[RunData], args: &CompareOptions) -> Comparison {
    let mut comparison = Comparison {
        schema_version: 2,
        threshold_pct: args.threshold,
        min_samples: args.min_samples,
        verdict_on: args.verdict_on,
        runs: runs.iter().map(RunData::summary_json).collect(),
        answers: answers::Answers::default(),
        classes: Vec::new(),
    };
    // No baseline, nothing to compare (the command line asks for one file at least).
    if runs.is_empty() {
        return comparison;
    }
    let invalid: Vec<bool> = runs.iter().map(|r| r.verdict().is_invalid()).collect();
    comparison.classes = class_order(runs)
        .into_iter()
        .map(|id| class_json(id, runs, &invalid, args))
        .collect();
    let fingerprint = |id: u64| fingerprint_of(runs, id).0;
    let ignored = args.ignore_class.iter().map(|c| c.0).collect();
    comparison.answers = answers::answers(runs, &ignored, fingerprint);
    comparison
}

/// Every class of any run, by the baseline's total time (then the others').
fn class_order(runs: &[RunData]) -> Vec<u64> {
    let base = &runs[0];
    let ids: std::collections::BTreeSet<u64> = runs
        .iter()
        .flat_map(|r| r.classes.keys().copied())
        .collect();
    let total_of = |id: &u64| -> u64 {
        runs.iter()
            .map(|r| r.classes.get(id).map_or(0, |c| c.total_ns))
            .max()
            .unwrap_or(0)
    };
    let mut ids: Vec<u64> = ids.into_iter().collect();
    ids.sort_by(|a, b| {
        let ta = base.classes.get(a).map_or(0, |c| c.total_ns);
        let tb = base.classes.get(b).map_or(0, |c| c.total_ns);
        tb.cmp(&ta)
            .then(total_of(b).cmp(&total_of(a)))
            .then(a.cmp(b))
    });
    ids
}

/// A class's fingerprint and example, from the first run that defines it.
fn fingerprint_of(runs: &[RunData], id: u64) -> (String, Option<String>) {
    runs.iter()
        .find_map(|r| r.fingerprints.get(&id))
        .cloned()
        .unwrap_or_else(|| (format!("class {id:016x}"), None))
}

/// One class across the runs; ratios against the baseline unless either run is invalid.
fn class_json(id: u64, runs: &[RunData], invalid: &[bool], args: &CompareOptions) -> ClassJson {
    let base_class = runs[0].classes.get(&id);
    let per_run = runs
        .iter()
        .enumerate()
        .map(|(i, run)| {
            let c = run.classes.get(&id)?;
            let ms = |v: u64| v as f64 / 1000.0;
            let vs_base = match (i, base_class) {
                (0, _) | (_, None) => None,
                // A failed run (or baseline) answers nothing: no ratios.
                _ if invalid[i] || invalid[0] => None,
                (_, Some(b)) => Some(delta(b, c, args)),
            };
            Some(ClassRunJson {
                count: c.count,
                time_share: c.total_ns as f64 / run.total_ns.max(1) as f64,
                p50_ms: ms(c.hist.value_at_quantile(0.5)),
                p95_ms: ms(c.hist.value_at_quantile(0.95)),
                p99_ms: ms(c.hist.value_at_quantile(0.99)),
                max_ms: ms(c.hist.max()),
                from_schedule_p99_ms: ms(c.from_schedule.value_at_quantile(0.99)),
                errors: c.errors,
                diverged: c.diverged.values().sum(),
                routing: run.routes.get(&id).cloned(),
                vs_base,
            })
        })
        .collect();
    let (fingerprint, example) = fingerprint_of(runs, id);
    ClassJson {
        id: ClassId(id),
        fingerprint,
        example,
        runs: per_run,
    }
}

fn delta(base: &ClassRun, new: &ClassRun, args: &CompareOptions) -> Delta {
    let seed = base.count ^ new.count.rotate_left(17);
    let (p50_ratio, p50_ci) = bootstrap::ratio_ci(&base.sample, &new.sample, 0.5, seed);
    let (p99_ratio, p99_ci) = bootstrap::ratio_ci(&base.sample, &new.sample, 0.99, seed ^ 0x99);
    let (ratio, ci) = match args.verdict_on {
        Quantile::P50 => (p50_ratio, p50_ci),
        Quantile::P99 => (p99_ratio, p99_ci),
    };
    let t = args.threshold / 100.0;
    let verdict = if base.count < args.min_samples || new.count < args.min_samples {
        Verdict::Insufficient
    } else if ci[0] > 1.0 && ratio > 1.0 + t {
        Verdict::Slower
    } else if ci[1] < 1.0 && ratio < 1.0 / (1.0 + t) {
        Verdict::Faster
    } else {
        Verdict::NoSignificantChange
    };
    Delta {
        p50_ratio,
        p50_ci,
        p99_ratio,
        p99_ci,
        verdict,
    }
}

/// Whether `--fail-on-regression PCT` trips: a significantly slower class, beyond PCT.
pub fn regressions(c: &Comparison, pct: f64) -> Vec<(ClassId, String, f64)> {
    let mut out = Vec::new();
    for class in &c.classes {
        for (i, run) in class.runs.iter().enumerate() {
            let Some(d) = run.as_ref().and_then(|r| r.vs_base.as_ref()) else {
                continue;
            };
            let ratio = match c.verdict_on {
                Quantile::P50 => d.p50_ratio,
                Quantile::P99 => d.p99_ratio,
            };
            if d.verdict == Verdict::Slower && ratio > 1.0 + pct / 100.0 {
                out.push((class.id, c.runs[i].label.clone(), ratio));
            }
        }
    }
    out
}

/// Runs that fell behind their schedule or are invalid: (label, verdict).
pub fn schedule_failures(c: &Comparison) -> Vec<(&str, &crate::verdict::Verdict)> {
    c.runs
        .iter()
        .filter(|r| r.verdict.fell_behind() || r.verdict.is_invalid())
        .map(|r| (r.label.as_str(), &r.verdict))
        .collect()
}
