//! The edge of the process, shared by the four binaries (recorder, replayer, shop,
//! playground): how an error is printed, what a stdout closed by its reader means, how
//! logs and statsd metrics are set up, and the signals that ask for a clean stop.
//! Written once so the binaries cannot drift apart.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

mod signal;
pub mod statsd;

pub use signal::shutdown_signal;

/// The exit status when the reader of our stdout went away (`replayer inspect x | head`).
///
/// 0, as ripgrep does, rather than 141 (the shell's code for a death by SIGPIPE): the
/// reader decided it had seen enough, which is no failure of ours, and a script running
/// `set -o pipefail` must not fail because `head` stopped reading. Nothing is printed:
/// there is no one left to read it, and stderr would only clutter the terminal.
pub const STDOUT_CLOSED_EXIT: u8 = 0;

/// Marks the error of a write to [`stdout`] whose reader has gone, so that `main` can
/// tell it from a broken pipe anywhere else (a socket to a server), which is a failure.
#[derive(Debug)]
struct StdoutClosed;

impl std::fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stdout was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// Locked stdout whose writes fail (instead of panicking, as `println!` does) when the
/// reader has gone; pass its errors up with `?` and return them through [`exit`].
#[derive(Debug)]
pub struct Stdout(io::StdoutLock<'static>);

/// The process's stdout, locked, for `writeln!(out, ...)?`.
pub fn stdout() -> Stdout {
    Stdout(io::stdout().lock())
}

fn mark_closed(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::BrokenPipe {
        io::Error::new(io::ErrorKind::BrokenPipe, StdoutClosed)
    } else {
        e
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf).map_err(mark_closed)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf).map_err(mark_closed)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush().map_err(mark_closed)
    }
}

/// Whether the error is (or was caused by) a write to [`stdout`] after its reader left.
pub fn is_stdout_closed(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause.is::<StdoutClosed>()
            || cause
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<StdoutClosed>())
    })
}

/// The error and its causes on one line, each cause once.
///
/// Error types often both print their source and chain it (`"{path}: {source}"` with
/// `#[source]`), so the plain `{:#}` walk repeats it; a cause whose text the line holds
/// already is skipped.
pub fn error_text(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// Prints `program: error: cause: ...` on stderr, each cause once (see [`error_text`]).
pub fn print_error(program: &str, e: &anyhow::Error) {
    // Not eprintln!: a closed stderr must not turn an error into a panic.
    let _ = writeln!(io::stderr(), "{program}: {}", error_text(e));
}

/// `main`'s exit status for a command's outcome: its own code, the quiet
/// [`STDOUT_CLOSED_EXIT`] when stdout was closed, else the error printed and 1.
pub fn exit(program: &str, result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) if is_stdout_closed(&e) => ExitCode::from(STDOUT_CLOSED_EXIT),
        Err(e) => {
            print_error(program, &e);
            ExitCode::FAILURE
        }
    }
}

/// Makes `println!` on a closed stdout end the process as [`exit`] does, instead of
/// panicking (exit 101 and a backtrace hint): a safety net for output not (yet) written
/// through [`stdout`]. Every other panic still goes to the default hook.
pub fn exit_quietly_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if is_println_broken_pipe(message) {
            std::process::exit(i32::from(STDOUT_CLOSED_EXIT));
        }
        default(info);
    }));
}

/// The panic `println!`/`print!` raise when stdout's reader has gone.
fn is_println_broken_pipe(message: &str) -> bool {
    let epipe = io::Error::from(io::ErrorKind::BrokenPipe).to_string();
    message.starts_with("failed printing to stdout")
        && (message.contains("(os error 32)") || message.contains(&epipe))
}

/// Logs (tracing) to stderr with the given filter; colours only when stderr is a
/// terminal (and `NO_COLOR` is unset), so that log files and pipes get plain text.
pub fn init_logging(filter: &str) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(io::stderr)
        .with_ansi(colours(io::stderr().is_terminal()))
        .init();
}

fn colours(terminal: bool) -> bool {
    terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_printed_is_skipped() {
        let io = io::Error::from(io::ErrorKind::NotFound);
        let text = io.to_string();
        // What `"{path}: {source}"` + `#[source]` plus a context give.
        let e = anyhow::Error::new(io)
            .context(format!("I/O error: {text}"))
            .context(format!("opening /x: I/O error: {text}"));
        assert_eq!(error_text(&e), format!("opening /x: I/O error: {text}"));
    }

    #[test]
    fn distinct_causes_are_all_printed() {
        let e = anyhow::anyhow!("no such table").context("replaying c.sqlcap");
        assert_eq!(error_text(&e), "replaying c.sqlcap: no such table");
    }

    #[test]
    fn only_a_broken_pipe_on_stdout_counts_as_closed() {
        let closed = anyhow::Error::new(mark_closed(io::Error::from(io::ErrorKind::BrokenPipe)))
            .context("printing the table");
        assert!(is_stdout_closed(&closed));
        // A broken pipe to a server is a failure, not a reader that left.
        let socket = anyhow::Error::new(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(!is_stdout_closed(&socket));
        let other = anyhow::Error::new(mark_closed(io::Error::other("disk full")));
        assert!(!is_stdout_closed(&other));
    }

    #[test]
    fn the_println_panic_is_recognised() {
        let epipe = io::Error::from_raw_os_error(32);
        assert!(is_println_broken_pipe(&format!(
            "failed printing to stdout: {epipe}"
        )));
        assert!(!is_println_broken_pipe("failed printing to stderr: x"));
        assert!(!is_println_broken_pipe("index out of bounds"));
    }
}
