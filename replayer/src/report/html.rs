//! One self-contained HTML page: inline CSS, inline SVG charts (plotters), no external
//! assets, so it can be mailed or attached to a ticket as is. Markup is written with
//! maud, which escapes every value it interpolates; only the charts' SVG (made here by
//! plotters) goes in unescaped.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use plotters::prelude::*;

use crate::compare::{ClassJson, ClassRunJson, Comparison, RunData, Verdict};

use super::shorten;

pub const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px}table{border-collapse:collapse;font-size:13px}\
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}th{background:#f4f4f4}\
td.fp{text-align:left;font-family:monospace;max-width:520px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}\
td.left{text-align:left}td.how{text-align:left;white-space:nowrap}\
.slower,.bad{background:#fde2e1}.faster{background:#dff5e1}.scatter{color:#b00;font-weight:bold}\
.muted{color:#888}svg{display:block;margin:8px 0}\
.kept{color:#1a7f37}.behind{background:#fde2e1;color:#8a1c1c;padding:4px 8px}td.behind{padding:3px 7px}";

/// Colours per run (baseline first), cycling.
const COLORS: [RGBColor; 6] = [
    RGBColor(60, 60, 60),
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
];

/// A whole page: the shared head and style around `body`.
pub fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

/// An SVG chart made by plotters, put in as is.
pub fn svg(chart: String) -> PreEscaped<String> {
    PreEscaped(chart)
}

fn verdict_class(v: &crate::verdict::Verdict) -> &'static str {
    if v.kept() {
        "kept"
    } else if v.fell_behind() || v.is_invalid() {
        "behind"
    } else {
        ""
    }
}

/// Before any ratio: which runs did not send the load their speed names.
fn schedule_banner(c: &Comparison) -> Markup {
    let failed: Vec<_> = c
        .runs
        .iter()
        .filter(|r| r.verdict.fell_behind() || r.verdict.is_invalid())
        .collect();
    html! {
        @if failed.is_empty() {
            p.kept #schedule {
                "Every timed run kept its schedule: the load offered was the load asked for."
            }
        } @else {
            div.behind #schedule {
                b { "Not every run kept its schedule." }
                " Its ratios were measured under less load than its speed names (or, for an \
                 invalid run, not at all):"
                ul {
                    @for r in failed {
                        li { b { (r.label) } ": " (r.verdict.to_string()) }
                    }
                }
            }
        }
    }
}

pub fn render(c: &Comparison, runs: &[RunData]) -> String {
    let body = html! {
        h1 { "What changed, query class by query class" }
        p {
            "Baseline: " b { (c.runs.first().map_or("", |r| r.label.as_str())) } ". Ratios are run / baseline latency; verdicts use the "
            (format!("{:?}", c.verdict_on))
            " ratio with a 95\u{a0}% bootstrap interval and a " (c.threshold_pct)
            "\u{a0}% threshold; classes with fewer than " (c.min_samples)
            " executions get none."
        }
        (super::answers::html(c))
        (schedule_banner(c))
        (runs_table(c))
        (scatter_table(c))
        (classes_table(c))
        h2 { "p99 ratio per class, with 95\u{a0}% intervals" }
        (svg(ratio_chart(c)))
        h2 { "Latency distribution of the busiest classes" }
        @for class in c.classes.iter().take(4) {
            (svg(cdf_chart(c, runs, class.id.0, &class.fingerprint)))
        }
        h2 { "Latency over time" }
        (svg(timeline_chart(runs)))
    };
    page("sqlreplay comparison", body)
}

fn runs_table(c: &Comparison) -> Markup {
    html! {
        h2 { "Runs" }
        table {
            tr {
                @for h in ["run", "schedule", "target", "speed", "commands", "errors", "diverged",
                    "commands/s", "wall s", "p50 ms", "p99 ms", "lag p99 ms", "p99 from schedule ms"] {
                    th { (h) }
                }
            }
            @for (i, r) in c.runs.iter().enumerate() {
                @let color = COLORS[i % COLORS.len()];
                tr {
                    td style=(format!("text-align:left;color:rgb({},{},{})", color.0, color.1, color.2)) {
                        b { (r.label) }
                    }
                    td class=(verdict_class(&r.verdict)) title=(r.verdict.to_string()) { (r.verdict.label()) }
                    td.left { (r.target) }
                    td { (r.speed.map_or("max".into(), |s| format!("{s}×"))) }
                    td { (r.commands) }
                    td { (r.errors) }
                    td { (r.diverged) }
                    td { (format!("{:.0}", r.throughput)) }
                    td { (format!("{:.1}", r.wall_s)) }
                    td { (format!("{:.3}", r.latency_p50_ms)) }
                    td { (format!("{:.3}", r.latency_p99_ms)) }
                    td { (format!("{:.3}", r.lag_p99_ms)) }
                    td { (format!("{:.3}", r.from_schedule_p99_ms)) }
                }
            }
        }
    }
}

/// What sharding turned into scatter queries: before the class table, whose route
/// columns sit far to the right.
fn scatter_table(c: &Comparison) -> Markup {
    let scatter = c.scatter_classes();
    html! {
        @if !scatter.is_empty() {
            h2 { "Scatter queries" }
            p { "vtgate sends these to every shard." }
            table {
                tr { th { "class" } th { "fingerprint" } th { "run" } th { "route" } th { "p50 vs baseline" } }
                @for sc in &scatter {
                    tr {
                        td { code { (sc.class.id) } }
                        td.fp { (sc.class.fingerprint) }
                        td.left { (c.runs[sc.run].label) }
                        td.left { (sc.opcode) }
                        td { (sc.p50_ratio.map_or(String::new(), |r| format!("{r:.2}×"))) }
                    }
                }
            }
        }
    }
}

fn classes_table(c: &Comparison) -> Markup {
    html! {
        h2 { "Query classes" }
        table {
            tr {
                th { "class" } th { "fingerprint" } th { "count" } th { "share" } th { "p50 ms" } th { "p99 ms" }
                @for r in c.runs.iter().skip(1) {
                    th { (r.label) " p50×" } th { "p99×" } th { "verdict" } th { "route" }
                }
            }
            @for class in &c.classes {
                (class_row(class))
            }
        }
    }
}

fn class_row(class: &ClassJson) -> Markup {
    let b = class.runs.first().and_then(Option::as_ref);
    html! {
        tr {
            td.fp { (class.id) }
            td.fp title=(class.fingerprint) { (shorten(&class.fingerprint, 90)) }
            td { (b.map_or("-".into(), |b| b.count.to_string())) }
            td { (b.map_or("-".into(), |b| format!("{:.1}%", b.time_share * 100.0))) }
            td { (b.map_or("-".into(), |b| format!("{:.3}", b.p50_ms))) }
            td { (b.map_or("-".into(), |b| format!("{:.3}", b.p99_ms))) }
            @for run in class.runs.iter().skip(1) {
                @match run {
                    None => { td.muted { "-" } td.muted { "-" } td.muted { "absent" } td {} }
                    Some(r) => { (run_cells(r)) }
                }
            }
        }
    }
}

/// One run's cells of a class row: ratios with their interval, verdict, route.
fn run_cells(r: &ClassRunJson) -> Markup {
    let cls = match r.vs_base.as_ref().map(|d| d.verdict) {
        Some(Verdict::Slower) => "slower",
        Some(Verdict::Faster) => "faster",
        _ => "",
    };
    html! {
        @match &r.vs_base {
            Some(d) => {
                td class=(cls) {
                    (format!("{:.2} ", d.p50_ratio))
                    span.muted { (format!("[{:.2}–{:.2}]", d.p50_ci[0], d.p50_ci[1])) }
                }
                td class=(cls) { (format!("{:.2}", d.p99_ratio)) }
                td class=(cls) { (d.verdict.as_str()) }
            }
            None => { td { "-" } td { "-" } td { "new" } }
        }
        td.left {
            @if let Some(rt) = &r.routing {
                span class=(if rt.is_scatter() { "scatter" } else { "" }) { (rt.opcode) }
                " " (rt.keyspace.as_deref().unwrap_or(""))
            }
        }
    }
}

/// One bar of the ratio chart: class row `i`, run slot `j`, p99 ratio and its interval.
struct Bar {
    i: usize,
    j: usize,
    ratio: f64,
    ci: [f64; 2],
}

/// The classes the ratio chart shows (those with a ratio in some run), and their bars.
fn ratio_bars(c: &Comparison) -> (Vec<&ClassJson>, Vec<Bar>) {
    let classes: Vec<&ClassJson> = c
        .classes
        .iter()
        .filter(|k| {
            k.runs
                .iter()
                .skip(1)
                .any(|r| r.as_ref().is_some_and(|r| r.vs_base.is_some()))
        })
        .take(15)
        .collect();
    let mut bars = Vec::new();
    for (i, class) in classes.iter().enumerate() {
        for (j, run) in class.runs.iter().skip(1).enumerate() {
            if let Some(d) = run.as_ref().and_then(|r| r.vs_base.as_ref())
                && d.p99_ratio.is_finite()
            {
                bars.push(Bar {
                    i,
                    j,
                    ratio: d.p99_ratio,
                    ci: d.p99_ci,
                });
            }
        }
    }
    (classes, bars)
}

fn ratio_chart(c: &Comparison) -> String {
    let (classes, bars) = ratio_bars(c);
    if classes.is_empty() {
        return "<p class=muted>no class occurs in more than one run</p>".into();
    }
    let n = classes.len();
    let max = bars
        .iter()
        .map(|b| b.ci[1])
        .filter(|v| v.is_finite())
        .fold(2.0, f64::max)
        .min(20.0);
    let labels: Vec<String> = classes
        .iter()
        .map(|k| shorten(&k.fingerprint, 60))
        .collect();
    let slot = 0.8 / (c.runs.len() - 1).max(1) as f64;
    let mut svg = String::new();
    {
        let root =
            SVGBackend::with_string(&mut svg, (1100, 60 + n as u32 * 28)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(380)
            .build_cartesian_2d(0.0..max, 0.0..n as f64)
        else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = (n as f64 - y - 0.5).round();
                if i >= 0.0 && (i as usize) < n {
                    labels[i as usize].clone()
                } else {
                    String::new()
                }
            })
            .x_desc("p99 latency ratio vs baseline (1 = same)")
            .draw();
        let _ = chart.draw_series(LineSeries::new(
            [(1.0, 0.0), (1.0, n as f64)],
            BLACK.mix(0.5),
        ));
        for b in &bars {
            let color = COLORS[(b.j + 1) % COLORS.len()];
            let y0 = n as f64 - b.i as f64 - 0.9 + b.j as f64 * slot;
            let y1 = y0 + slot * 0.8;
            let _ = chart.draw_series(std::iter::once(Rectangle::new(
                [(0.0, y0), (b.ratio.min(max), y1)],
                color.mix(0.6).filled(),
            )));
            let ym = (y0 + y1) / 2.0;
            let (lo, hi) = (b.ci[0].min(max), b.ci[1].min(max));
            let whiskers = [
                [(lo, ym), (hi, ym)],
                [(lo, y0), (lo, y1)],
                [(hi, y0), (hi, y1)],
            ];
            let _ = chart.draw_series(whiskers.map(|w| PathElement::new(w, BLACK.stroke_width(1))));
        }
        let _ = root.present();
    }
    svg
}

