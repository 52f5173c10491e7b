//! One self-contained HTML page: inline CSS, inline SVG charts (plotters), no external
//! assets, so it can be mailed or attached to a ticket as is.

use std::fmt::Write as _;

use plotters::prelude::*;

use crate::compare::{Comparison, RunData, Verdict};

use super::shorten;

pub const CSS: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}\
h1{font-size:22px}h2{font-size:18px;margin-top:32px}table{border-collapse:collapse;font-size:13px}\
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}th{background:#f4f4f4}\
td.fp{text-align:left;font-family:monospace;max-width:520px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}\
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

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
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
fn schedule_banner(h: &mut String, c: &Comparison) {
    let failed: Vec<_> = c
        .runs
        .iter()
        .filter(|r| r.verdict.fell_behind() || r.verdict.is_invalid())
        .collect();
    if failed.is_empty() {
        let _ = write!(
            h,
            "<p class='kept' id='schedule'>Every timed run kept its schedule: the load offered was the load asked for.</p>"
        );
        return;
    }
    let _ = write!(
        h,
        "<div class='behind' id='schedule'><b>Not every run kept its schedule.</b> Its ratios were measured under less load than its speed names (or, for an invalid run, not at all):<ul>"
    );
    for r in failed {
        let _ = write!(
            h,
            "<li><b>{}</b>: {}</li>",
            escape(&r.label),
            escape(&r.verdict.to_string())
        );
    }
    let _ = write!(h, "</ul></div>");
}

pub fn render(c: &Comparison, runs: &[RunData]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=utf-8><title>sqlreplay comparison</title><style>{CSS}</style></head><body>"
    );
    let _ = write!(h, "<h1>What changed, query class by query class</h1>");
    let _ = write!(
        h,
        "<p>Baseline: <b>{}</b>. Ratios are run / baseline latency; verdicts use the {:?} ratio with a 95&nbsp;% bootstrap interval and a {}&nbsp;% threshold; classes with fewer than {} executions get none.</p>",
        escape(&c.runs[0].label),
        c.verdict_on,
        c.threshold_pct,
        c.min_samples
    );

    super::answers::html(&mut h, c);
    schedule_banner(&mut h, c);
    // Runs.
    let _ = write!(
        h,
        "<h2>Runs</h2><table><tr><th>run</th><th>schedule</th><th>target</th><th>speed</th><th>commands</th><th>errors</th><th>diverged</th><th>commands/s</th><th>wall s</th><th>p50 ms</th><th>p99 ms</th><th>lag p99 ms</th><th>p99 from schedule ms</th></tr>"
    );
    for (i, r) in c.runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let _ = write!(
            h,
            "<tr><td style='text-align:left;color:rgb({},{},{})'><b>{}</b></td><td class='{}' title='{}'>{}</td><td style='text-align:left'>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.0}</td><td>{:.1}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td><td>{:.3}</td></tr>",
            color.0,
            color.1,
            color.2,
            escape(&r.label),
            verdict_class(&r.verdict),
            escape(&r.verdict.to_string()),
            escape(r.verdict.label()),
            escape(&r.target),
            r.speed.map_or("max".into(), |s| format!("{s}×")),
            r.commands,
            r.errors,
            r.diverged,
            r.throughput,
            r.wall_s,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.lag_p99_ms,
            r.from_schedule_p99_ms
        );
    }
    let _ = write!(h, "</table>");

    // What sharding turned into scatter queries: first, because the wide class table
    // puts the route columns far to the right.
    let scatter = c.scatter_classes();
    if !scatter.is_empty() {
        let _ = write!(
            h,
            "<h2>Scatter queries</h2><p>vtgate sends these to every shard.</p><table><tr><th>class</th><th>fingerprint</th><th>run</th><th>route</th><th>p50 vs baseline</th></tr>"
        );
        for sc in &scatter {
            let ratio = sc.p50_ratio.map_or(String::new(), |r| format!("{r:.2}×"));
            let _ = write!(
                h,
                "<tr><td><code>{}</code></td><td class=fp>{}</td><td style='text-align:left'>{}</td><td style='text-align:left'>{}</td><td>{ratio}</td></tr>",
                sc.class.id,
                escape(&sc.class.fingerprint),
                escape(&c.runs[sc.run].label),
                escape(sc.opcode)
            );
        }
        let _ = write!(h, "</table>");
    }

    // Classes.
    let _ = write!(
        h,
        "<h2>Query classes</h2><table><tr><th>class</th><th>fingerprint</th><th>count</th><th>share</th><th>p50 ms</th><th>p99 ms</th>"
    );
    for r in &c.runs[1..] {
        let _ = write!(
            h,
            "<th>{} p50×</th><th>p99×</th><th>verdict</th><th>route</th>",
            escape(&r.label)
        );
    }
    let _ = write!(h, "</tr>");
    for class in &c.classes {
        let b = class.runs[0].as_ref();
        let _ = write!(
            h,
            "<tr><td class=fp>{}</td><td class=fp title=\"{}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            class.id,
            escape(&class.fingerprint),
            escape(&shorten(&class.fingerprint, 90)),
            b.map_or("-".into(), |b| b.count.to_string()),
            b.map_or("-".into(), |b| format!("{:.1}%", b.time_share * 100.0)),
            b.map_or("-".into(), |b| format!("{:.3}", b.p50_ms)),
            b.map_or("-".into(), |b| format!("{:.3}", b.p99_ms)),
        );
        for run in &class.runs[1..] {
            match run {
                None => {
                    let _ = write!(
                        h,
                        "<td class=muted>-</td><td class=muted>-</td><td class=muted>absent</td><td></td>"
                    );
                }
                Some(r) => {
                    let (p50, p99, verdict, cls) = match &r.vs_base {
                        Some(d) => (
                            format!(
                                "{:.2} <span class=muted>[{:.2}–{:.2}]</span>",
                                d.p50_ratio, d.p50_ci[0], d.p50_ci[1]
                            ),
                            format!("{:.2}", d.p99_ratio),
                            d.verdict.as_str(),
                            match d.verdict {
                                Verdict::Slower => "slower",
                                Verdict::Faster => "faster",
                                _ => "",
                            },
                        ),
                        None => ("-".into(), "-".into(), "new", ""),
                    };
                    let route = r.routing.as_ref().map_or(String::new(), |rt| {
                        let scatter = rt.opcode.to_ascii_lowercase().contains("scatter");
                        format!(
                            "<span class='{}'>{}</span> {}",
                            if scatter { "scatter" } else { "" },
                            escape(&rt.opcode),
                            escape(rt.keyspace.as_deref().unwrap_or(""))
                        )
                    });
                    let _ = write!(
                        h,
                        "<td class={cls}>{p50}</td><td class={cls}>{p99}</td><td class={cls}>{verdict}</td><td style='text-align:left'>{route}</td>"
                    );
                }
            }
        }
        let _ = write!(h, "</tr>");
    }
    let _ = write!(h, "</table>");

    let _ = write!(
        h,
        "<h2>p99 ratio per class, with 95&nbsp;% intervals</h2>{}",
        ratio_chart(c)
    );
    let _ = write!(h, "<h2>Latency distribution of the busiest classes</h2>");
    for class in c.classes.iter().take(4) {
        let _ = write!(h, "{}", cdf_chart(c, runs, &class.id, &class.fingerprint));
    }
    let _ = write!(h, "<h2>Latency over time</h2>{}", timeline_chart(runs));
    let _ = write!(h, "</body></html>");
    h
}

