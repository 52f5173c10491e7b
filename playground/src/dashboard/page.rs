//! HTML: the page shell (embedded, so it works offline) and the fragments the page's
//! script swaps in. Everything that came from InfluxDB or the request is escaped.

use std::fmt::Write as _;

use super::chart;
use super::influx::InfluxError;
use super::views::{Marker, View, ViewData};

pub const INDEX: &str = include_str!("assets/index.html");
pub const SCRIPT: &str = include_str!("assets/app.js");
pub const STYLE: &str = include_str!("assets/style.css");

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// The page: the shell with one placeholder section per view, each saying what it
/// waits for until the script has fetched it.
pub fn index(influx_url: &str, database: &str) -> String {
    let mut sections = String::new();
    for view in View::ALL {
        let _ = write!(
            sections,
            r#"<section class="view" data-view="{id}" data-state="loading"><h2>{title}</h2><p class="question">{question}</p><div class="empty">Loading… (this page needs JavaScript to refresh)</div></section>"#,
            id = view.id(),
            title = escape(view.title()),
            question = escape(view.question()),
        );
    }
    INDEX
        .replace("{{influx}}", &escape(influx_url))
        .replace("{{database}}", &escape(database))
        .replace("{{sections}}", &sections)
}

fn section(view: View, state: &str, body: &str) -> String {
    format!(
        r#"<section class="view" data-view="{id}" data-state="{state}"><h2>{title}</h2><p class="question">{question}</p>{body}</section>"#,
        id = view.id(),
        title = escape(view.title()),
        question = escape(view.question()),
    )
}

/// A view's fragment: its charts, or why there are none.
pub fn view(view: View, outcome: &Result<ViewData, InfluxError>) -> String {
    match outcome {
        Err(e) => {
            let (state, text) = problem(e);
            section(
                view,
                state,
                &format!(r#"<div class="empty {state}">{}</div>"#, escape(&text)),
            )
        }
        Ok(data) if view == View::Events => {
            let state = if data.markers.is_empty() {
                "waiting"
            } else {
                "ok"
            };
            section(view, state, &events_table(view, &data.markers))
        }
        Ok(data) if !data.has_data() => section(
            view,
            "waiting",
            &format!(
                r#"<div class="empty waiting">{}</div>"#,
                escape(view.waiting())
            ),
        ),
        Ok(data) => section(view, "ok", &charts(data)),
    }
}

/// The state name and sentence for a failure: unreachable (retrying), no database
/// yet (waiting), or an error InfluxDB gave.
pub fn problem(e: &InfluxError) -> (&'static str, String) {
    if e.is_unreachable() {
        (
            "unreachable",
            format!("InfluxDB unreachable — retrying every 2 s. ({e})"),
        )
    } else if let InfluxError::NoDatabase(db) = e {
        (
            "waiting",
            format!(
                "Waiting for data: database {db:?} does not exist yet (Telegraf creates it when it starts)."
            ),
        )
    } else {
        (
            "error",
            format!("InfluxDB query failed — retrying every 2 s. ({e})"),
        )
    }
}

fn charts(data: &ViewData) -> String {
    let mut out = String::new();
    for panel in &data.panels {
        if panel.lines.is_empty() {
            let _ = write!(
                out,
                r#"<figure class="chart" data-series="0" data-points="0"><figcaption>{}</figcaption><div class="empty quiet">{}</div></figure>"#,
                escape(&panel.title),
                escape(panel.empty)
            );
            continue;
        }
        let points: usize = panel.lines.iter().map(|l| l.points.len()).sum();
        let mut legend = String::new();
        for (name, color, bold) in chart::legend(panel) {
            let _ = write!(
                legend,
                r#"<li class="{weight}"><span style="background:{color}"></span>{}</li>"#,
                escape(name),
                weight = if bold { "bold" } else { "thin" },
            );
        }
        let _ = write!(
            out,
            r#"<figure class="chart" data-series="{series}" data-points="{points}" data-events="{events}"><figcaption>{title}</figcaption>{svg}<ul class="legend">{legend}</ul></figure>"#,
            series = panel.lines.len(),
            events = data.markers.len(),
            title = escape(&panel.title),
            svg = chart::render(panel, &data.markers, &data.window),
        );
    }
    let _ = write!(
        out,
        r#"<p class="foot">{} – {} UTC, one point per {} s</p>"#,
        chart::clock(data.window.start_ms),
        chart::clock(data.window.end_ms),
        data.window.step_s
    );
    out
}

fn events_table(view: View, markers: &[Marker]) -> String {
    if markers.is_empty() {
        return format!(
            r#"<div class="empty waiting">{}</div>"#,
            escape(view.waiting())
        );
    }
    let mut rows = String::new();
    for m in markers.iter().rev() {
        let _ = write!(
            rows,
            r#"<tr class="event" data-kind="{kind}"><td>{at}</td><td>{source}</td><td>{kind}</td><td>{label}</td></tr>"#,
            at = chart::clock(m.at_ms),
            source = escape(&m.source),
            kind = escape(&m.kind),
            label = escape(&m.label),
        );
    }
    format!(
        r#"<table class="events"><tr><th>UTC</th><th>source</th><th>kind</th><th>label</th></tr>{rows}</table>"#
    )
}

/// The status line at the top of the page; it also carries the runs in range (most
/// recently active first) for the page's run chooser, so one query serves both.
pub fn status(influx_url: &str, outcome: &Result<Vec<String>, InfluxError>) -> String {
    let no_runs = Vec::new();
    let (state, text) = match outcome {
        Err(e) => problem(e),
        Ok(runs) if runs.is_empty() => (
            "waiting",
            format!("Connected to InfluxDB at {influx_url}; no replay in this time range yet."),
        ),
        Ok(runs) => (
            "ok",
            format!(
                "Connected to InfluxDB at {influx_url}; runs in range: {}.",
                runs.join(", ")
            ),
        ),
    };
    let runs = outcome.as_ref().unwrap_or(&no_runs);
    let runs = serde_json::to_string(runs).unwrap_or_else(|_| "[]".into());
    format!(
        r#"<div id="status" data-state="{state}" data-runs="{}">{}</div>"#,
        escape(&runs),
        escape(&text)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_influx_says_so() {
        let e = InfluxError::Unreachable {
            url: "http://127.0.0.1:1".into(),
            reason: "Connection refused".into(),
        };
        let html = view(View::Replay, &Err(e));
        assert!(html.contains(r#"data-state="unreachable""#), "{html}");
        assert!(html.contains("InfluxDB unreachable"), "{html}");
    }

    #[test]
    fn the_shell_names_every_view_and_escapes_the_url() {
        let html = index("http://x/<y>", "db");
        for v in View::ALL {
            assert!(html.contains(&format!(r#"data-view="{}""#, v.id())));
        }
        assert!(html.contains("http://x/&lt;y&gt;"));
    }
}
