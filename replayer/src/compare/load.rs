//! Streaming a results file into per-class statistics.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use captures::{Divergence, Divergent, Executed, ResultRecord, ResultsReader, RunEnd, RunMeta};
use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use captures::fingerprint::ClassId;

use crate::error::Error;
use crate::histogram::histogram;
pub use crate::routes::Routing;
use crate::verdict::{Facts, Verdict};

/// Latencies kept per class for the bootstrap (reservoir sampling). Enough for stable
/// p99 intervals, fixed memory (16 KiB per class and run).
pub const RESERVOIR: usize = 2000;

/// Per-second buckets kept for the latency-over-time chart (one hour).
pub const MAX_BUCKETS: usize = 3600;

#[derive(Debug)]
pub struct ClassRun {
    pub count: u64,
    pub total_ns: u64,
    pub errors: u64,
    /// Errors by code (compared between runs, not only with the capture).
    pub error_codes: BTreeMap<u16, u64>,
    /// Commands whose answer differed from the capture's, by kind.
    pub diverged: BTreeMap<Divergence, u64>,
    /// Latency in µs.
    pub hist: Histogram<u64>,
    /// Latency from the schedule (finished − scheduled, free of coordinated omission), µs.
    pub from_schedule: Histogram<u64>,
    /// Up to [`RESERVOIR`] latencies (µs), uniformly sampled.
    pub sample: Vec<u64>,
}

#[derive(Debug)]
pub struct RunData {
    pub path: PathBuf,
    pub meta: RunMeta,
    pub classes: HashMap<u64, ClassRun>,
    pub fingerprints: HashMap<u64, (String, Option<String>)>,
    pub routes: HashMap<u64, Routing>,
    pub commands: u64,
    pub errors: u64,
    /// Commands whose answer differed from the capture's.
    pub diverged: u64,
    /// The first diverging execution of each (class, kind), as the run recorded it.
    pub examples: HashMap<(u64, Divergence), Divergent>,
    pub total_ns: u64,
    pub wall_ns: u64,
    pub latency: Histogram<u64>,
    pub lag: Histogram<u64>,
    pub from_schedule: Histogram<u64>,
    /// Commands that could not be sent (target unreachable, connection lost).
    pub unreachable: u64,
    /// Latest scheduled send (ns after the start): the schedule's length.
    pub last_scheduled_ns: u64,
    /// Per second of the run: (commands, summed latency ns).
    pub timeline: Vec<(u64, u64)>,
    /// The run's closing record (absent in older files and killed runs).
    pub end: Option<RunEnd>,
}

impl RunData {
    /// Did this run keep its schedule (see [`crate::verdict`])?
    pub fn verdict(&self) -> Verdict {
        let end = self.end.clone().unwrap_or_default();
        let speed = self.meta.speed;
        // Files without an end record: the last scheduled send, scaled back by the speed.
        let captured_ns = if self.end.is_some() {
            end.captured_ns
        } else {
            (self.last_scheduled_ns as f64 * speed.unwrap_or(1.0)) as u64
        };
        Verdict::of(&Facts {
            speed,
            captured_ns,
            wall_ns: self.wall_ns,
            lag_p99_us: self.lag.value_at_quantile(0.99),
            commands: self.commands,
            errors: self.errors,
            unreachable: self.unreachable,
            captured_commands: end.captured_commands,
            captured_errors: end.captured_errors,
        })
    }

    pub fn summary_json(&self) -> super::RunSummaryJson {
        let ms = |v: u64| v as f64 / 1000.0;
        let wall_s = self.wall_ns as f64 / 1e9;
        super::RunSummaryJson {
            file: self.path.display().to_string(),
            label: self.meta.label.clone(),
            run_id: self.meta.run_id.clone(),
            target: self.meta.target.clone(),
            server_version: self.meta.server_version.clone(),
            speed: self.meta.speed,
            commands: self.commands,
            errors: self.errors,
            diverged: self.diverged,
            wall_s,
            throughput: self.commands as f64 / wall_s.max(1e-9),
            total_time_s: self.total_ns as f64 / 1e9,
            latency_p50_ms: ms(self.latency.value_at_quantile(0.5)),
            latency_p99_ms: ms(self.latency.value_at_quantile(0.99)),
            lag_p99_ms: ms(self.lag.value_at_quantile(0.99)),
            from_schedule_p50_ms: ms(self.from_schedule.value_at_quantile(0.5)),
            from_schedule_p99_ms: ms(self.from_schedule.value_at_quantile(0.99)),
            verdict: self.verdict(),
            connections: self.end.as_ref().map(|e| e.connections.clone()),
            peak_connections: self.end.as_ref().map(|e| e.peak_connections),
            pinned: self
                .end
                .as_ref()
                .map(|e| e.pinned.clone())
                .unwrap_or_default(),
            sync_waits: self
                .end
                .as_ref()
                .filter(|e| e.sync_commits)
                .map(|e| e.sync_waits),
        }
    }
}

