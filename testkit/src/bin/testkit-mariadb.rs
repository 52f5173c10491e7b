//! `testkit-mariadb`: a private MariaDB for scripts (bench/lib.sh), started exactly as
//! the tests start theirs ([`testkit::MariaDb`]: its own directory and config file, a
//! free port on 127.0.0.1, relaxed durability, root without a password over TCP).
//!
//! ```text
//! testkit-mariadb [--dir DIR] [--keep] [-- MARIADBD-OPTION...]
//! ```
//!
//! `--dir`: create the server's directory under DIR (default: the tests' shared
//! directory); `--keep`: leave it behind; options after `--` go to `mariadbd`'s command
//! line, after its config file (e.g. `--max-connections=1100`).
//!
//! Once the server answers it prints one line, `PORT SOCKET`, on stdout and stays up
//! until SIGTERM, SIGINT or SIGHUP: then it stops the server, removes its directory and
//! exits 0. If the server dies first it prints the tail of its error log and exits 1; a
//! server that does not come up is an error on stderr and exit 1.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use testkit::{MariaDb, MariaDbOptions};

const USAGE: &str = "usage: testkit-mariadb [--dir DIR] [--keep] [-- MARIADBD-OPTION...]";

/// How often the server is checked for an unexpected exit while waiting for a signal.
const CHECK_EVERY: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    // First, before any thread exists: every thread started later (the server's
    // spawner) inherits the mask, so the signals wait for `wait_for_signal`. Children
    // start with an empty mask (std resets it), so mariadbd is not affected.
    let signals = block_signals();
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("testkit-mariadb: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut server = match MariaDb::start_with(options) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("testkit-mariadb: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let told =
        writeln!(out, "{} {}", server.port(), server.socket().display()).and_then(|()| out.flush());
    drop(out);
    if let Err(e) = told {
        // Nobody learns where the server is: no use keeping it.
        eprintln!("testkit-mariadb: writing the port to stdout: {e}");
        return ExitCode::FAILURE;
    }
    loop {
        if wait_for_signal(&signals, CHECK_EVERY) {
            return ExitCode::SUCCESS; // dropping `server` stops it and removes its directory
        }
        if !server.is_running() {
            let log = std::fs::read_to_string(server.error_log()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("testkit-mariadb: mariadbd exited; the end of its error log:");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
            return ExitCode::FAILURE;
        }
    }
}

/// The options, or `None` for `--help`.
fn parse(mut args: impl Iterator<Item = String>) -> Result<Option<MariaDbOptions>, String> {
    let mut options = MariaDbOptions::default();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => {
                let dir = args.next().ok_or("--dir needs a directory")?;
                options.parent_dir = Some(dir.into());
            }
            "--keep" => options.keep_dir = true,
            "-h" | "--help" => return Ok(None),
            "--" => options.args.extend(args.by_ref()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}

/// SIGTERM, SIGINT and SIGHUP, blocked in the calling thread.
struct Signals(libc::sigset_t);

#[allow(unsafe_code)]
fn block_signals() -> Signals {
    // SAFETY: sigemptyset and sigaddset fill a sigset_t owned here (zeroed memory is a
    // valid sigset_t to start from); pthread_sigmask only reads it. Their results cannot
    // be errors for these valid signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
            libc::sigaddset(&mut set, signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        Signals(set)
    }
}

/// Whether one of the blocked signals arrived within `timeout` (it is consumed).
#[allow(unsafe_code)]
fn wait_for_signal(signals: &Signals, timeout: Duration) -> bool {
    let timeout = libc::timespec {
        tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(timeout.subsec_millis()) * 1_000_000,
    };
    // SAFETY: sigtimedwait reads the set and the timespec, both owned here, and is given
    // no siginfo to write.
    unsafe { libc::sigtimedwait(&signals.0, std::ptr::null_mut(), &timeout) > 0 }
}
