//! The live progress line: capture time replayed, rate, p99 latency and lag, errors.

use std::time::{Duration, Instant};

use captures::Executed;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::target::Speed;

/// How often the line is redrawn (and the latency window restarted).
const REFRESH: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub struct Bar {
    bar: Option<ProgressBar>,
    speed: Speed,
    last: std::cell::Cell<Instant>,
    last_count: std::cell::Cell<u64>,
}

impl Bar {
    pub fn new(enabled: bool, speed: Speed) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(4));
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar
        });
        Bar {
            bar,
            speed,
            last: std::cell::Cell::new(Instant::now()),
            last_count: std::cell::Cell::new(0),
        }
    }

    pub fn update(
        &self,
        e: &Executed,
        commands: u64,
        errors: u64,
        window: &mut Histogram<u64>,
        lag: &Histogram<u64>,
    ) {
        let Some(bar) = &self.bar else { return };
        let now = Instant::now();
        let elapsed = now.duration_since(self.last.get());
        if elapsed < REFRESH {
            return;
        }
        let qps = (commands - self.last_count.get()) as f64 / elapsed.as_secs_f64();
        let captured = match self.speed {
            Speed::Factor(f) => format!("{:.1}s of capture", e.scheduled_ns as f64 / 1e9 * f),
            Speed::Max => "max speed".into(),
        };
        bar.set_message(format!(
            "{captured} · {commands} cmds · {qps:.0}/s · p99 {:.2} ms · lag p99 {:.2} ms · {errors} errors",
            window.value_at_quantile(0.99) as f64 / 1000.0,
            lag.value_at_quantile(0.99) as f64 / 1000.0,
        ));
        bar.tick();
        window.reset();
        self.last.set(now);
        self.last_count.set(commands);
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
