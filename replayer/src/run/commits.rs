//! Commit order (`--sync commits`): a unit does not start until every transaction that
//! committed in the capture before the unit's captured start has committed in the replay.
//!
//! The capture reader gives each captured commit a ticket, 1, 2, ... in capture order
//! ([`CommitLog`]), and each unit the highest ticket committed before it started. Lanes
//! report tickets as they complete, in any order; [`Commits`] publishes the watermark
//! (every ticket up to it done), which units wait on. Tickets only ever point back in
//! capture order, so waits cannot form a cycle.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// Recent commits the reader remembers to place a unit's start among them. Records reach
/// the file in the order their responses ended, so a commit that ended before a unit
/// started is among the last few read; 4096 covers any interleaving of 4096 connections.
const RECENT: usize = 4096;

/// Reader side: issues tickets and says which one a unit must wait for.
#[derive(Debug, Default)]
pub struct CommitLog {
    issued: u64,
    /// (captured end of the commit, its ticket), newest last.
    recent: VecDeque<(u64, u64)>,
}

impl CommitLog {
    /// A commit that ended at capture time `t_end`: its ticket.
    pub fn issue(&mut self, t_end: u64) -> u64 {
        self.issued += 1;
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((t_end, self.issued));
        self.issued
    }

    /// The highest ticket of a commit that ended before `t_start`, if any.
    pub fn before(&self, t_start: u64) -> Option<u64> {
        let later = self
            .recent
            .iter()
            .rev()
            .take_while(|(t_end, _)| *t_end >= t_start)
            .count();
        let ticket = self.issued - later as u64;
        (ticket > 0).then_some(ticket)
    }
}

/// Replay side: which tickets have completed, and waiting for one.
#[derive(Debug)]
pub struct Commits {
    state: Mutex<Done>,
    watermark: watch::Sender<u64>,
}

#[derive(Debug, Default)]
struct Done {
    watermark: u64,
    /// Completed tickets above the watermark (bounded by the commits in flight).
    ahead: BTreeSet<u64>,
}

impl Default for Commits {
    fn default() -> Self {
        Commits {
            state: Mutex::new(Done::default()),
            watermark: watch::Sender::new(0),
        }
    }
}

impl Commits {
    /// A lane finished (or gave up on) the command holding `ticket`.
    pub fn complete(&self, ticket: u64) {
        let mut done = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ticket <= done.watermark {
            return;
        }
        done.ahead.insert(ticket);
        let before = done.watermark;
        loop {
            let next = done.watermark + 1;
            if !done.ahead.remove(&next) {
                break;
            }
            done.watermark = next;
        }
        if done.watermark != before {
            self.watermark.send_replace(done.watermark);
        }
    }

    /// Waits until `ticket` and all before it completed; returns how long it waited
    /// (zero if it did not have to), or `None` if `stop` fired first.
    pub async fn wait_for(
        &self,
        ticket: u64,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<Duration> {
        let mut rx = self.watermark.subscribe();
        if *rx.borrow() >= ticket {
            return Some(Duration::ZERO);
        }
        let started = Instant::now();
        tokio::select! {
            r = rx.wait_for(|w| *w >= ticket) => r.ok().map(|_| started.elapsed()),
            _ = stop.wait_for(|s| *s) => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test code: a panic is the failure report
mod tests {
    use super::*;

    #[test]
    fn a_unit_waits_for_the_commits_that_ended_before_it_started() {
        let mut log = CommitLog::default();
        assert_eq!(log.before(10), None);
        assert_eq!(log.issue(5), 1);
        assert_eq!(log.issue(20), 2);
        assert_eq!(log.issue(18), 3); // read after 2, ended before it
        // The newest commit that ended before 19 is 3; waiting for it waits for 2 too.
        assert_eq!(log.before(19), Some(3));
        assert_eq!(log.before(15), Some(1));
        assert_eq!(log.before(25), Some(3));
        assert_eq!(log.before(1), None);
    }

    #[tokio::test]
    async fn the_watermark_moves_only_over_completed_runs() {
        let c = Commits::default();
        let (_tx, mut stop) = watch::channel(false);
        c.complete(2);
        assert_eq!(*c.watermark.borrow(), 0);
        c.complete(1);
        assert_eq!(*c.watermark.borrow(), 2);
        assert_eq!(c.wait_for(2, &mut stop).await, Some(Duration::ZERO));
        let waiter = tokio::spawn(async move {
            let (_tx, mut stop) = watch::channel(false);
            let c2 = std::sync::Arc::new(c);
            let c3 = c2.clone();
            let w = tokio::spawn(async move { c3.wait_for(3, &mut stop).await });
            tokio::time::sleep(Duration::from_millis(20)).await;
            c2.complete(3);
            w.await.unwrap()
        });
        let waited = waiter.await.unwrap().unwrap();
        assert!(waited >= Duration::from_millis(15), "{waited:?}");
    }
}
