//! The InfluxQL the dashboard sends. Every statement is bounded: an explicit time
//! range, a `GROUP BY time(step)` with the step chosen so a series has at most
//! [`MAX_POINTS`] points, and an `SLIMIT` (or `LIMIT`) on how many series come back.
//!
//! Measurements and fields are what Telegraf's statsd input makes of the tools' metrics
//! (playground/config/telegraf.conf): timings (`replay.query.latency`, `replay.query.lag`,
//! `shop.request.latency`) become `count`, `mean`, `upper`, `50_percentile`,
//! `99_percentile`… per 1 s flush; counters (`replay.errors`, `recorder.commands`,
//! `recorder.capture.dropped`) become `value`, the count in that second.

/// Points per series at most: a chart ~700 px wide gains nothing from more.
pub const MAX_POINTS: i64 = 150;
/// Runs drawn per chart (series are ordered by tag value, so these are the first runs
/// alphabetically; a demo has seven).
pub const MAX_RUNS: usize = 10;
/// Shop routes drawn (the shop has twelve).
pub const MAX_ROUTES: usize = 16;
/// Slowest classes drawn.
pub const TOP_CLASSES: usize = 8;
/// Event markers drawn (the most recent ones).
pub const MAX_EVENTS: usize = 100;
/// "Whole demo" looks back at most this far.
pub const WHOLE_MAX_MS: i64 = 24 * 3600 * 1000;

/// The time range the page asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Last5m,
    Last15m,
    Last1h,
    /// From the first data point (at most [`WHOLE_MAX_MS`] ago).
    Whole,
}

impl Range {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "5m" => Range::Last5m,
            "15m" => Range::Last15m,
            "1h" => Range::Last1h,
            "all" => Range::Whole,
            _ => return None,
        })
    }

    /// The span looked back from now, for the fixed ranges.
    pub fn span_ms(self) -> Option<i64> {
        match self {
            Range::Last5m => Some(5 * 60_000),
            Range::Last15m => Some(15 * 60_000),
            Range::Last1h => Some(3_600_000),
            Range::Whole => None,
        }
    }
}

/// Steps a window may use, in seconds: Telegraf flushes every second, so 1 s is the
/// finest there is.
const STEPS: &[i64] = &[
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200,
];

/// An explicit time range and the `GROUP BY time()` step for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start_ms: i64,
    pub end_ms: i64,
    pub step_s: i64,
}

impl Window {
    pub fn new(start_ms: i64, end_ms: i64) -> Self {
        let end_ms = end_ms.max(start_ms + 1000);
        let start_ms = start_ms.max(end_ms - WHOLE_MAX_MS);
        let span_s = (end_ms - start_ms + 999) / 1000;
        let step_s = STEPS
            .iter()
            .copied()
            .find(|step| span_s <= step * MAX_POINTS)
            .unwrap_or(7200);
        Window {
            start_ms,
            end_ms,
            step_s,
        }
    }

    fn time(&self) -> String {
        format!("time >= {}ms AND time < {}ms", self.start_ms, self.end_ms)
    }

    fn group(&self) -> String {
        format!("GROUP BY time({}s)", self.step_s)
    }
}

/// An InfluxQL string literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// Per-second counts summed per step and per tag (rate = sum / step).
pub fn sum_by(w: &Window, measurement: &str, field: &str, tag: &str, slimit: usize) -> String {
    format!(
        r#"SELECT sum("{field}") FROM "{measurement}" WHERE {time} {group}, "{tag}" fill(none) SLIMIT {slimit}"#,
        time = w.time(),
        group = w.group()
    )
}

/// Per-second counts summed per step over every series (one line).
pub fn sum_all(w: &Window, measurement: &str, field: &str) -> String {
    format!(
        r#"SELECT sum("{field}") FROM "{measurement}" WHERE {time} {group} fill(none)"#,
        time = w.time(),
        group = w.group()
    )
}

/// A percentile field of a timing, averaged over its classes weighted by how many
/// commands each had, per step and per run. Telegraf computes percentiles per class
/// and second; a run's true percentile would need the raw timings, and the
/// count-weighted mean is the closest InfluxQL can get (exact for one class).
pub fn weighted_by_run(w: &Window, measurement: &str, field: &str) -> String {
    format!(
        r#"SELECT sum("w") / sum("count") AS "v" FROM (SELECT "{field}" * "count" AS "w", "count" FROM "{measurement}" WHERE {time} GROUP BY "run") WHERE {time} {group}, "run" fill(none) SLIMIT {MAX_RUNS}"#,
        time = w.time(),
        group = w.group()
    )
}

