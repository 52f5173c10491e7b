//! What each view shows, and the InfluxDB queries that fill it.

use super::classes::{ClassNames, shorten};
use super::influx::{Influx, InfluxError, Series};
use super::queries::{self as q, Window};

/// A line on a chart: `key` picks its colour (a run keeps its colour across charts).
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub key: String,
    pub points: Vec<(i64, f64)>,
    /// Drawn thick (p99) rather than thin (p50).
    pub bold: bool,
}

/// One chart, or the sentence shown instead while it has no data.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub unit: &'static str,
    /// Logarithmic y axis when the values span more than a decade or so (latency).
    pub log_y: bool,
    pub lines: Vec<Line>,
    pub empty: &'static str,
}

/// A vertical marker: replay start/end, ramp step, reshard phase, demo stage.
#[derive(Debug, Clone)]
pub struct Marker {
    pub at_ms: i64,
    pub label: String,
    pub kind: String,
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Replay,
    Latency,
    Classes,
    Lag,
    Shop,
    Recorder,
    Events,
}

impl View {
    pub const ALL: [View; 7] = [
        View::Replay,
        View::Latency,
        View::Classes,
        View::Lag,
        View::Shop,
        View::Recorder,
        View::Events,
    ];

    pub fn id(self) -> &'static str {
        match self {
            View::Replay => "replay",
            View::Latency => "latency",
            View::Classes => "classes",
            View::Lag => "lag",
            View::Shop => "shop",
            View::Recorder => "recorder",
            View::Events => "events",
        }
    }

    pub fn parse(id: &str) -> Option<View> {
        View::ALL.into_iter().find(|v| v.id() == id)
    }

    pub fn title(self) -> &'static str {
        match self {
            View::Replay => "Replay load",
            View::Latency => "Latency per run",
            View::Classes => "Slowest query classes",
            View::Lag => "Schedule lag",
            View::Shop => "Shop requests",
            View::Recorder => "Recorder",
            View::Events => "Events",
        }
    }

    /// The question the view answers, shown under its title.
    pub fn question(self) -> &'static str {
        match self {
            View::Replay => "How much is each replay sending, and is the target failing any of it?",
            View::Latency => {
                "How fast does the target answer, typically (p50, thin) and at worst (p99, thick)?"
            }
            View::Classes => {
                "Which queries got slow, and when? (p99 of the chosen run's slowest classes)"
            }
            View::Lag => "Is the replayer keeping the capture's schedule, or falling behind?",
            View::Shop => "What is the application doing, route by route?",
            View::Recorder => "How much is being recorded, and is the capture dropping records?",
            View::Events => "What happened when: replays, ramp steps, reshard phases, demo stages.",
        }
    }

    /// What the view is waiting for while it has no data.
    pub fn waiting(self) -> &'static str {
        match self {
            View::Replay | View::Latency | View::Classes | View::Lag => {
                "Waiting for a replay: nothing from `replayer run --statsd` in this time range yet."
            }
            View::Shop => {
                "Waiting for the shop: no requests from `shop serve --statsd` in this time range yet."
            }
            View::Recorder => {
                "Waiting for the recorder: no commands from `recorder --statsd` in this time range yet."
            }
            View::Events => {
                "No events in this time range yet (replays, ramp steps, reshard phases)."
            }
        }
    }
}

/// Everything a view draws.
#[derive(Debug, Clone)]
pub struct ViewData {
    pub panels: Vec<Panel>,
    pub markers: Vec<Marker>,
    pub window: Window,
}

impl ViewData {
    pub fn has_data(&self) -> bool {
        self.panels.iter().any(|p| !p.lines.is_empty())
    }
}

const LATENCY: &str = "replay.query.latency";

/// Queries InfluxDB for one view. `run` chooses the run of the classes view (default:
/// the run with the most recent data).
pub async fn fetch(
    influx: &Influx,
    names: &ClassNames,
    view: View,
    w: Window,
    run: Option<&str>,
) -> Result<ViewData, InfluxError> {
    let (panels, markers) = tokio::join!(panels(influx, names, view, &w, run), markers(influx, &w));
    Ok(ViewData {
        panels: panels?,
        markers: markers?,
        window: w,
    })
}

