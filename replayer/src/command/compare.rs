//! `replayer compare`: load the runs, compare, print and write the reports, apply the
//! gates. The command layer: it may use every layer below (analysis, render).

use std::path::PathBuf;
use std::process::ExitCode;

use captures::fingerprint::ClassId;
use clap::Args;

use crate::compare::{
    CompareOptions, Quantile, answers, compare, load_run, regressions, schedule_failures,
};
use crate::error::Error;
use crate::report;

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Results files; the first is the baseline, the others become columns (one file
    /// alone gives its per-class table).
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<PathBuf>,
    /// Write a self-contained HTML report with SVG charts.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write the comparison as JSON (its shape: README, `compare --json`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Exit 1 if a class with enough samples is significantly slower by more than PCT %.
    #[arg(long, value_name = "PCT")]
    pub fail_on_regression: Option<f64>,
    /// A change smaller than this (%) is "no significant change" even if the CI excludes 1.
    #[arg(long, default_value_t = 10.0)]
    pub threshold: f64,
    /// Classes with fewer executions than this in either run get no verdict.
    #[arg(long, default_value_t = 30)]
    pub min_samples: u64,
    /// Which latency quantile the verdict is based on.
    #[arg(long, value_enum, default_value = "p50")]
    pub verdict_on: Quantile,
    /// With --fail-on-regression: do not fail because a run fell behind its schedule
    /// (or was invalid); only slower classes count.
    #[arg(long)]
    pub allow_fell_behind: bool,
    /// Classes shown in the text table (JSON and HTML have all).
    #[arg(long, default_value_t = 25)]
    pub top: usize,
    /// Exit 1 if a class that is not volatile returned a wrong answer in some run:
    /// other rows, another row count, affected rows, warnings or error than the
    /// capture (order alone never counts), or an error the baseline did not have.
    #[arg(long)]
    pub fail_on_divergence: bool,
    /// Leave this class (16-hex id) out of "answers that changed" (repeatable).
    #[arg(long = "ignore-class", value_name = "ID")]
    pub ignore_class: Vec<ClassId>,
}

impl CompareArgs {
    /// What the comparison itself is judged by.
    pub fn options(&self) -> CompareOptions {
        CompareOptions {
            threshold: self.threshold,
            min_samples: self.min_samples,
            verdict_on: self.verdict_on,
            ignore_class: self.ignore_class.clone(),
        }
    }
}

/// `replayer compare`.
pub fn run(args: &CompareArgs) -> Result<ExitCode, Error> {
    let runs = args
        .runs
        .iter()
        .map(|p| load_run(p))
        .collect::<Result<Vec<_>, _>>()?;
    let comparison = compare(&runs, &args.options());
    print!("{}", report::text::render(&comparison, args.top));
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&comparison).map_err(std::io::Error::from);
        json.and_then(|json| std::fs::write(path, json))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    if let Some(path) = &args.html {
        let html = report::html::render(&comparison, &runs);
        std::fs::write(path, html)
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    if args.fail_on_divergence {
        let wrong = answers::wrong_answers(&comparison.answers);
        if !wrong.is_empty() {
            eprintln!(
                "replayer: {} wrong answer(s) in classes that are not volatile:",
                wrong.len()
            );
            for (label, class) in wrong.iter().take(10) {
                eprintln!("  {} in {label}: {}", class.id, class.fingerprint);
            }
            return Ok(ExitCode::from(1));
        }
    }
    if let Some(pct) = args.fail_on_regression {
        let found = regressions(&comparison, pct);
        if !found.is_empty() {
            eprintln!(
                "replayer: {} class(es) significantly slower by more than {pct}%:",
                found.len()
            );
            for (id, label, ratio) in found.iter().take(10) {
                eprintln!("  {id} in {label}: {ratio:.2}× the baseline");
            }
            return Ok(ExitCode::from(1));
        }
        if !args.allow_fell_behind && !schedule_failures(&comparison).is_empty() {
            for (label, verdict) in schedule_failures(&comparison) {
                eprintln!("replayer: {label}: {verdict}");
            }
            eprintln!(
                "replayer: its ratios do not describe the load asked for \
                 (--allow-fell-behind to accept)"
            );
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}
