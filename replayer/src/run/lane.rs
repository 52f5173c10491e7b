//! A lane replays a sequence of steps in order on one target connection at a time: a
//! whole captured connection (`--connections captured`), or one unit of work (pooled,
//! where a captured connection that pinned its session keeps its lane to the end).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use captures::{Cmd, Command, Executed, Record};
use tokio::sync::{mpsc, watch};

use super::ctx::Ctx;
use super::pool::{Lease, TargetConn};
use super::results::Pending;
use super::step::{Step, UnitStart};
use crate::exec::{self, CANNOT_CONNECT, CONNECTION_LOST, Done, Request};

/// What the reader and a lane share about the lane.
#[derive(Debug, Default)]
pub struct LaneShared {
    /// The reader holds records this lane's queue had no room for: tell it when there
    /// is room again.
    pub has_overflow: AtomicBool,
}

/// The connection a lane runs on.
#[derive(Debug)]
enum Held {
    None,
    /// Captured replay: the lane's own connection (reopened if lost).
    Own(Option<TargetConn>),
    /// Pooled replay: a pool slot and its connection.
    Leased(Lease),
}

struct Lane {
    ctx: Arc<Ctx>,
    /// The id results give this lane's commands: the captured connection's replay id.
    replay_conn: u64,
    held: Held,
    /// The session holds state that must not go back to the pool.
    dirty: bool,
    pending: Pending,
    stop: watch::Receiver<bool>,
}

/// Runs a lane until its queue closes or the run stops. `_alive` is dropped at the end:
/// the run waits for every lane by waiting for the last one.
pub async fn run_lane(
    ctx: Arc<Ctx>,
    replay_conn: u64,
    mut rx: mpsc::Receiver<Step>,
    shared: Arc<LaneShared>,
    _alive: mpsc::Sender<()>,
) {
    let stop = ctx.stop_signal.subscribe();
    let mut lane = Lane {
        ctx,
        replay_conn,
        held: Held::None,
        dirty: false,
        pending: Pending::new(),
        stop,
    };
    loop {
        // Nothing queued: what ran so far goes to the results thread before waiting.
        if rx.is_empty() && !lane.flush().await {
            break;
        }
        let Some(step) = rx.recv().await else { break };
        if shared.has_overflow.load(Ordering::Relaxed) && rx.len() <= rx.max_capacity() / 2 {
            lane.ctx.park.room();
        }
        if lane.ctx.stopped() || !lane.step(step).await {
            break;
        }
    }
    // The reader may hold more for this lane: closing the queue tells it to drop them.
    drop(rx);
    lane.finish().await;
    let live = lane.ctx.live_lanes.fetch_sub(1, Ordering::Relaxed) - 1;
    // Wake a reader waiting to admit units only once half the lanes are gone: a wake-up
    // per ended unit (one per command in a typical pooled replay) costs more than the
    // command on a shared CPU, and half the lanes still keep the pool busy.
    if live <= lane.ctx.admit_limit / 2 {
        lane.ctx.park.lane_ended();
    }
}

impl Lane {
    /// False when the lane must end (run stopped, results thread gone).
    async fn step(&mut self, step: Step) -> bool {
        match step.record.as_ref() {
            Record::ConnOpen(open) => {
                let due = self.ctx.due(open.t);
                if !self.ctx.wait_until(due, &mut self.stop).await {
                    return false;
                }
                let db = self.ctx.connector.target().map_db(open.db.as_deref());
                self.held = Held::Own(self.ctx.connector.open(db).await);
                true
            }
            Record::ConnClose(close) => {
                // Stopping or not, the connection closes; its results go first, not
                // after a wait that may be long.
                self.flush().await;
                let due = self.ctx.due(close.t);
                self.ctx.wait_until(due, &mut self.stop).await;
                self.release().await;
                true
            }
            Record::Command(command) => self.command(&step, command).await,
            // The reader keeps the capture's end to itself.
            Record::End(_) => true,
        }
    }

    async fn command(&mut self, step: &Step, command: &Command) -> bool {
        let due = self.ctx.due(command.t_start);
        if due.is_some_and(|d| d > Instant::now()) && !self.pending.send(&self.ctx.results).await {
            // About to wait: what ran so far goes to the results thread first.
            return false;
        }
        if !self.ctx.wait_until(due, &mut self.stop).await {
            return false;
        }
        if let Some(unit) = &step.unit
            && !self.start_unit(unit).await
        {
            return false;
        }
        if matches!(command.cmd, Cmd::Quit) {
            self.release().await;
            return true;
        }
        self.ctx.started(command.t_start);
        let sent_at = Instant::now();
        let done = self.execute(step, command).await;
        let finished_at = Instant::now();
        if let (Some(commits), Some(ticket)) = (&self.ctx.commits, step.commit) {
            commits.complete(ticket);
        }
        self.dirty = (self.dirty || step.pins) && !matches!(command.cmd, Cmd::ResetConnection);
        if done == Done::Skipped {
            self.pending.skipped += 1;
            return true;
        }
        self.record(
            step,
            command,
            done,
            due.unwrap_or(sent_at),
            sent_at,
            finished_at,
        )
        .await
    }

