//! "Answers that changed": per run and class, how replayed answers differed from the
//! captured ones, with the noise set apart.
//!
//! - A class is *volatile* when its answers already differ in the baseline: a replay
//!   against the kind of target the capture was recorded on (`NOW()`, `RAND()`, `UUID()`,
//!   auto-increment values, or reads that raced writes). What it diverged in there is
//!   noise for that class, by family — the data (row counts, rows, affected rows: a race
//!   moves any of them), the warnings, the errors: in other runs those are reported
//!   apart and never fail `--fail-on-divergence`; a family the baseline did not show
//!   (warnings where only rows moved, an error) still does.
//! - "Order differs only" is never a wrong answer: without `ORDER BY` any order is
//!   correct (a sharded target merges shards in its own), with it only ties can move.
//! - Errors are also compared between runs: an error code a run has and the baseline
//!   does not (or the reverse) is reported even when the capture had it too.

use std::collections::BTreeSet;

use captures::fingerprint::ClassId;
use captures::{Answer, Digest, Divergence, Divergent};
use serde::Serialize;

use super::load::{ClassRun, RunData};

/// The section, as the JSON file holds it.
#[derive(Debug, Default, Serialize)]
pub struct Answers {
    /// One entry per run, in run order.
    pub runs: Vec<RunAnswers>,
    /// Classes with any divergence in any run (ignored classes left out), most
    /// diverging first.
    pub classes: Vec<ClassAnswers>,
    /// Classes left out with `--ignore-class`.
    pub ignored: Vec<ClassId>,
}

#[derive(Debug, Default, Serialize)]
pub struct RunAnswers {
    pub label: String,
    /// Classes with a wrong answer: diverged in a family the baseline did not show for
    /// them (order aside).
    pub wrong_classes: u64,
    /// Their commands that gave a wrong answer.
    pub wrong_commands: u64,
    /// Classes whose answers differed only in order.
    pub order_only_classes: u64,
    /// Volatile classes that diverged in this run in the baseline's ways, and those
    /// commands.
    pub volatile_classes: u64,
    pub volatile_commands: u64,
}

#[derive(Debug, Serialize)]
pub struct ClassAnswers {
    pub id: ClassId,
    pub fingerprint: String,
    /// Already differs in the baseline replay (see the module docs).
    pub volatile: bool,
    /// The statement sorts its rows: an order-only difference is ties moving.
    pub ordered: bool,
    /// One entry per run, in run order; `null` where the class did not occur.
    pub runs: Vec<Option<ClassRunAnswers>>,
}

#[derive(Debug, Default, Serialize)]
pub struct ClassRunAnswers {
    pub executions: u64,
    /// Divergences against the capture, by kind, most telling first.
    pub kinds: Vec<KindCount>,
    /// Error codes whose count differs from the baseline's (absent for the baseline).
    pub errors_vs_baseline: Vec<ErrorShift>,
    /// A wrong answer in this run: what `--fail-on-divergence` fails on.
    pub wrong: bool,
    /// Commands whose divergence is a wrong answer (families the baseline did not show,
    /// order aside); the rest of `kinds` is noise.
    pub wrong_commands: u64,
}

#[derive(Debug, Serialize)]
pub struct KindCount {
    pub kind: Divergence,
    pub count: u64,
    /// Its first execution in the run, if the run recorded one.
    pub first: Option<Example>,
}

/// A diverging execution: what was sent and both answers.
#[derive(Debug, Serialize)]
pub struct Example {
    pub statement: String,
    pub captured: AnswerJson,
    pub replayed: AnswerJson,
}

#[derive(Debug, Serialize)]
pub struct AnswerJson {
    pub rows: u64,
    /// `unordered/ordered`, hex, in JSON.
    #[serde(serialize_with = "digest_text")]
    pub digest: Option<Digest>,
    pub error: Option<u16>,
    pub warnings: u16,
}

/// A digest as reports spell it (its `Display`), for JSON.
fn digest_text<S: serde::Serializer>(d: &Option<Digest>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.collect_str(d),
        None => s.serialize_none(),
    }
}

/// An error code whose count differs between the baseline and a run.
#[derive(Debug, Serialize)]
pub struct ErrorShift {
    pub code: u16,
    pub baseline: u64,
    pub run: u64,
}

impl ClassRunAnswers {
    /// Whether anything differed: from the capture, or in errors from the baseline.
    pub fn diverged(&self) -> bool {
        !self.kinds.is_empty() || !self.errors_vs_baseline.is_empty()
    }
}

impl From<&Answer> for AnswerJson {
    fn from(a: &Answer) -> Self {
        AnswerJson {
            rows: a.rows,
            digest: a.digest,
            error: a.error,
            warnings: a.warnings,
        }
    }
}

impl From<&Divergent> for Example {
    fn from(d: &Divergent) -> Self {
        Example {
            statement: d.statement.clone(),
            captured: (&d.captured).into(),
            replayed: (&d.replayed).into(),
        }
    }
}

