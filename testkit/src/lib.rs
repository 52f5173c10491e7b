//! Private, throwaway database servers for tests.
//!
//! Every test that needs a database gets a real one: [`MariaDb::start`] runs
//! `mariadb-install-db` into a fresh directory, starts `mariadbd` on a free port of
//! 127.0.0.1 with its own `--defaults-file`, waits until it sends a handshake, and on drop
//! stops the server and removes the directory. It never touches the system service, its
//! socket or port 3306.
//!
//! Starting a server takes about a second, so a test binary normally shares one
//! ([`MariaDb::shared`]) and gives each test its own database ([`MariaDb::fresh_database`]).
//! A shared server is never dropped; it dies with the test process instead (the child is
//! started with `PR_SET_PDEATHSIG`), and its directory is removed by the next start
//! (see [`cleanup_stale`]).

mod error;
mod mariadb;
mod metrics;
mod process;

pub use error::Error;
pub use mariadb::{MariaDb, MariaDbOptions, cleanup_stale};
pub use metrics::{MetricsStack, telegraf_binary};
pub use process::{find_program, spawn_tied_to_process};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
