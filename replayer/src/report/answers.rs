//! "Answers that changed", as text: the section every report opens with.

use std::fmt::Write as _;

use crate::compare::Comparison;
use crate::compare::answers::{AnswerJson, ClassAnswers, describe};

use super::shorten;

/// Writes the section: a line per run, then the diverging classes (at most `top`).
pub fn text(s: &mut String, c: &Comparison, top: usize) {
    let a = &c.answers;
    let _ = writeln!(
        s,
        "answers that changed (replay vs capture; volatile = already differs in the baseline \
         replay, order-only = same rows in another order):"
    );
    let _ = writeln!(
        s,
        "  {:<22} {:>13} {:>10} {:>18} {:>17}",
        "run", "wrong classes", "commands", "order-only classes", "volatile classes"
    );
    for r in &a.runs {
        let _ = writeln!(
            s,
            "  {:<22} {:>13} {:>10} {:>18} {:>17}",
            shorten(&r.label, 22),
            r.wrong_classes,
            r.wrong_commands,
            r.order_only_classes,
            format!("{} ({} cmds)", r.volatile_classes, r.volatile_commands)
        );
    }
    for class in a.classes.iter().take(top) {
        class_text(s, c, class);
    }
    if a.classes.len() > top {
        let _ = writeln!(
            s,
            "  … {} more classes in the JSON/HTML report",
            a.classes.len() - top
        );
    }
    if !a.ignored.is_empty() {
        let _ = writeln!(s, "  ignored (--ignore-class): {}", a.ignored.join(", "));
    }
}

fn class_text(s: &mut String, c: &Comparison, class: &ClassAnswers) {
    let mut tags = Vec::new();
    if class.volatile {
        tags.push("volatile");
    }
    if !class.ordered {
        tags.push("no ORDER BY");
    }
    let _ = writeln!(
        s,
        "\n  {} {}  [{}]",
        class.id,
        shorten(&class.fingerprint, 70),
        tags.join(", ")
    );
    for (i, run) in class.runs.iter().enumerate() {
        let Some(r) = run else { continue };
        if r.kinds.is_empty() && r.errors_vs_baseline.is_empty() {
            continue;
        }
        let mut line = format!(
            "    {}{}: {} of {}",
            c.runs[i].label,
            if r.wrong { " WRONG" } else { "" },
            describe(&r.kinds),
            r.executions
        );
        for e in &r.errors_vs_baseline {
            let _ = write!(
                line,
                "; error {} {} → {} vs baseline",
                e.code, e.baseline, e.run
            );
        }
        let _ = writeln!(s, "{line}");
        if let Some((kind, first)) = r
            .kinds
            .iter()
            .find_map(|k| Some((k.kind, k.first.as_ref()?)))
        {
            let _ = writeln!(s, "      first {kind}: {}", shorten(&first.statement, 100));
            let _ = writeln!(
                s,
                "        captured {}  replayed {}",
                answer(&first.captured),
                answer(&first.replayed)
            );
        }
    }
}

/// One answer in a few words: rows, digest, error, warnings.
pub fn answer(a: &AnswerJson) -> String {
    let mut out = match a.error {
        Some(code) => format!("error {code}"),
        None => format!("{} rows", a.rows),
    };
    if let Some(d) = &a.digest {
        let _ = write!(out, " {d}");
    }
    if a.warnings > 0 {
        let _ = write!(out, " {} warnings", a.warnings);
    }
    out
}

/// The section as HTML: a table per run, then one row per diverging class and run with
/// its first diverging execution.
pub fn html(h: &mut String, c: &Comparison) {
    use super::html::escape;
    let a = &c.answers;
    let _ = write!(
        h,
        "<h2 id='answers'>Answers that changed</h2><p>Each replayed answer is compared with \
         the captured one: row count, a digest of the rows (order-sensitive and not), affected \
         rows, warnings, error code. <i>Volatile</i> classes already differ in the baseline \
         replay (time, random values, reads racing writes) and never count as wrong; \
         <i>order differs only</i> is the same rows in another order, which is not wrong \
         either.</p><table><tr><th>run</th><th>wrong classes</th><th>their commands</th>\
         <th>order-only classes</th><th>volatile classes</th><th>their commands</th></tr>"
    );
    for r in &a.runs {
        let class = if r.wrong_classes > 0 {
            " class='bad'"
        } else {
            ""
        };
        let _ = write!(
            h,
            "<tr{class}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.label),
            r.wrong_classes,
            r.wrong_commands,
            r.order_only_classes,
            r.volatile_classes,
            r.volatile_commands
        );
    }
    let _ = write!(h, "</table>");
    if a.classes.is_empty() {
        let _ = write!(h, "<p class='kept'>Every answer matched the capture.</p>");
        return;
    }
    let _ = write!(
        h,
        "<table><tr><th>class</th><th>fingerprint</th><th>run</th><th>how</th>\
         <th>first diverging execution</th><th>captured</th><th>replayed</th></tr>"
    );
    for class in &a.classes {
        for (i, run) in class.runs.iter().enumerate() {
            let Some(r) = run
                .as_ref()
                .filter(|r| !r.kinds.is_empty() || !r.errors_vs_baseline.is_empty())
            else {
                continue;
            };
            let mut how = describe(&r.kinds);
            for e in &r.errors_vs_baseline {
                let _ = write!(
                    how,
                    "; error {} {} → {} vs baseline",
                    e.code, e.baseline, e.run
                );
            }
            let mut tags = Vec::new();
            if class.volatile {
                tags.push("volatile");
            }
            if !class.ordered {
                tags.push("no ORDER BY");
            }
            let first = r.kinds.iter().find_map(|k| k.first.as_ref());
            let _ = write!(
                h,
                "<tr{}><td>{}</td><td class='fp' title='{}'>{} <span class='muted'>{}</span></td><td>{}</td><td>{}</td><td class='fp' title='{}'>{}</td><td>{}</td><td>{}</td></tr>",
                if r.wrong { " class='bad'" } else { "" },
                escape(&class.id),
                escape(&class.fingerprint),
                escape(&shorten(&class.fingerprint, 60)),
                escape(&tags.join(", ")),
                escape(&c.runs[i].label),
                escape(&how),
                escape(first.map_or("", |f| f.statement.as_str())),
                escape(&first.map_or(String::new(), |f| shorten(&f.statement, 60))),
                escape(&first.map_or(String::new(), |f| answer(&f.captured))),
                escape(&first.map_or(String::new(), |f| answer(&f.replayed))),
            );
        }
    }
    let _ = write!(h, "</table>");
}