    /// Commit order, then (pooled) a connection with the unit's session.
    async fn start_unit(&mut self, unit: &UnitStart) -> bool {
        if let (Some(commits), Some(ticket)) = (&self.ctx.commits, unit.after_commit) {
            match commits.wait_for(ticket, &mut self.stop).await {
                None => return false,
                Some(waited) if !waited.is_zero() => {
                    self.ctx.sync_waits.fetch_add(1, Ordering::Relaxed);
                    let ns = u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX);
                    self.ctx.sync_wait_ns.fetch_add(ns, Ordering::Relaxed);
                }
                Some(_) => {}
            }
        }
        if let (Held::None, Some(pool)) = (&self.held, &self.ctx.pool) {
            let lease = tokio::select! {
                lease = pool.acquire() => lease,
                _ = self.stop.wait_for(|s| *s) => None,
            };
            let Some(lease) = lease else { return false };
            self.held = Held::Leased(lease);
        }
        self.follow_session(unit).await;
        true
    }

    /// Pooled: the connection takes the unit's default database and character set.
    /// Failures show in the unit's own commands, which run in the wrong session.
    async fn follow_session(&mut self, unit: &UnitStart) {
        if !matches!(self.held, Held::Leased(_)) {
            return;
        }
        let db = self.ctx.connector.target().map_db(unit.db.as_deref());
        let Some(tc) = self.connection(db.clone()).await else {
            return;
        };
        if tc.db != db
            && let Some(name) = &db
            && exec::use_db(&mut tc.conn, name).await.is_ok()
        {
            tc.db = db;
        }
        if tc.names != unit.names {
            let sql: &[u8] = unit.names.as_deref().unwrap_or(b"SET NAMES utf8mb4");
            use mysql_async::prelude::Queryable;
            if tc.conn.query_drop(sql).await.is_ok() {
                tc.names = unit.names.clone();
            }
        }
    }

    /// The lane's connection, opening one if it has none (with the connector's backoff).
    async fn connection(&mut self, db: Option<String>) -> Option<&mut TargetConn> {
        if matches!(self.held, Held::None) && self.ctx.pool.is_none() {
            // Captured replay of a connection whose open the capture did not see.
            self.held = Held::Own(None);
        }
        let slot = match &mut self.held {
            Held::Own(slot) => slot,
            Held::Leased(lease) => &mut lease.conn,
            Held::None => return None,
        };
        if slot.is_none() {
            *slot = match &self.ctx.pool {
                Some(pool) => pool.open(db).await,
                None => self.ctx.connector.open(db).await,
            };
        }
        slot.as_mut()
    }

    async fn execute(&mut self, step: &Step, command: &Command) -> Done {
        // The context, not the target, is cloned: an Arc, where a Target holds maps.
        let ctx = self.ctx.clone();
        let target = ctx.connector.target();
        let Some(tc) = self.connection(target.map_db(None)).await else {
            return Done::ServerError(CANNOT_CONNECT);
        };
        let req = Request {
            conn: command.conn,
            cmd: &command.cmd,
            stmt_sql: step.stmt.as_deref(),
        };
        match tc.session.execute(&mut tc.conn, req, target).await {
            Ok(done) => {
                if let Cmd::InitDb { db } = &command.cmd {
                    tc.db = target.map_db(Some(db));
                }
                done
            }
            Err(e) => {
                tracing::debug!(conn = self.replay_conn, "connection lost: {e}");
                self.lose_connection();
                Done::ServerError(CONNECTION_LOST)
            }
        }
    }

    fn lose_connection(&mut self) {
        match &mut self.held {
            Held::Own(slot) => *slot = None,
            Held::Leased(lease) => lease.conn = None,
            Held::None => {}
        }
    }

    async fn record(
        &mut self,
        step: &Step,
        command: &Command,
        done: Done,
        scheduled: Instant,
        sent_at: Instant,
        finished_at: Instant,
    ) -> bool {
        let error = match done {
            Done::ServerError(code) => Some(code),
            _ => None,
        };
        let executed = Executed {
            conn: self.replay_conn,
            seq: step.seq,
            class: step.class,
            kind: command.cmd.kind(),
            scheduled_ns: self.ctx.since_origin(scheduled),
            sent_ns: self.ctx.since_origin(sent_at),
            finished_ns: self.ctx.since_origin(finished_at),
            rows: exec::rows_of(done),
            error,
            mismatch: exec::judge(&command.outcome, done),
        };
        if let Some(metrics) = &self.ctx.metrics {
            metrics.record(&executed);
        }
        if error.is_some() {
            self.ctx.count_error();
        }
        self.pending.push(executed, finished_at);
        !self.pending.due(finished_at) || self.pending.send(&self.ctx.results).await
    }

    /// Hands what ran so far to the results thread before a wait: directly for a
    /// captured connection's lane, through the stash for a pooled unit's.
    async fn flush(&mut self) -> bool {
        if self.ctx.pool.is_none() {
            return self.pending.send(&self.ctx.results).await;
        }
        match self.ctx.stash.leave(&mut self.pending) {
            Some(batch) => self.ctx.results.send(batch).await.is_ok(),
            None => true,
        }
    }

    /// Gives the connection up: back to the pool if its session is clean, else closed.
    async fn release(&mut self) {
        match std::mem::replace(&mut self.held, Held::None) {
            Held::Own(Some(conn)) => conn.close().await,
            Held::Leased(lease) => {
                if let Some(pool) = &self.ctx.pool {
                    pool.release(lease, !self.dirty).await;
                }
            }
            Held::Own(None) | Held::None => {}
        }
        self.dirty = false;
    }

    async fn finish(&mut self) {
        self.flush().await;
        self.release().await;
    }
}
