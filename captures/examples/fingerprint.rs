//! `fingerprint [--sql] [--text] [FILE]`: the fingerprint transform without the replayer,
//! for benchmarks and quick checks.

use std::io::BufReader;

use captures::fingerprint::io::{Input, Output, transform};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut input = Input::JsonLines;
    let mut output = Output::Json;
    let mut file = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--sql" => input = Input::Sql,
            "--text" => output = Output::Text,
            _ => file = Some(arg),
        }
    }
    let stdout = std::io::stdout().lock();
    let n = match file {
        Some(path) => transform(
            BufReader::new(std::fs::File::open(path)?),
            stdout,
            input,
            output,
        )?,
        None => transform(std::io::stdin().lock(), stdout, input, output)?,
    };
    eprintln!("{n} queries");
    Ok(())
}
