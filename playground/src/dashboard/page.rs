//! HTML: the page shell (embedded, so it works offline) and the fragments the page's
//! script swaps in, written with maud, which escapes everything it interpolates (what
//! came from InfluxDB or the request included); only the charts' SVG, drawn here, goes
//! in as it is.

use maud::{Markup, PreEscaped, html};

use super::chart;
use super::influx::InfluxError;
use super::views::{Marker, View, ViewData};

pub const INDEX: &str = include_str!("assets/index.html");
pub const SCRIPT: &str = include_str!("assets/app.js");
pub const STYLE: &str = include_str!("assets/style.css");

/// The page: the shell with one placeholder section per view, each saying what it
/// waits for until the script has fetched it.
pub fn index(influx_url: &str, database: &str) -> String {
    let sections = html! {
        @for view in View::ALL {
            (section(view, "loading", html! {
                div.empty { "Loading… (this page needs JavaScript to refresh)" }
            }))
        }
    };
    // The shell is a static file with three holes; each is filled with escaped text.
    INDEX
        .replace("{{influx}}", &html! { (influx_url) }.into_string())
        .replace("{{database}}", &html! { (database) }.into_string())
        .replace("{{sections}}", &sections.into_string())
}

fn section(view: View, state: &str, body: Markup) -> Markup {
    html! {
        section.view data-view=(view.id()) data-state=(state) {
            h2 { (view.title()) }
            p.question { (view.question()) }
            (body)
        }
    }
}

/// A view's fragment: its charts, or why there are none.
pub fn view(view: View, outcome: &Result<ViewData, InfluxError>) -> String {
    let markup = match outcome {
        Err(e) => {
            let (state, text) = problem(e);
            section(
                view,
                state,
                html! { div class=(format!("empty {state}")) { (text) } },
            )
        }
        Ok(data) if view == View::Events => {
            let state = if data.markers.is_empty() {
                "waiting"
            } else {
                "ok"
            };
            section(view, state, events_table(view, &data.markers))
        }
        Ok(data) if !data.has_data() => section(
            view,
            "waiting",
            html! { div.empty.waiting { (view.waiting()) } },
        ),
        Ok(data) => section(view, "ok", charts(data)),
    };
    markup.into_string()
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

fn charts(data: &ViewData) -> Markup {
    html! {
        @for panel in &data.panels {
            @if panel.lines.is_empty() {
                figure.chart data-series="0" data-points="0" {
                    figcaption { (panel.title) }
                    div.empty.quiet { (panel.empty) }
                }
            } @else {
                figure.chart
                    data-series=(panel.lines.len())
                    data-points=(panel.lines.iter().map(|l| l.points.len()).sum::<usize>())
                    data-events=(data.markers.len()) {
                    figcaption { (panel.title) }
                    (PreEscaped(chart::render(panel, &data.markers, &data.window)))
                    ul.legend {
                        @for (name, color, bold) in chart::legend(panel) {
                            li class=(if bold { "bold" } else { "thin" }) {
                                span style=(format!("background:{color}")) {}
                                (name)
                            }
                        }
                    }
                }
            }
        }
        p.foot {
            (chart::clock(data.window.start_ms)) " – " (chart::clock(data.window.end_ms))
            " UTC, one point per " (data.window.step_s) " s"
        }
    }
}

fn events_table(view: View, markers: &[Marker]) -> Markup {
    html! {
        @if markers.is_empty() {
            div.empty.waiting { (view.waiting()) }
        } @else {
            table.events {
                tr { th { "UTC" } th { "source" } th { "kind" } th { "label" } }
                @for m in markers.iter().rev() {
                    tr.event data-kind=(m.kind) {
                        td { (chart::clock(m.at_ms)) }
                        td { (m.source) }
                        td { (m.kind) }
                        td { (m.label) }
                    }
                }
            }
        }
    }
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
    html! { div #status data-state=(state) data-runs=(runs) { (text) } }.into_string()
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