/// The [`TOP_CLASSES`] classes of `run` with the highest mean p99 over the window, one
/// row each (`top`, `class`). InfluxDB ranks every class; only the top come back, so
/// the answer is the same size with ten classes or ten thousand.
pub fn rank_classes(w: &Window, run: &str) -> String {
    format!(
        r#"SELECT top("m", "class", {TOP_CLASSES}) FROM (SELECT mean("99_percentile") AS "m" FROM "replay.query.latency" WHERE {time} AND "run" = {run} GROUP BY "class") WHERE {time}"#,
        time = w.time(),
        run = literal(run)
    )
}

/// The p99 over time of the given classes (hex ids) of `run`.
pub fn class_p99(w: &Window, run: &str, classes: &[String]) -> String {
    // Class ids are hex digits, safe inside a regex; anything else is dropped.
    let ids: Vec<&str> = classes
        .iter()
        .map(String::as_str)
        .filter(|c| !c.is_empty() && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .take(TOP_CLASSES)
        .collect();
    format!(
        r#"SELECT max("99_percentile") FROM "replay.query.latency" WHERE {time} AND "run" = {run} AND "class" =~ /^({ids})$/ {group}, "class", "cmd" fill(none) SLIMIT {TOP_CLASSES}"#,
        time = w.time(),
        run = literal(run),
        ids = ids.join("|"),
        group = w.group()
    )
}

/// The runs with data in the window, each with the time of its last point.
pub fn runs(w: &Window) -> String {
    format!(
        r#"SELECT last("count") FROM "replay.query.latency" WHERE {time} GROUP BY "run" SLIMIT 50"#,
        time = w.time()
    )
}

/// The most recent events of the window.
pub fn events(w: &Window) -> String {
    format!(
        r#"SELECT "label", "kind", "source", "run" FROM "events" WHERE {time} ORDER BY time DESC LIMIT {MAX_EVENTS}"#,
        time = w.time()
    )
}

/// The first point of each measurement the dashboard draws, within a day: where
/// "whole demo" starts.
pub fn earliest(now_ms: i64) -> String {
    let since = now_ms - WHOLE_MAX_MS;
    [
        ("replay.query.latency", "count"),
        ("shop.request.latency", "count"),
        ("recorder.commands", "value"),
        ("events", "label"),
    ]
    .iter()
    .map(|(m, f)| format!(r#"SELECT first("{f}") FROM "{m}" WHERE time >= {since}ms"#))
    .collect::<Vec<_>>()
    .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_window_has_at_most_max_points_per_series() {
        let now = 1_800_000_000_000;
        for span in [
            1_000,
            60_000,
            300_000,
            900_000,
            3_600_000,
            86_400_000,
            i64::MAX / 4,
        ] {
            let w = Window::new(now - span.min(now), now);
            let span_s = (w.end_ms - w.start_ms) / 1000;
            assert!(span_s / w.step_s <= MAX_POINTS, "{span} → {w:?}");
            assert!(w.end_ms - w.start_ms <= WHOLE_MAX_MS);
        }
        assert_eq!(Window::new(now - 300_000, now).step_s, 2);
    }

    #[test]
    fn every_query_is_bounded_in_time_and_series() {
        let w = Window::new(1_000_000, 1_300_000);
        let many: Vec<String> = (0..5000).map(|i| format!("{i:016x}")).collect();
        for q in [
            sum_by(&w, "replay.query.latency", "count", "run", MAX_RUNS),
            weighted_by_run(&w, "replay.query.latency", "50_percentile"),
            rank_classes(&w, "r"),
            class_p99(&w, "r", &many),
            runs(&w),
            events(&w),
        ] {
            assert!(q.contains("time >= 1000000ms AND time < 1300000ms"), "{q}");
            assert!(
                q.contains("SLIMIT") || q.contains("LIMIT") || q.contains("top("),
                "{q}"
            );
        }
        let q = class_p99(&w, "r", &many);
        assert_eq!(q.matches('|').count(), TOP_CLASSES - 1, "{q}");
    }

    #[test]
    fn run_names_cannot_break_out_of_their_literal() {
        assert_eq!(literal(r"a'b\"), r"'a\'b\\'");
        let q = class_p99(&Window::new(0, 1000), "x", &["abc".into(), "1|.*".into()]);
        assert!(q.contains("/^(abc)$/"), "{q}");
    }
}