/// Reads one results file (and its routes sidecar, if any). A file cut short (a killed
/// replay) gives what it holds, with a warning; a damaged one is an error.
pub fn load_run(path: &Path) -> Result<RunData, Error> {
    let results_error = |source| Error::Results {
        path: path.to_path_buf(),
        source,
    };
    let reader = ResultsReader::open(path).map_err(results_error)?;
    let mut run = RunData::new(path, reader.header().clone());
    // Seeded: the bootstrap's sample, and so a report, is the same on every read.
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    for item in reader {
        match item {
            Ok(record) => run.add(record, &mut rng),
            Err(e) if e.is_truncation() => {
                tracing::warn!("{}: {e}; using the records before it", path.display());
                break;
            }
            Err(e) => return Err(results_error(e)),
        }
    }
    run.routes = read_routes(path)?;
    Ok(run)
}

impl RunData {
    fn new(path: &Path, meta: RunMeta) -> Self {
        RunData {
            path: path.to_path_buf(),
            meta,
            classes: HashMap::new(),
            fingerprints: HashMap::new(),
            routes: HashMap::new(),
            commands: 0,
            errors: 0,
            diverged: 0,
            examples: HashMap::new(),
            total_ns: 0,
            wall_ns: 0,
            latency: histogram(),
            lag: histogram(),
            from_schedule: histogram(),
            unreachable: 0,
            last_scheduled_ns: 0,
            timeline: Vec::new(),
            end: None,
        }
    }

    fn add(&mut self, record: ResultRecord, rng: &mut SmallRng) {
        match record {
            ResultRecord::Class {
                class,
                fingerprint,
                example,
            } => {
                self.fingerprints.insert(class, (fingerprint, example));
            }
            ResultRecord::Exec(e) => self.add_exec(&e, rng),
            ResultRecord::End(end) => self.end = Some(end),
            ResultRecord::Diverged(d) => {
                self.examples.entry((d.class, d.divergence)).or_insert(*d);
            }
        }
    }

    fn add_exec(&mut self, e: &Executed, rng: &mut SmallRng) {
        let lat_ns = e.latency_ns();
        self.commands += 1;
        self.total_ns += lat_ns;
        self.wall_ns = self.wall_ns.max(e.finished_ns);
        let _ = self.latency.record((lat_ns / 1000).max(1));
        let _ = self.lag.record((e.lag_ns() / 1000).max(1));
        let _ = self.from_schedule.record((e.corrected_ns() / 1000).max(1));
        self.last_scheduled_ns = self.last_scheduled_ns.max(e.scheduled_ns);
        self.errors += u64::from(e.error.is_some());
        self.unreachable += u64::from(e.error.is_some_and(crate::verdict::is_unreachable));
        self.diverged += u64::from(!e.divergence.is_none());
        let second = usize::try_from(e.sent_ns / 1_000_000_000).unwrap_or(usize::MAX);
        if second < MAX_BUCKETS {
            if self.timeline.len() <= second {
                self.timeline.resize(second + 1, (0, 0));
            }
            self.timeline[second].0 += 1;
            self.timeline[second].1 += lat_ns;
        }
        self.classes
            .entry(e.class)
            .or_insert_with(ClassRun::new)
            .add(e, rng);
    }
}

impl ClassRun {
    fn new() -> Self {
        ClassRun {
            count: 0,
            total_ns: 0,
            errors: 0,
            error_codes: BTreeMap::new(),
            diverged: BTreeMap::new(),
            hist: histogram(),
            from_schedule: histogram(),
            sample: Vec::new(),
        }
    }

    fn add(&mut self, e: &Executed, rng: &mut SmallRng) {
        let lat_us = (e.latency_ns() / 1000).max(1);
        self.count += 1;
        self.total_ns += e.latency_ns();
        self.errors += u64::from(e.error.is_some());
        if let Some(code) = e.error {
            *self.error_codes.entry(code).or_default() += 1;
        }
        if !e.divergence.is_none() {
            *self.diverged.entry(e.divergence).or_default() += 1;
        }
        let _ = self.hist.record(lat_us);
        let _ = self.from_schedule.record((e.corrected_ns() / 1000).max(1));
        // Reservoir sampling (Algorithm R): every execution equally likely kept.
        if self.sample.len() < RESERVOIR {
            self.sample.push(lat_us);
        } else {
            let j = rng.random_range(0..self.count);
            if let Ok(j) = usize::try_from(j)
                && j < RESERVOIR
            {
                self.sample[j] = lat_us;
            }
        }
    }
}

/// The `<results>.routes.json` sidecar `replayer run` writes against vtgate, if any.
fn read_routes(results: &Path) -> Result<HashMap<u64, Routing>, Error> {
    let sidecar = PathBuf::from(format!("{}.routes.json", results.display()));
    let Ok(text) = std::fs::read_to_string(&sidecar) else {
        return Ok(HashMap::new());
    };
    let routes: HashMap<ClassId, Routing> =
        serde_json::from_str(&text).map_err(|e| Error::Sidecar {
            path: sidecar,
            reason: e.to_string(),
        })?;
    Ok(routes
        .into_iter()
        .map(|(id, routing)| (id.0, routing))
        .collect())
}
