//! The ramp's capacity page: achieved vs scheduled rate, and p99, per speed.

use std::path::Path;

use maud::html;

use super::html::{page, svg};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

/// One speed of a ramp.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RampStep {
    pub speed: f64,
    pub scheduled_qps: f64,
    pub achieved_qps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub error_rate: f64,
    pub saturated: bool,
    /// The step kept its schedule (see `crate::verdict`).
    #[serde(default)]
    pub kept: bool,
    #[serde(default)]
    pub lag_p99_ms: f64,
}

/// The highest speed whose step kept its schedule.
pub fn highest_kept(steps: &[RampStep]) -> Option<f64> {
    steps
        .iter()
        .filter(|s| s.kept)
        .map(|s| s.speed)
        .reduce(f64::max)
}

/// The capacity chart as an SVG string.
pub fn capacity_svg(steps: &[RampStep], knee: Option<usize>) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 420)).into_drawing_area();
        let _ = root.fill(&WHITE);
        let max_x = steps.iter().map(|s| s.scheduled_qps).fold(1.0, f64::max) * 1.05;
        let max_y = steps
            .iter()
            .map(|s| s.achieved_qps.max(s.scheduled_qps))
            .fold(1.0, f64::max)
            * 1.05;
        let max_p99 = steps.iter().map(|s| s.p99_ms).fold(0.001, f64::max) * 1.1;
        let Ok(mut chart) = ChartBuilder::on(&root)
            .caption(
                "capacity: achieved vs scheduled rate (p99 on the right)",
                ("sans-serif", 18),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .right_y_label_area_size(60)
            .build_cartesian_2d(0.0..max_x, 0.0..max_y)
            .map(|c| c.set_secondary_coord(0.0..max_x, 0.0..max_p99))
        else {
            return String::new();
        };
        let _ = chart
            .configure_mesh()
            .x_desc("scheduled commands/s")
            .y_desc("achieved commands/s")
            .draw();
        let _ = chart.configure_secondary_axes().y_desc("p99 ms").draw();
        let _ = chart.draw_series(LineSeries::new(
            [(0.0, 0.0), (max_x, max_x)],
            BLACK.mix(0.2),
        ));
        let pts: Vec<(f64, f64)> = steps
            .iter()
            .map(|s| (s.scheduled_qps, s.achieved_qps))
            .collect();
        let _ = chart
            .draw_series(LineSeries::new(pts.clone(), BLUE.stroke_width(2)))
            .map(|s| {
                s.label("achieved/s")
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], BLUE))
            });
        let _ = chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, BLUE.filled())));
        let p99: Vec<(f64, f64)> = steps.iter().map(|s| (s.scheduled_qps, s.p99_ms)).collect();
        let _ = chart
            .draw_secondary_series(LineSeries::new(p99, RED.stroke_width(2)))
            .map(|s| {
                s.label("p99 ms")
                    .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], RED))
            });
        if let Some(k) = knee
            && let Some(s) = steps.get(k)
        {
            let _ = chart.draw_series(std::iter::once(Cross::new(
                (s.scheduled_qps, s.achieved_qps),
                9,
                RED.stroke_width(3),
            )));
        }
        let _ = chart.configure_series_labels().border_style(BLACK).draw();
        let _ = root.present();
    }
    svg
}

pub fn write_ramp_html(
    steps: &[RampStep],
    knee: Option<usize>,
    path: &Path,
) -> Result<(), crate::Error> {
    let verdict = match knee {
        Some(0) => "saturated already at the first speed".to_string(),
        Some(k) => format!(
            "keeps up to {}×, saturates at {}×",
            steps[k - 1].speed,
            steps[k].speed
        ),
        None => "no saturation within the speeds tried".to_string(),
    };
    let body = html! {
        h1 { "Ramp" }
        p { (verdict) }
        (svg(capacity_svg(steps, knee)))
        table {
            tr {
                @for h in ["speed", "scheduled/s", "achieved/s", "p50 ms", "p99 ms", "errors"] {
                    th { (h) }
                }
            }
            @for s in steps {
                tr class=(if s.saturated { "bad" } else { "" }) {
                    td { (s.speed) "×" }
                    td { (format!("{:.0}", s.scheduled_qps)) }
                    td { (format!("{:.0}", s.achieved_qps)) }
                    td { (format!("{:.3}", s.p50_ms)) }
                    td { (format!("{:.3}", s.p99_ms)) }
                    td { (format!("{:.2}%", s.error_rate * 100.0)) }
                }
            }
        }
    };
    std::fs::write(path, page("sqlreplay ramp", body))
        .map_err(|e| crate::Error::io(format!("writing {}", path.display()), e))
}
