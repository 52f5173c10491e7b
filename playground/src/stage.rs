//! One progress line per stage: what is happening, and how long it took.

use std::io::Write as _;
use std::time::Instant;

use crate::events::EventLog;

#[derive(Debug)]
pub struct Stages {
    total: usize,
    done: usize,
    started: Instant,
    /// Where each stage's start is also written, as a dashboard marker.
    events: Option<EventLog>,
}

impl Stages {
    pub fn new(total: usize) -> Self {
        Stages {
            total,
            done: 0,
            started: Instant::now(),
            events: None,
        }
    }

    /// From now on, each stage's start is also an event on the dashboard.
    pub fn set_events(&mut self, events: Option<EventLog>) {
        self.events = events;
    }

    /// Runs one stage, printing `[ n/N] what ... 1.2s` (or the failure).
    pub fn run<T>(
        &mut self,
        what: &str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        self.done += 1;
        let width = self.total.to_string().len();
        print!("[{:>width$}/{}] {what} ... ", self.done, self.total);
        let _ = std::io::stdout().flush();
        if let Some(events) = &self.events {
            events.note(
                "stage",
                None,
                &format!("{}/{} {what}", self.done, self.total),
            );
        }
        let t = Instant::now();
        match f() {
            Ok(value) => {
                println!("{:.1}s", t.elapsed().as_secs_f64());
                Ok(value)
            }
            Err(e) => {
                println!("FAILED after {:.1}s", t.elapsed().as_secs_f64());
                Err(e)
            }
        }
    }

    pub fn elapsed_secs(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}
