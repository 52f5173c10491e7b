//! Charts as SVG, drawn on the server with plotters (which escapes the text it draws),
//! so the page needs no charting library and works offline.

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::queries::Window;
use super::views::{Marker, Panel};

const SIZE: (u32, u32) = (660, 280);

/// A palette that stays readable on white; a line's colour comes from its key, so a
/// run keeps its colour from chart to chart.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
];

/// A colour per line: the key's hash picks its slot (so a run keeps its colour from
/// chart to chart), and a key whose slot another key of the same chart took moves to
/// the next free one (so the lines of one chart stay apart).
fn colors(panel: &Panel) -> Vec<RGBColor> {
    let mut taken: Vec<(&str, usize)> = Vec::new();
    let mut out = Vec::with_capacity(panel.lines.len());
    for line in &panel.lines {
        let slot = match taken.iter().find(|(k, _)| *k == line.key) {
            Some(&(_, slot)) => slot,
            None => {
                let mut slot = (fnv(&line.key) % PALETTE.len() as u64) as usize;
                for _ in 0..PALETTE.len() {
                    if !taken.iter().any(|&(_, s)| s == slot) {
                        break;
                    }
                    slot = (slot + 1) % PALETTE.len();
                }
                taken.push((&line.key, slot));
                slot
            }
        };
        out.push(PALETTE[slot]);
    }
    out
}

/// FNV-1a: stable across runs and processes, unlike the std hasher.
fn fnv(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// `HH:MM:SS` (UTC) of an epoch-ms instant.
pub fn clock(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The panel as an SVG document (empty string if plotters fails, which the page shows
/// as a missing chart rather than an error).
pub fn render(panel: &Panel, markers: &[Marker], w: &Window) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        let _ = root.fill(&WHITE);
        let x = w.start_ms as f64..w.end_ms as f64;
        let log = panel.log_y && spread(panel) > LOG_SPREAD;
        let (lo, hi) = y_bounds(panel, log);
        let result = if log {
            ChartBuilder::on(&root)
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(56)
                .build_cartesian_2d(x, (lo..hi).log_scale())
                .map(|mut c| draw(&mut c, panel, markers, (lo, hi, log)))
        } else {
            ChartBuilder::on(&root)
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(56)
                .build_cartesian_2d(x, lo..hi)
                .map(|mut c| draw(&mut c, panel, markers, (lo, hi, log)))
        };
        if result.is_err() {
            return String::new();
        }
        let _ = root.present();
    }
    svg
}

/// A latency axis turns logarithmic past this max/min ratio: a cut-over stall of
/// seconds and sub-millisecond queries must both stay readable, but within one decade
/// a log axis has no labels worth reading.
const LOG_SPREAD: f64 = 20.0;

fn values(panel: &Panel) -> impl Iterator<Item = f64> + '_ {
    panel
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
}

fn spread(panel: &Panel) -> f64 {
    let max = values(panel).fold(0.0_f64, f64::max);
    let min = values(panel)
        .filter(|v| *v > 0.0)
        .fold(f64::INFINITY, f64::min);
    max / min
}

/// The y range: from 0 (linear) or under the lowest value (log), to a bit above the
/// highest.
fn y_bounds(panel: &Panel, log: bool) -> (f64, f64) {
    let max = values(panel).fold(0.0_f64, f64::max);
    if log {
        let min = values(panel)
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        (min.max(1e-4) * 0.5, max * 2.0)
    } else if max > 0.0 {
        (0.0, max * 1.15)
    } else {
        (0.0, 1.0)
    }
}

fn draw<'a, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    panel: &Panel,
    markers: &[Marker],
    (lo, hi, log): (f64, f64, bool),
) where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let unit = if log {
        format!("{} (log)", panel.unit)
    } else {
        panel.unit.to_string()
    };
    let _ = chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|ms| clock(*ms as i64))
        .x_desc("UTC")
        .y_desc(unit)
        .light_line_style(WHITE.mix(0.0))
        .draw();
    draw_markers(chart, markers, (lo, hi, log));
    for (line, color) in panel.lines.iter().zip(colors(panel)) {
        let style = if line.bold {
            color.stroke_width(2)
        } else {
            color.mix(0.7).stroke_width(1)
        };
        let points = line
            .points
            .iter()
            .filter(|p| !log || p.1 > 0.0)
            .map(|&(t, v)| (t as f64, v));
        let _ = chart.draw_series(LineSeries::new(points, style));
    }
}

