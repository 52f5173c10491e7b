//! `replayer timeline`: build one run's timeline, print its phase table, write the
//! JSON and HTML asked for.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::error::Error;
use crate::report::timeline::{render_html, render_text};
use crate::timeline::{build, read_events};

#[derive(Debug, Args)]
pub struct TimelineArgs {
    /// A results file written by `replayer run`.
    pub results: PathBuf,
    /// Events that happened during the run: JSON lines {"unix_ns": N, "label": "..."}.
    #[arg(long)]
    pub events: Option<PathBuf>,
    /// Bucket width in seconds (default: the run's length / 300, at least 1 s).
    #[arg(long)]
    pub bucket: Option<f64>,
    /// Write a self-contained HTML page with the chart and the phase table.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Write buckets and phases as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// Prints the phase table on `out` and writes the files asked for; a damaged results
/// file fails after all that (the timeline covers the records before the damage).
pub fn run(args: &TimelineArgs, out: &mut impl Write) -> Result<(), Error> {
    let events = match &args.events {
        Some(path) => read_events(path)?,
        None => Vec::new(),
    };
    let t = build(&args.results, &events, args.bucket)?;
    write!(out, "{}", render_text(&t)).map_err(|e| Error::io("printing the timeline", e))?;
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&t).map_err(std::io::Error::from);
        json.and_then(|json| std::fs::write(path, json))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, render_html(&t))
            .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    }
    match t.problem {
        Some(problem) if t.damaged => Err(Error::Damaged {
            path: args.results.clone(),
            problem,
        }),
        Some(problem) => {
            crate::inspect::warn_incomplete(&args.results, &problem);
            Ok(())
        }
        None => Ok(()),
    }
}
