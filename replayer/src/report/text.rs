//! The terminal table.

use std::fmt::Write as _;

use crate::compare::{Comparison, Verdict};

use super::shorten;

/// Did each run send the load its speed names? Said before any ratio is read.
fn schedule(s: &mut String, c: &Comparison) {
    let _ = writeln!(
        s,
        "\nschedule (did each run send the load its speed names?):"
    );
    for r in &c.runs {
        let _ = writeln!(
            s,
            "  {:<22} {}   latency from schedule p50 {:.3} p99 {:.3} ms",
            r.label, r.verdict, r.from_schedule_p50_ms, r.from_schedule_p99_ms
        );
    }
    if c.runs.iter().any(|r| r.verdict.fell_behind()) {
        let _ = writeln!(
            s,
            "  † marks ratios of a run that fell behind: measured under less load than asked"
        );
    }
}

pub fn render(c: &Comparison, top: usize) -> String {
    let mut s = String::new();
    super::answers::text(&mut s, c, top);
    runs(&mut s, c);
    schedule(&mut s, c);
    classes(&mut s, c, top);
    regressions(&mut s, c);
    scatter(&mut s, c);
    s
}

fn runs(s: &mut String, c: &Comparison) {
    let _ = writeln!(s, "\nruns (baseline first):");
    for r in &c.runs {
        let speed = r.speed.map_or("max".to_string(), |f| format!("{f}×"));
        let _ = writeln!(
            s,
            "  {:<22} {:>9} cmds {:>7} err {:>6} diverged  {:>8.1}/s  wall {:>7.1}s  total {:>8.1}s  p50 {:>7.3} p99 {:>8.3} ms  lag p99 {:>7.3} ms  {} @ {}",
            r.label,
            r.commands,
            r.errors,
            r.diverged,
            r.throughput,
            r.wall_s,
            r.total_time_s,
            r.latency_p50_ms,
            r.latency_p99_ms,
            r.lag_p99_ms,
            speed,
            r.target
        );
    }
}

/// The class table: baseline latency, then each run's ratio, route and errors.
fn classes(s: &mut String, c: &Comparison, top: usize) {
    let Some(base) = c.runs.first() else {
        return;
    };
    let _ = writeln!(
        s,
        "\nper class (top {top} by baseline time; ratio = run / {} at {:?}, 95% CI; threshold {}%):",
        base.label, c.verdict_on, c.threshold_pct
    );
    let behind: Vec<bool> = c.runs.iter().map(|r| r.verdict.fell_behind()).collect();
    let mut header = format!(
        "  {:<16} {:<48} {:>8} {:>9}",
        "class", "fingerprint", "count", "p50 ms"
    );
    for r in c.runs.iter().skip(1) {
        let _ = write!(header, " | {:<22}", shorten(&r.label, 22));
    }
    let _ = writeln!(s, "{header}");
    for class in c.classes.iter().take(top) {
        let b = class.runs.first().and_then(Option::as_ref);
        let mut line = format!(
            "  {:<16} {:<48} {:>8} {:>9}",
            class.id,
            shorten(&class.fingerprint, 48),
            b.map_or("-".into(), |b| b.count.to_string()),
            b.map_or("-".into(), |b| format!("{:.3}", b.p50_ms)),
        );
        for (i, run) in class.runs.iter().enumerate().skip(1) {
            let cell = match run {
                None => "-".to_string(),
                Some(r) => {
                    let mut cell = match &r.vs_base {
                        Some(d) => format!("{:.2}× {}", d.p50_ratio, d.verdict.as_str()),
                        None => format!("{:.3} ms", r.p50_ms),
                    };
                    if behind[i] {
                        cell.push('†');
                    }
                    if let Some(route) = &r.routing {
                        let _ = write!(cell, " {}", route.opcode);
                    }
                    if r.errors > 0 {
                        let _ = write!(cell, " {}err", r.errors);
                    }
                    cell
                }
            };
            let _ = write!(line, " | {:<22}", cell);
        }
        let _ = writeln!(s, "{line}");
    }
}

fn regressions(s: &mut String, c: &Comparison) {
    let mut slower: Vec<(f64, String)> = Vec::new();
    for class in &c.classes {
        for (i, run) in class.runs.iter().enumerate() {
            if let Some(d) = run.as_ref().and_then(|r| r.vs_base.as_ref())
                && d.verdict == Verdict::Slower
            {
                slower.push((
                    d.p50_ratio,
                    format!(
                        "{} in {}: {:.2}× p50, {:.2}× p99  {}",
                        class.id,
                        c.runs[i].label,
                        d.p50_ratio,
                        d.p99_ratio,
                        shorten(&class.fingerprint, 70)
                    ),
                ));
            }
        }
    }
    slower.sort_by(|a, b| b.0.total_cmp(&a.0));
    if slower.is_empty() {
        let _ = writeln!(s, "\nno class is significantly slower than the baseline");
    } else {
        let _ = writeln!(s, "\nworst regressions:");
        for (_, line) in slower.iter().take(10) {
            let _ = writeln!(s, "  {line}");
        }
    }
}

fn scatter(s: &mut String, c: &Comparison) {
    let scatter = c.scatter_classes();
    if !scatter.is_empty() {
        let _ = writeln!(s, "\nscatter queries (vtgate sends them to every shard):");
        for sc in &scatter {
            let ratio = sc
                .p50_ratio
                .map_or(String::new(), |r| format!("{r:.2}× p50  "));
            let _ = writeln!(
                s,
                "  {} in {}: {}{}  {}",
                sc.class.id,
                c.runs[sc.run].label,
                ratio,
                sc.opcode,
                shorten(&sc.class.fingerprint, 70)
            );
        }
    }
}