/// Builds the section. `ordered` tells whether a class's statement sorts its rows;
/// `ignored` classes are left out.
pub fn answers(
    runs: &[RunData],
    ignored: &BTreeSet<u64>,
    fingerprint: impl Fn(u64) -> String,
) -> Answers {
    let Some(base) = runs.first() else {
        return Answers::default();
    };
    // With the baseline alone, nothing tells noise from change: nothing is volatile.
    let noise = |id: u64| -> BTreeSet<Family> {
        match base.classes.get(&id) {
            Some(c) if runs.len() > 1 => c.diverged.keys().filter_map(|k| family(*k)).collect(),
            _ => BTreeSet::new(),
        }
    };
    let mut ids: BTreeSet<u64> = BTreeSet::new();
    for run in runs {
        ids.extend(run.classes.keys().copied());
    }
    let mut classes: Vec<ClassAnswers> = ids
        .into_iter()
        .filter(|id| !ignored.contains(id))
        .filter_map(|id| {
            let fingerprint = fingerprint(id);
            let ordered = fingerprint.contains("order by");
            let noise = noise(id);
            let volatile = !noise.is_empty();
            let per_run: Vec<Option<ClassRunAnswers>> = runs
                .iter()
                .enumerate()
                .map(|(i, run)| {
                    let c = run.classes.get(&id)?;
                    let baseline = (i > 0).then(|| base.classes.get(&id)).flatten();
                    Some(class_run(
                        id,
                        c,
                        baseline,
                        i > 0 || runs.len() == 1,
                        &noise,
                        run,
                    ))
                })
                .collect();
            let diverged = per_run.iter().flatten().any(ClassRunAnswers::diverged);
            diverged.then_some(ClassAnswers {
                id: ClassId(id),
                fingerprint,
                volatile,
                ordered,
                runs: per_run,
            })
        })
        .collect();
    classes.sort_by_key(|c| {
        let wrong = c.runs.iter().flatten().filter(|r| r.wrong).count();
        let commands: u64 = c
            .runs
            .iter()
            .flatten()
            .flat_map(|r| &r.kinds)
            .map(|k| k.count)
            .sum();
        (std::cmp::Reverse(wrong), std::cmp::Reverse(commands))
    });
    Answers {
        runs: runs
            .iter()
            .enumerate()
            .map(|(i, run)| run_answers(run, i, &classes))
            .collect(),
        classes,
        ignored: ignored.iter().map(|id| ClassId(*id)).collect(),
    }
}

/// One class in one run. `judged`: this run's divergences can be wrong answers (every
/// run but the baseline, or the baseline when it is alone); `noise`: the families the
/// baseline already showed for the class.
fn class_run(
    id: u64,
    c: &ClassRun,
    baseline: Option<&ClassRun>,
    judged: bool,
    noise: &BTreeSet<Family>,
    run: &RunData,
) -> ClassRunAnswers {
    let kinds: Vec<KindCount> = c
        .diverged
        .iter()
        .map(|(&kind, &count)| KindCount {
            kind,
            count,
            first: run.examples.get(&(id, kind)).map(Example::from),
        })
        .collect();
    let errors_vs_baseline = baseline.map(|b| error_shifts(b, c)).unwrap_or_default();
    let new_kinds: u64 = c
        .diverged
        .iter()
        .filter(|(k, _)| family(**k).is_some_and(|f| !noise.contains(&f)))
        .map(|(_, n)| n)
        .sum();
    let wrong = judged && (new_kinds > 0 || errors_vs_baseline.iter().any(|e| e.run > 0));
    ClassRunAnswers {
        executions: c.count,
        kinds,
        errors_vs_baseline,
        wrong,
        wrong_commands: if judged { new_kinds } else { 0 },
    }
}

/// What a divergence is about, for telling noise from change: a race between a read
/// and a write moves any of the data kinds, never the warnings or an error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
    Data,
    Warnings,
    Errors,
}

/// The family of a divergence; `None` for order alone, which is never a wrong answer.
fn family(kind: Divergence) -> Option<Family> {
    match kind {
        Divergence::None | Divergence::OrderOnly => None,
        Divergence::RowCount | Divergence::RowsDiffer | Divergence::Affected => Some(Family::Data),
        Divergence::Warnings => Some(Family::Warnings),
        Divergence::ErrorNew | Divergence::ErrorResolved | Divergence::ErrorChanged => {
            Some(Family::Errors)
        }
    }
}

/// Error codes that one of the two runs has and the other does not.
fn error_shifts(base: &ClassRun, run: &ClassRun) -> Vec<ErrorShift> {
    let codes: BTreeSet<u16> = base
        .error_codes
        .keys()
        .chain(run.error_codes.keys())
        .copied()
        .collect();
    codes
        .into_iter()
        .filter_map(|code| {
            let b = base.error_codes.get(&code).copied().unwrap_or(0);
            let r = run.error_codes.get(&code).copied().unwrap_or(0);
            ((b == 0) != (r == 0)).then_some(ErrorShift {
                code,
                baseline: b,
                run: r,
            })
        })
        .collect()
}

fn run_answers(run: &RunData, i: usize, classes: &[ClassAnswers]) -> RunAnswers {
    let mut out = RunAnswers {
        label: run.meta.label.clone(),
        ..RunAnswers::default()
    };
    for class in classes {
        let Some(Some(r)) = class.runs.get(i) else {
            continue;
        };
        let commands: u64 = r.kinds.iter().map(|k| k.count).sum();
        let order_only =
            !r.kinds.is_empty() && r.kinds.iter().all(|k| k.kind == Divergence::OrderOnly);
        if r.wrong {
            out.wrong_classes += 1;
            out.wrong_commands += r.wrong_commands;
        }
        if class.volatile && commands > r.wrong_commands {
            out.volatile_classes += 1;
            out.volatile_commands += commands - r.wrong_commands;
        }
        out.order_only_classes += u64::from(order_only);
    }
    out
}

/// Classes with a wrong answer, per run: what `--fail-on-divergence` reports.
pub fn wrong_answers(a: &Answers) -> Vec<(&str, &ClassAnswers)> {
    let mut out = Vec::new();
    for class in &a.classes {
        for (i, r) in class.runs.iter().enumerate() {
            if r.as_ref().is_some_and(|r| r.wrong) {
                out.push((a.runs[i].label.as_str(), class));
            }
        }
    }
    out
}