/// Each line's name and colour (`#rrggbb`), for the legend the page draws under the
/// chart (in HTML, where it cannot cover the lines or the event labels).
pub fn legend(panel: &Panel) -> Vec<(&str, String, bool)> {
    panel
        .lines
        .iter()
        .zip(colors(panel))
        .map(|(line, c)| {
            let hex = format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2);
            (line.name.as_str(), hex, line.bold)
        })
        .collect()
}

/// Events as grey vertical lines, labels staggered so neighbours stay readable. Demo
/// stages are only faint lines: labelled, a demo's dozen of them would bury the
/// replay and reshard labels (the events table lists them).
fn draw_markers<'a, Y>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<RangedCoordf64, Y>>,
    markers: &[Marker],
    (lo, hi, log): (f64, f64, bool),
) where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let x_range = chart.x_range();
    let right_third = x_range.start + (x_range.end - x_range.start) * 0.66;
    let mut labelled = 0;
    for m in markers {
        let at = m.at_ms as f64;
        if !x_range.contains(&at) {
            continue;
        }
        let stage = m.kind == "stage";
        let alpha = if stage { 0.12 } else { 0.35 };
        let _ = chart.draw_series(LineSeries::new(
            [(at, lo), (at, hi)],
            BLACK.mix(alpha).stroke_width(1),
        ));
        if stage {
            continue;
        }
        // Stagger downwards in six rows; in the right third, labels sit left of their
        // line so they are not cut off.
        let row = f64::from(labelled % 6) + 1.0;
        labelled += 1;
        let y = if log {
            hi / (hi / lo).powf(row / 12.0)
        } else {
            hi - (hi - lo) * row / 12.0
        };
        let label: String = m.label.chars().take(40).collect();
        let (text, anchor) = if at > right_third {
            (format!("{label} "), HPos::Right)
        } else {
            (format!(" {label}"), HPos::Left)
        };
        let style = ("sans-serif", 11)
            .into_font()
            .color(&BLACK.mix(0.75))
            .pos(Pos::new(anchor, VPos::Top));
        let _ = chart.draw_series(std::iter::once(Text::new(text, (at, y), style)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashboard::views::Line;

    #[test]
    fn draws_lines_labels_and_markers_escaped() {
        let w = Window::new(0, 60_000);
        let panel = Panel {
            title: "t".into(),
            unit: "commands/s",
            log_y: false,
            lines: vec![Line {
                name: "run <1>".into(),
                key: "run <1>".into(),
                points: vec![(1000, 1.0), (2000, 3.0)],
                bold: true,
            }],
            empty: "",
        };
        let marker = Marker {
            at_ms: 1500,
            label: "replay & start".into(),
            kind: "replay-start".into(),
            source: "test".into(),
        };
        let svg = render(&panel, &[marker], &w);
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<polyline"), "{svg}");
        assert!(svg.contains("replay &amp; start"), "{svg}");
        assert_eq!(
            legend(&panel),
            vec![("run <1>", "#9467bd".to_string(), true)]
        );
        assert_eq!(clock(3_723_000), "01:02:03");
    }

    #[test]
    fn lines_of_one_chart_get_distinct_colours() {
        let line = |key: String| Line {
            name: key.clone(),
            key,
            points: vec![],
            bold: true,
        };
        let panel = Panel {
            title: "t".into(),
            unit: "u",
            log_y: false,
            lines: (0..PALETTE.len())
                .map(|i| line(format!("class-{i}")))
                .collect(),
            empty: "",
        };
        let mut colours: Vec<String> = legend(&panel).into_iter().map(|l| l.1).collect();
        colours.sort();
        colours.dedup();
        assert_eq!(colours.len(), PALETTE.len());
    }
}
