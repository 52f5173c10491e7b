//! "Answers that changed", as text: the section every report opens with.

use std::fmt::Write as _;

use crate::compare::Comparison;
use captures::fingerprint::ClassId;
use maud::{Markup, html};

use crate::compare::answers::{AnswerJson, ClassAnswers, ClassRunAnswers};

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
        let ids: Vec<String> = a.ignored.iter().map(ClassId::to_string).collect();
        let _ = writeln!(s, "  ignored (--ignore-class): {}", ids.join(", "));
    }
}

/// What marks a class apart: volatile, no `ORDER BY`.
fn tags(class: &ClassAnswers) -> String {
    let mut tags = Vec::new();
    if class.volatile {
        tags.push("volatile");
    }
    if !class.ordered {
        tags.push("no ORDER BY");
    }
    tags.join(", ")
}

/// How a class's answers differed in a run, in words: divergence counts, most telling
/// first, then error codes that moved against the baseline.
fn how(r: &ClassRunAnswers) -> String {
    let kinds: Vec<String> = r
        .kinds
        .iter()
        .map(|k| format!("{} {}", k.kind, k.count))
        .collect();
    let mut how = kinds.join(", ");
    for e in &r.errors_vs_baseline {
        let _ = write!(
            how,
            "; error {} {} → {} vs baseline",
            e.code, e.baseline, e.run
        );
    }
    how
}

fn class_text(s: &mut String, c: &Comparison, class: &ClassAnswers) {
    let _ = writeln!(
        s,
        "\n  {} {}  [{}]",
        class.id,
        shorten(&class.fingerprint, 70),
        tags(class)
    );
    for (i, run) in class.runs.iter().enumerate() {
        let Some(r) = run.as_ref().filter(|r| r.diverged()) else {
            continue;
        };
        let _ = writeln!(
            s,
            "    {}{}: {} of {}",
            c.runs[i].label,
            if r.wrong { " WRONG" } else { "" },
            how(r),
            r.executions
        );
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
    // Eight hex digits of each hash tell digests apart at a glance (JSON has all 16).
    if let Some(d) = &a.digest {
        let _ = write!(out, " {:08x}…/{:08x}…", d.unordered >> 32, d.ordered >> 32);
    }
    if a.warnings > 0 {
        let _ = write!(out, " {} warnings", a.warnings);
    }
    out
}

/// The section as HTML: a table per run, then one row per diverging class and run with
/// its first diverging execution.
pub fn html(c: &Comparison) -> Markup {
    let a = &c.answers;
    html! {
        h2 #answers { "Answers that changed" }
        p {
            "Each replayed answer is compared with the captured one: row count, a digest of \
             the rows (order-sensitive and not), affected rows, warnings, error code. "
            i { "Volatile" } " classes already differ in the baseline replay (time, random \
             values, reads racing writes): the families of difference seen there (data, \
             warnings, errors) are noise for them. " i { "Order differs only" } " is the same rows in another order, which is \
             not a wrong answer either."
        }
        table {
            tr {
                @for h in ["run", "wrong classes", "their commands", "order-only classes",
                    "volatile classes", "their commands"] {
                    th { (h) }
                }
            }
            @for r in &a.runs {
                tr class=(if r.wrong_classes > 0 { "bad" } else { "" }) {
                    td.left { (r.label) }
                    td { (r.wrong_classes) }
                    td { (r.wrong_commands) }
                    td { (r.order_only_classes) }
                    td { (r.volatile_classes) }
                    td { (r.volatile_commands) }
                }
            }
        }
        @if a.classes.is_empty() {
            p.kept { "Every answer matched the capture." }
        } @else {
            table {
                tr {
                    @for h in ["class", "fingerprint", "run", "how", "first diverging execution",
                        "captured", "replayed"] {
                        th { (h) }
                    }
                }
                @for class in &a.classes {
                    @for (i, run) in class.runs.iter().enumerate() {
                        @if let Some(r) = run.as_ref().filter(|r| r.diverged()) {
                            (class_row(class, &c.runs[i].label, r))
                        }
                    }
                }
            }
        }
    }
}

fn class_row(class: &ClassAnswers, label: &str, r: &ClassRunAnswers) -> Markup {
    let first = r.kinds.iter().find_map(|k| k.first.as_ref());
    html! {
        tr class=(if r.wrong { "bad" } else { "" }) {
            td { (class.id) }
            td.fp title=(class.fingerprint) {
                (shorten(&class.fingerprint, 40)) " " span.muted { (tags(class)) }
            }
            td.left { (label) }
            td.how { (how(r)) }
            @match first {
                Some(f) => {
                    td.fp title=(f.statement) { (shorten(&f.statement, 40)) }
                    td { (answer(&f.captured)) }
                    td { (answer(&f.replayed)) }
                }
                None => { td {} td {} td {} }
            }
        }
    }
}
