//! Waking the capture reader when the connection queue it waits on has room again.
//!
//! The reader used to look at a full queue every millisecond. On a VM each such wake-up
//! costs far more than the check it makes (a timer interrupt, a context switch into a
//! CPU the target is using, caches refilled on both sides): two idle threads ticking at
//! 1 kHz took 10 % off a bare mysql_async loop's rate on one shared CPU. So the reader
//! names the connection it waits for and parks; that connection unparks it once its
//! queue is half empty, one wake-up per half queue instead of a thousand a second.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::thread::Thread;
use std::time::Duration;

/// The longest the reader sleeps without being woken. Wake-ups are not lost (see the
/// fences below), so this only bounds the damage of a bug, and costs little: it runs
/// only while the reader waits.
const SAFETY_NET: Duration = Duration::from_millis(10);

#[derive(Debug)]
pub struct Refill {
    /// The replay connection (id + 1) whose queue the reader waits on; 0: none.
    waiting_for: AtomicU64,
    reader: OnceLock<Thread>,
    safety_net: Duration,
}

impl Default for Refill {
    fn default() -> Self {
        Refill::with_safety_net(SAFETY_NET)
    }
}

impl Refill {
    fn with_safety_net(safety_net: Duration) -> Self {
        Refill {
            waiting_for: AtomicU64::new(0),
            reader: OnceLock::new(),
            safety_net,
        }
    }

    /// Reader side: returns once `ready()` holds. `conn` is the replay connection whose
    /// progress makes it true (by calling [`Refill::took`]).
    pub fn wait_for(&self, conn: u64, ready: impl Fn() -> bool) {
        self.reader.get_or_init(std::thread::current);
        loop {
            self.waiting_for.store(conn + 1, Ordering::SeqCst);
            // Publish the wait before looking at the queue: a connection that takes a
            // record after our look then sees the wait and wakes us.
            fence(Ordering::SeqCst);
            if ready() {
                break;
            }
            std::thread::park_timeout(self.safety_net);
        }
        self.waiting_for.store(0, Ordering::Relaxed);
    }

    /// Connection side, after taking a record from its queue: wakes the reader if it
    /// waits for this connection and `has_room()` (checked only then) says so.
    pub fn took(&self, conn: u64, has_room: impl FnOnce() -> bool) {
        // Pairs with the reader's fence: our take is visible before we read its wait.
        fence(Ordering::SeqCst);
        if self.waiting_for.load(Ordering::Relaxed) == conn + 1
            && has_room()
            && self
                .waiting_for
                .compare_exchange(conn + 1, 0, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        {
            self.wake();
        }
    }

    /// Wakes the reader whatever it waits for (a connection ended, the run stops).
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
    fn the_connection_it_waits_for_wakes_the_reader() {
        // A queue of 64 that a consumer drains one item every 50 µs; the reader waits
        // each time it is full, ~60 times. With a safety net of 5 s, a single wake-up
        // lost or not sent makes the test take 5 s more.
        let refill = Arc::new(Refill::with_safety_net(Duration::from_secs(5)));
        let queued = Arc::new(AtomicUsize::new(0));
        let consumer = {
            let (refill, queued) = (refill.clone(), queued.clone());
            std::thread::spawn(move || {
                let mut taken = 0;
                while taken < 2_000 {
                    if queued.load(Ordering::SeqCst) > 0 {
                        queued.fetch_sub(1, Ordering::SeqCst);
                        taken += 1;
                        refill.took(7, || queued.load(Ordering::SeqCst) <= 32);
                    }
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
        };
        let started = Instant::now();
        let mut sent = 0;
        while sent < 2_000 {
            if queued.load(Ordering::SeqCst) == 64 {
                refill.wait_for(7, || queued.load(Ordering::SeqCst) <= 32);
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
}
