//! The binary's commands, one module each where there is more than a call to make;
//! `main.rs` parses the arguments and calls one function per command. Part of the
//! binary, not of the `replayer` library: these return `anyhow` and print.

pub mod ramp;
pub mod run;

use std::io::{BufReader, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use captures::fingerprint::io::{Input, Output, transform};

/// `replayer inspect`: the capture's summary as text or JSON; a damaged capture fails
/// after it is printed.
pub fn inspect(capture: &Path, json: bool, top: usize) -> Result<ExitCode> {
    let i = replayer::inspect::inspect(capture, top)?;
    let mut out = cli::stdout();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&i)?)?;
    } else {
        replayer::inspect::print_text(&mut out, &i)?;
    }
    i.check()?;
    Ok(ExitCode::SUCCESS)
}

/// `replayer fingerprint`: query classes of a file (or stdin) to stdout.
pub fn fingerprint(file: Option<&Path>, sql: bool, text: bool) -> Result<ExitCode> {
    let input = if sql { Input::Sql } else { Input::JsonLines };
    let output = if text { Output::Text } else { Output::Json };
    let stdout = cli::stdout();
    match file {
        Some(path) => {
            let f =
                std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
            transform(
                BufReader::with_capacity(256 * 1024, f),
                stdout,
                input,
                output,
            )?
        }
        None => transform(std::io::stdin().lock(), stdout, input, output)?,
    };
    Ok(ExitCode::SUCCESS)
}