fn ratio_chart(c: &Comparison) -> String {
    let classes: Vec<_> = c
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
    let mut svg = String::new();
    if classes.is_empty() {
        return "<p class=muted>no class occurs in more than one run</p>".into();
    }
    let height = 60 + classes.len() as u32 * 28;
    {
        let root = SVGBackend::with_string(&mut svg, (1100, height)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max = classes
            .iter()
            .flat_map(|k| {
                k.runs
                    .iter()
                    .flatten()
                    .filter_map(|r| r.vs_base.as_ref())
                    .map(|d| d.p99_ci[1])
            })
            .filter(|v| v.is_finite())
            .fold(2.0, f64::max)
            .min(20.0);
        let n = classes.len();
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(380)
            .build_cartesian_2d(0.0..max, 0.0..n as f64)
        else {
            return String::new();
        };
        let labels: Vec<String> = classes
            .iter()
            .map(|k| shorten(&k.fingerprint, 60))
            .collect();
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
        let runs = c.runs.len() - 1;
        for (i, class) in classes.iter().enumerate() {
            for (j, run) in class.runs.iter().skip(1).enumerate() {
                let Some(d) = run.as_ref().and_then(|r| r.vs_base.as_ref()) else {
                    continue;
                };
                if !d.p99_ratio.is_finite() {
                    continue;
                }
                let color = COLORS[(j + 1) % COLORS.len()];
                let slot = 0.8 / runs as f64;
                let y0 = n as f64 - i as f64 - 0.9 + j as f64 * slot;
                let y1 = y0 + slot * 0.8;
                let _ = chart.draw_series(std::iter::once(Rectangle::new(
                    [(0.0, y0), (d.p99_ratio.min(max), y1)],
                    color.mix(0.6).filled(),
                )));
                let ym = (y0 + y1) / 2.0;
                let (lo, hi) = (d.p99_ci[0].min(max), d.p99_ci[1].min(max));
                let _ = chart.draw_series(std::iter::once(PathElement::new(
                    [(lo, ym), (hi, ym)],
                    BLACK.stroke_width(1),
                )));
                let _ = chart.draw_series(
                    [lo, hi].map(|x| PathElement::new([(x, y0), (x, y1)], BLACK.stroke_width(1))),
                );
            }
        }
        let _ = root.present();
    }
    svg
}

fn cdf_chart(c: &Comparison, runs: &[RunData], id_hex: &str, fingerprint: &str) -> String {
    let Ok(id) = u64::from_str_radix(id_hex, 16) else {
        return String::new();
    };
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
