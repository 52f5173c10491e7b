//! Replay a capture against a target, measure every command, compare runs.
//!
//! - [`run`]: the timeline replay (`replayer run`), see ARCHITECTURE.md;
//! - [`inspect`]: what a capture holds;
//! - [`compare`] and [`report`]: per-class statistics across results files, and the
//!   text/JSON/HTML reports; [`command`] runs them as `replayer compare`/`timeline` do.

pub mod classify;
pub mod clock;
pub mod command;
pub mod compare;
pub mod earliest;
pub mod error;
pub mod exec;
pub mod histogram;
pub mod inspect;
pub mod metrics;
pub mod progress;
pub mod report;
pub mod routes;
pub mod run;
pub mod signal;
pub mod statements;
pub mod target;
pub mod timeline;
pub mod verdict;

pub use error::Error;
