//! The timeline page: p50 and p99 per bucket, events as vertical lines, phase table.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use maud::html;

use super::html::{page, svg};
use crate::timeline::Timeline;

pub fn render_html(t: &Timeline) -> String {
    let body = html! {
        h1 { "Latency over time: " (t.label) }
        p.muted { "run " (t.run_id) ", buckets of " (format!("{:.1}", t.bucket_s)) " s; vertical lines mark events" }
        (svg(chart(t)))
        h2 { "By phase" }
        table {
            tr {
                @for h in ["from s", "to s", "phase (opened by)", "commands", "errors", "p50 ms", "p99 ms", "max ms"] {
                    th { (h) }
                }
            }
            @for p in &t.phases {
                tr {
                    td { (format!("{:.1}", p.from_s)) }
                    td { (format!("{:.1}", p.to_s)) }
                    td.fp { (p.label.as_deref().unwrap_or("")) }
                    td { (p.commands) }
                    td class=(if p.errors > 0 { "bad" } else { "" }) { (p.errors) }
                    td { (format!("{:.3}", p.p50_ms)) }
                    td { (format!("{:.3}", p.p99_ms)) }
                    td { (format!("{:.3}", p.max_ms)) }
                }
            }
        }
    };
    page(&format!("sqlreplay timeline: {}", t.label), body)
}

fn chart(t: &Timeline) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (1100, 420)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max_x = t.buckets.last().map_or(1.0, |b| b.to_s).max(1.0);
        let (min_y, max_y) = y_range(t);
        let Ok(mut chart) = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..max_x, (min_y..max_y).log_scale())
        else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .x_desc("seconds into the run")
            .y_desc("latency ms (log)")
            .draw();
        for (name, color, pts) in [
            ("p99", RGBColor(214, 39, 40), points(t, |b| b.p99_ms)),
            ("p50", RGBColor(31, 119, 180), points(t, |b| b.p50_ms)),
        ] {
            let _ = chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map(|s| {
                    s.label(name)
                        .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color))
                });
        }
        // Error buckets as red marks along the bottom.
        let _ = chart.draw_series(
            t.buckets
                .iter()
                .filter(|b| b.errors > 0)
                .map(|b| Cross::new(((b.from_s + b.to_s) / 2.0, min_y), 5, RED.stroke_width(2))),
        );
        for (i, (at, label)) in t.events.iter().enumerate() {
            let _ = chart.draw_series(LineSeries::new(
                [(*at, min_y), (*at, max_y)],
                BLACK.mix(0.5).stroke_width(1),
            ));
            // Labels stagger down the chart so neighbouring events stay readable, and
            // sit left of their line in the right third so they are not cut off.
            let y = max_y / 1.5f64.powi(i32::try_from(i % 6).unwrap_or(0) + 1);
            let (text, anchor) = if *at > max_x * 0.66 {
                (format!("{label} "), HPos::Right)
            } else {
                (format!(" {label}"), HPos::Left)
            };
            let style = ("sans-serif", 12)
                .into_font()
                .color(&BLACK)
                .pos(Pos::new(anchor, VPos::Top));
            let _ = chart.draw_series(std::iter::once(Text::new(text, (*at, y), style)));
        }
        let _ = chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .border_style(BLACK)
            .draw();
        let _ = root.present();
    }
    svg
}

/// The latency axis, log scale: a cut-over stall of seconds and steady sub-millisecond
/// latency both have to stay readable on one chart.
fn y_range(t: &Timeline) -> (f64, f64) {
    let busy = || t.buckets.iter().filter(|b| b.commands > 0);
    let max_y = busy().map(|b| b.p99_ms).fold(0.01, f64::max) * 2.0;
    let min_y = busy()
        .map(|b| b.p50_ms)
        .fold(f64::INFINITY, f64::min)
        .clamp(0.001, max_y / 10.0)
        * 0.5;
    (min_y, max_y)
}

/// One quantile of every busy bucket, at the bucket's middle.
fn points(t: &Timeline, q: fn(&crate::timeline::Stretch) -> f64) -> Vec<(f64, f64)> {
    t.buckets
        .iter()
        .filter(|b| b.commands > 0)
        .map(|b| ((b.from_s + b.to_s) / 2.0, q(b)))
        .collect()
}

/// The phase table for the terminal.
pub fn render_text(t: &Timeline) -> String {
    let mut s = format!(
        "{} ({}): latency by phase\n{:>9} {:>9}  {:<44} {:>9} {:>7} {:>9} {:>9} {:>9}\n",
        t.label,
        t.run_id,
        "from s",
        "to s",
        "phase (opened by)",
        "commands",
        "errors",
        "p50 ms",
        "p99 ms",
        "max ms"
    );
    for p in &t.phases {
        s.push_str(&format!(
            "{:>9.1} {:>9.1}  {:<44} {:>9} {:>7} {:>9.3} {:>9.3} {:>9.3}\n",
            p.from_s,
            p.to_s,
            super::shorten(p.label.as_deref().unwrap_or(""), 44),
            p.commands,
            p.errors,
            p.p50_ms,
            p.p99_ms,
            p.max_ms
        ));
    }
    s
}