async fn panels(
    influx: &Influx,
    names: &ClassNames,
    view: View,
    w: &Window,
    run: Option<&str>,
) -> Result<Vec<Panel>, InfluxError> {
    Ok(match view {
        View::Replay => {
            let r = influx
                .query(&join(&[
                    q::sum_by(w, LATENCY, "count", "run", q::MAX_RUNS),
                    q::sum_by(w, "replay.errors", "value", "run", q::MAX_RUNS),
                ]))
                .await?;
            vec![
                rate_panel("commands/s per run", "commands/s", nth(&r, 0), "run", w),
                Panel {
                    empty: "No replay errors in this time range.",
                    ..rate_panel("errors/s per run", "errors/s", nth(&r, 1), "run", w)
                },
            ]
        }
        View::Latency => vec![percentiles(influx, w, LATENCY, "latency ms", true).await?],
        View::Lag => vec![Panel {
            title: "schedule lag p99 per run (ms behind the capture's timing)".into(),
            ..percentiles(influx, w, "replay.query.lag", "lag ms", false).await?
        }],
        View::Classes => vec![classes(influx, names, w, run).await?],
        View::Shop => {
            let r = influx
                .query(&q::sum_by(
                    w,
                    "shop.request.latency",
                    "count",
                    "route",
                    q::MAX_ROUTES,
                ))
                .await?;
            vec![rate_panel(
                "requests/s per route",
                "requests/s",
                nth(&r, 0),
                "route",
                w,
            )]
        }
        View::Recorder => recorder(influx, w).await?,
        View::Events => Vec::new(),
    })
}

fn join(statements: &[String]) -> String {
    statements.join("; ")
}

fn nth(results: &[Vec<Series>], i: usize) -> &[Series] {
    results.get(i).map_or(&[], Vec::as_slice)
}

/// Per-step sums of per-second counts, as a rate per second, one line per `tag`.
fn rate_panel(title: &str, unit: &'static str, series: &[Series], tag: &str, w: &Window) -> Panel {
    Panel {
        title: title.into(),
        unit,
        log_y: false,
        lines: series.iter().map(|s| rate_line(s, s.tag(tag), w)).collect(),
        empty: "No data in this time range yet.",
    }
}

/// A series of per-step sums of per-second counts, as a rate per second.
fn rate_line(series: &Series, name: &str, w: &Window) -> Line {
    let step = w.step_s as f64;
    Line {
        name: name.into(),
        key: name.into(),
        points: series
            .points("sum")
            .into_iter()
            .map(|(t, v)| (t, v / step))
            .collect(),
        bold: true,
    }
}

/// p99 (bold) and p50 (thin) of a timing per run.
async fn percentiles(
    influx: &Influx,
    w: &Window,
    measurement: &str,
    unit: &'static str,
    with_p50: bool,
) -> Result<Panel, InfluxError> {
    let mut statements = vec![q::weighted_by_run(w, measurement, "99_percentile")];
    if with_p50 {
        statements.push(q::weighted_by_run(w, measurement, "50_percentile"));
    }
    let r = influx.query(&join(&statements)).await?;
    let mut lines = Vec::new();
    for (i, label) in ["p99", "p50"].iter().enumerate().take(statements.len()) {
        lines.extend(nth(&r, i).iter().map(|s| Line {
            name: format!("{} {label}", s.tag("run")),
            key: s.tag("run").into(),
            points: s.points("v"),
            bold: i == 0,
        }));
    }
    Ok(Panel {
        title: "p50 and p99 per run (count-weighted over query classes)".into(),
        unit,
        log_y: with_p50,
        lines,
        empty: "No data in this time range yet.",
    })
}

async fn recorder(influx: &Influx, w: &Window) -> Result<Vec<Panel>, InfluxError> {
    let r = influx
        .query(&join(&[
            q::sum_all(w, "recorder.commands", "value"),
            q::sum_all(w, "recorder.capture.dropped", "value"),
        ]))
        .await?;
    let line = |i: usize, name: &str| nth(&r, i).first().map(|s| rate_line(s, name, w));
    Ok(vec![
        Panel {
            title: "commands recorded/s".into(),
            unit: "commands/s",
            log_y: false,
            lines: line(0, "commands/s").into_iter().collect(),
            empty: "No data in this time range yet.",
        },
        Panel {
            title: "capture records dropped/s (the disk fell behind)".into(),
            unit: "dropped/s",
            log_y: false,
            lines: line(1, "dropped/s").into_iter().collect(),
            empty: "No capture records dropped in this time range.",
        },
    ])
}

