//! Waking the capture reader when what it waits for has happened.
//!
//! The reader waits for three things: room in a lane that has records waiting for it,
//! a lane ending (so a waiting unit of work can be admitted), and, at `--speed max`, the
//! replay's progress through the capture (its read-ahead horizon). Polling for them
//! costs more than it checks: on a VM each wake-up takes a timer interrupt and a context
//! switch into a CPU the target is using (two idle threads ticking at 1 kHz took 10 %
//! off a bare client loop sharing one CPU). So the reader says what it waits for and
//! parks; a lane wakes it only when it brings that about.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering, fence};
use std::thread::Thread;
use std::time::Duration;

/// The reader waits for room in a lane it has records for.
pub const ROOM: u8 = 1;
/// The reader waits for a lane with a queue to end (one waits for admission).
pub const LANE_END: u8 = 2;
/// The reader waits for whole units to end (one waits for admission).
pub const UNIT_END: u8 = 4;

#[derive(Debug, Default)]
pub struct Park {
    reader: OnceLock<Thread>,
    wants: AtomicU8,
    /// Capture time the reader waits for the replay to reach (0: none).
    wants_progress: AtomicU64,
}

impl Park {
    /// Reader side: parks once, for at most `timeout`, unless `ready()` already holds
    /// after the wait is published. Callers loop on their own condition.
    pub fn wait(
        &self,
        wants: u8,
        progress: Option<u64>,
        timeout: Duration,
        ready: impl Fn() -> bool,
    ) {
        self.reader.get_or_init(std::thread::current);
        self.wants.store(wants, Ordering::SeqCst);
        self.wants_progress
            .store(progress.unwrap_or(0), Ordering::SeqCst);
        // Publish the wait before looking: a lane that acts after our look then sees the
        // wait and wakes us; one that acted before is seen by the look.
        fence(Ordering::SeqCst);
        if !ready() {
            std::thread::park_timeout(timeout);
        }
        self.wants.store(0, Ordering::Relaxed);
        self.wants_progress.store(0, Ordering::Relaxed);
    }

    /// Lane side: it took records and its queue has room again.
    pub fn room(&self) {
        self.wake_if(ROOM);
    }

    /// Lane side: a lane ended, with a queue or a whole unit.
    pub fn lane_ended(&self, queued: bool) {
        self.wake_if(if queued { LANE_END } else { UNIT_END });
    }

    /// Lane side: the replay reached capture time `t`.
    pub fn progressed(&self, t: u64) {
        fence(Ordering::SeqCst);
        let want = self.wants_progress.load(Ordering::Relaxed);
        if want != 0 && t >= want {
            self.wake();
        }
    }

    fn wake_if(&self, what: u8) {
        // Pairs with the reader's fence: our action is visible before we read its wait.
        fence(Ordering::SeqCst);
        if self.wants.load(Ordering::Relaxed) & what != 0 {
            self.wake();
        }
    }

    /// Wakes the reader whatever it waits for (the run stops).
    pub fn wake(&self) {
        if let Some(reader) = self.reader.get() {
            reader.unpark();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;

    #[test]
    fn a_lane_making_room_wakes_the_reader() {
        // A queue of 64 that a consumer drains one item every 50 µs; the reader waits
        // each time it is full, ~60 times. With a timeout of 5 s, a single wake-up lost
        // or not sent makes the test take 5 s more.
        let park = Arc::new(Park::default());
        let queued = Arc::new(AtomicUsize::new(0));
        let consumer = {
            let (park, queued) = (park.clone(), queued.clone());
            std::thread::spawn(move || {
                let mut taken = 0;
                while taken < 2_000 {
                    if queued.load(Ordering::SeqCst) > 0 {
                        queued.fetch_sub(1, Ordering::SeqCst);
                        taken += 1;
                        if queued.load(Ordering::SeqCst) <= 32 {
                            park.room();
                        }
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
        };
        let started = Instant::now();
        let mut sent = 0;
        while sent < 2_000 {
            while queued.load(Ordering::SeqCst) == 64 {
                park.wait(ROOM, None, Duration::from_secs(5), || {
                    queued.load(Ordering::SeqCst) <= 32
                });
            }
            queued.fetch_add(1, Ordering::SeqCst);
            sent += 1;
        }
        consumer.join().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn progress_wakes_only_past_the_mark() {
        let park = Arc::new(Park::default());
        let p2 = park.clone();
        let waker = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            p2.progressed(5); // not far enough
            std::thread::sleep(Duration::from_millis(20));
            p2.progressed(10);
        });
        let started = Instant::now();
        park.wait(0, Some(10), Duration::from_secs(5), || false);
        let waited = started.elapsed();
        waker.join().unwrap();
        assert!(
            waited >= Duration::from_millis(35) && waited < Duration::from_secs(4),
            "{waited:?}"
        );
    }
}
