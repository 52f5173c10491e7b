//! Waiting until a command is due, to well under a millisecond.
//!
//! Tokio's timer wheel ticks once a millisecond, so a command due 300 µs from now would
//! leave up to a millisecond late: that is the whole lag budget. Spinning closes the gap
//! but takes the CPU the target needs when both run on one machine (the usual case for a
//! benchmark). Instead one OS thread holds the pending deadlines in a heap and sleeps
//! until the earliest with a timed wait on its request channel, which the kernel's
//! high-resolution timers end within tens of microseconds; it then wakes the task.
//! Waits longer than [`COARSE`] first sleep on tokio's wheel, so the thread only ever
//! sees the last stretch.

use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::earliest::EarliestFirst;

/// Below this, the precise thread takes over from tokio's 1 ms wheel.
const COARSE: Duration = Duration::from_millis(2);

/// Pending waits the thread accepts. A replay connection has at most one wait at a time,
/// so this bounds nothing in practice; beyond it a wait falls back to the coarse timer
/// rather than blocking a runtime thread on a full channel.
const MAX_PENDING: usize = 16 * 1024;

/// A duration in whole nanoseconds, saturating (the unit capture and results times use).
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A handle on the timer thread; the thread ends when the last handle is dropped.
#[derive(Debug, Clone)]
pub struct Clock {
    requests: SyncSender<Wait>,
}

#[derive(Debug)]
struct Wait {
    due: Instant,
    wake: oneshot::Sender<()>,
}

impl Clock {
    pub fn start() -> std::io::Result<Self> {
        let (requests, rx) = mpsc::sync_channel(MAX_PENDING);
        std::thread::Builder::new()
            .name("replay-clock".into())
            .spawn(move || timer_thread(rx))?;
        Ok(Self { requests })
    }

    /// Returns at `due` (or at once if it has passed).
    pub async fn sleep_until(&self, due: Instant) {
        let now = Instant::now();
        if due <= now {
            return;
        }
        if due - now > COARSE {
            tokio::time::sleep_until((due - COARSE).into()).await;
            if due <= Instant::now() {
                return;
            }
        }
        let (wake, woken) = oneshot::channel();
        let wait = Wait { due, wake };
        match self.requests.try_send(wait) {
            // An error means the thread is gone: the deadline is as good as reached.
            Ok(()) => {
                let _ = woken.await;
            }
            Err(_) => tokio::time::sleep_until(due.into()).await,
        }
    }
}

fn timer_thread(rx: mpsc::Receiver<Wait>) {
    let mut pending: EarliestFirst<Instant, oneshot::Sender<()>> = EarliestFirst::default();
    loop {
        let now = Instant::now();
        while pending.first().is_some_and(|due| due <= now) {
            if let Some(wake) = pending.pop() {
                // The waiter may have been cancelled (its run stopped): nothing to wake.
                let _ = wake.send(());
            }
        }
        let next = match pending.first() {
            Some(due) => rx.recv_timeout(due.saturating_duration_since(now)),
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match next {
            Ok(w) => pending.push(w.due, w.wake),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                // Every handle is gone; release whoever still waits.
                while let Some(wake) = pending.pop() {
                    let _ = wake.send(());
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn wakes_in_deadline_order_and_close_to_it() {
        let clock = Clock::start().unwrap();
        let origin = Instant::now();
        let mut tasks = Vec::new();
        // Deliberately out of order, all inside the precise (sub-COARSE) stretch but one.
        for offset_us in [1500u64, 300, 900, 5000, 50] {
            let clock = clock.clone();
            let due = origin + Duration::from_micros(offset_us);
            tasks.push(tokio::spawn(async move {
                clock.sleep_until(due).await;
                (offset_us, Instant::now().saturating_duration_since(due))
            }));
        }
        for t in tasks {
            let (offset_us, late) = t.await.unwrap();
            // Never early; "late" is bounded loosely: this is a behaviour test, not a
            // benchmark (bench/replayer.sh measures the lag).
            assert!(Instant::now() >= origin + Duration::from_micros(offset_us));
            assert!(
                late < Duration::from_millis(50),
                "{offset_us} µs wait woke {late:?} late"
            );
        }
    }

    #[tokio::test]
    async fn a_past_deadline_returns_at_once() {
        let clock = Clock::start().unwrap();
        clock
            .sleep_until(Instant::now() - Duration::from_secs(1))
            .await;
    }
}