fn cdf_chart(c: &Comparison, runs: &[RunData], id: u64, fingerprint: &str) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 300)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max_ms = runs
            .iter()
            .filter_map(|r| r.classes.get(&id))
            .map(|k| k.hist.value_at_quantile(0.999) as f64 / 1000.0)
            .fold(0.01, f64::max);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(shorten(fingerprint, 110), ("monospace", 13))
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_ms, 0.0..1.0)
        else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .x_desc("latency ms")
            .y_desc("fraction ≤")
            .draw();
        for (i, run) in runs.iter().enumerate() {
            let Some(k) = run.classes.get(&id) else {
                continue;
            };
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<(f64, f64)> = (0..=200)
                .map(|s| {
                    let q = s as f64 / 200.0 * 0.999;
                    (k.hist.value_at_quantile(q) as f64 / 1000.0, q)
                })
                .collect();
            let label = c.runs[i].label.clone();
            let _ = chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map(|s| {
                    s.label(label)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color))
                });
        }
        let _ = chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .border_style(BLACK)
            .draw();
        let _ = root.present();
    }
    svg
}

fn timeline_chart(runs: &[RunData]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 320)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max_t = runs
            .iter()
            .map(|r| r.timeline.len())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let mean = |(n, sum): (u64, u64)| {
            if n == 0 {
                0.0
            } else {
                sum as f64 / n as f64 / 1e6
            }
        };
        let max_ms = runs
            .iter()
            .flat_map(|r| r.timeline.iter().map(|b| mean(*b)))
            .fold(0.01, f64::max)
            * 1.1;
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(8)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..max_t, 0.0..max_ms)
        else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .x_desc("seconds into the run")
            .y_desc("mean latency ms")
            .draw();
        for (i, run) in runs.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let pts: Vec<(f64, f64)> = run
                .timeline
                .iter()
                .enumerate()
                .filter(|(_, b)| b.0 > 0)
                .map(|(t, b)| (t as f64, mean(*b)))
                .collect();
            let label = run.meta.label.clone();
            let _ = chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map(|s| {
                    s.label(label)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color))
                });
        }
        let _ = chart.configure_series_labels().border_style(BLACK).draw();
        let _ = root.present();
    }
    svg
}