/// The p99 over time of the chosen run's slowest classes.
async fn classes(
    influx: &Influx,
    names: &ClassNames,
    w: &Window,
    run: Option<&str>,
) -> Result<Panel, InfluxError> {
    let run = match run.filter(|r| !r.is_empty()) {
        Some(run) => run.to_string(),
        None => runs(influx, w)
            .await?
            .into_iter()
            .next()
            .unwrap_or_default(),
    };
    let mut panel = Panel {
        title: format!("p99 of the {} slowest classes of run {run}", q::TOP_CLASSES),
        unit: "p99 ms",
        log_y: true,
        lines: Vec::new(),
        empty: "No data for this run in this time range.",
    };
    if run.is_empty() {
        return Ok(panel);
    }
    let ranked = influx.query(&q::rank_classes(w, &run)).await?;
    let top: Vec<String> = nth(&ranked, 0)
        .iter()
        .flat_map(|s| {
            let class = s.columns.iter().position(|c| c == "class");
            s.values
                .iter()
                .filter_map(move |row| Some(row.get(class?)?.as_str()?.to_string()))
        })
        .collect();
    if top.is_empty() {
        return Ok(panel);
    }
    let r = influx.query(&q::class_p99(w, &run, &top)).await?;
    panel.lines = nth(&r, 0)
        .iter()
        .map(|s| Line {
            name: class_name(names, s.tag("class"), s.tag("cmd")),
            key: s.tag("class").into(),
            points: s.points("max"),
            bold: true,
        })
        .collect();
    Ok(panel)
}

/// `id (cmd)`, followed by the class's fingerprint when it is known.
fn class_name(names: &ClassNames, class: &str, cmd: &str) -> String {
    match names.get(class) {
        Some(fingerprint) => format!("{class} ({cmd}) {}", shorten(&fingerprint, 60)),
        None => format!("{class} ({cmd})"),
    }
}

/// Runs with data in the window, the most recently active first.
pub async fn runs(influx: &Influx, w: &Window) -> Result<Vec<String>, InfluxError> {
    let r = influx.query(&q::runs(w)).await?;
    let mut runs: Vec<(i64, String)> = nth(&r, 0)
        .iter()
        .filter_map(|s| {
            Some((
                s.values.first()?.first()?.as_i64()?,
                s.tag("run").to_string(),
            ))
        })
        .collect();
    runs.sort_by(|a, b| b.cmp(a));
    Ok(runs.into_iter().map(|r| r.1).collect())
}

async fn markers(influx: &Influx, w: &Window) -> Result<Vec<Marker>, InfluxError> {
    let r = influx.query(&q::events(w)).await?;
    let Some(s) = nth(&r, 0).first() else {
        return Ok(Vec::new());
    };
    let col = |name: &str| s.columns.iter().position(|c| c == name);
    let (label, kind, source) = (col("label"), col("kind"), col("source"));
    let text = |row: &[serde_json::Value], i: Option<usize>| {
        i.and_then(|i| row.get(i)?.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut markers: Vec<Marker> = s
        .values
        .iter()
        .filter_map(|row| {
            Some(Marker {
                at_ms: row.first()?.as_i64()?,
                label: text(row, label),
                kind: text(row, kind),
                source: text(row, source),
            })
        })
        .collect();
    markers.sort_by_key(|m| m.at_ms);
    Ok(markers)
}

/// Where "whole demo" starts: the first point of anything the dashboard draws.
pub async fn earliest(influx: &Influx, now_ms: i64) -> Result<Option<i64>, InfluxError> {
    let r = influx.query(&q::earliest(now_ms)).await?;
    Ok(r.iter()
        .flatten()
        .filter_map(|s| s.values.first()?.first()?.as_i64())
        .min())
}
