//! A lane replays a sequence of steps in order on one target connection at a time: a
//! whole captured connection (`--connections captured`), or one unit of work (pooled,
//! where a captured connection that pinned its session keeps its lane to the end).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use captures::{Answer, Cmd, Command, Divergent, Executed, Record};
use tokio::sync::{mpsc, watch};

use super::ctx::Ctx;
use super::examples;
use super::pool::TargetConn;
use super::results::{Msg, Pending};
use super::step::{Step, UnitStart};
use crate::clock::nanos;
use crate::exec::{self, CANNOT_CONNECT, CONNECTION_LOST, Done, Request};

/// What the reader and a lane share about the lane.
#[derive(Debug, Default)]
pub struct LaneShared {
    /// The reader holds records this lane's queue had no room for: tell it when there
    /// is room again.
    pub has_overflow: AtomicBool,
}

/// A sequence of steps for one lane, and the id its commands get in results (the
/// captured connection's replay id).
#[derive(Debug)]
pub struct LaneFeed {
    /// Steps in hand when the lane was handed over: in pooled replay most often a whole
    /// unit of work (one command, for an autocommit statement), which then needs no queue.
    pub steps: Vec<Step>,
    /// Steps still to come, read after the lane was handed over.
    pub queue: Option<LaneQueue>,
    pub replay_conn: u64,
    /// Capture time of the first record.
    pub start_t: u64,
}

/// A lane's queue from the reader, and what the two share about it.
#[derive(Debug)]
pub struct LaneQueue {
    pub rx: mpsc::Receiver<Step>,
    pub shared: Arc<LaneShared>,
}

struct Lane {
    ctx: Arc<Ctx>,
    replay_conn: u64,
    /// The target connection (reopened with backoff if lost).
    conn: Option<TargetConn>,
    /// The session holds state that must not serve another unit.
    dirty: bool,
    pending: Pending,
    stop: watch::Receiver<bool>,
}

/// Captured replay: runs one captured connection's lane until its queue closes or the
/// run stops. `_alive` is dropped at the end: the run waits for every lane by waiting
/// for the last one.
pub async fn run_lane(ctx: Arc<Ctx>, feed: LaneFeed, _alive: mpsc::Sender<()>) {
    let mut lane = Lane::new(ctx, None);
    lane.run(feed).await;
    lane.finish().await;
    lane.ended(true);
}

/// Pooled replay: one target connection (opened beforehand when `conn` is given),
/// running the units of work the pool hands it, one after another, until the pool
/// closes or the run stops. One lane serves them all: its results batch across units,
/// and nothing is set up per unit (most units are a single command).
pub async fn run_worker(ctx: Arc<Ctx>, alive: mpsc::Sender<()>, conn: Option<TargetConn>) {
    let Some(pool) = ctx.pool.as_ref() else {
        return;
    };
    let mut lane = Lane::new(ctx.clone(), conn);
    while let Some(feed) = pool.next_unit(&ctx, &mut lane.pending, &alive).await {
        pool.busy(true);
        let queued = feed.queue.is_some();
        lane.run(feed).await;
        pool.busy(false);
        lane.ended(queued);
        // A session left with state a unit set (pinned) must not serve the next unit.
        if lane.dirty {
            lane.release().await;
        }
        if ctx.stopped() {
            break;
        }
    }
    lane.finish().await;
}

/// How long statements in flight may still finish once a run stops (Ctrl-C, SIGTERM,
/// `--max-errors`) before they are killed on the server.
const CANCEL_GRACE: Duration = Duration::from_secs(1);

/// How long killing a statement may take; a dead target must not hold the exit up.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

/// ER_QUERY_INTERRUPTED: what a statement killed because the run stopped records.
const QUERY_INTERRUPTED: u16 = 1317;

/// Resolves [`CANCEL_GRACE`] after the run stops; never if it does not.
async fn cancelled(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stopped| *stopped).await.is_err() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(CANCEL_GRACE).await;
}

/// `KILL QUERY` on a connection of its own, as the `mariadb` client does on Ctrl-C.
async fn kill_query(ctx: &Ctx, server_id: u32) {
    use mysql_async::prelude::Queryable;
    let kill = async {
        let mut conn = mysql_async::Conn::new(ctx.connector.target().opts_for(None)).await?;
        conn.query_drop(format!("KILL QUERY {server_id}")).await?;
        conn.disconnect().await
    };
    match tokio::time::timeout(KILL_TIMEOUT, kill).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("could not stop statement {server_id}: {e}"),
        Err(_) => tracing::warn!("could not stop statement {server_id}: timed out"),
    }
}

impl Lane {
    fn new(ctx: Arc<Ctx>, conn: Option<TargetConn>) -> Self {
        let stop = ctx.stop_signal.subscribe();
        Lane {
            ctx,
            replay_conn: 0,
            conn,
            dirty: false,
            pending: Pending::new(),
            stop,
        }
    }

    /// Runs the feed's steps in hand, then those its queue brings until it closes, or
    /// until the run stops.
    async fn run(&mut self, feed: LaneFeed) {
        self.replay_conn = feed.replay_conn;
        for step in feed.steps {
            if self.ctx.stopped() || !self.step(step).await {
                return;
            }
        }
        let Some(LaneQueue { mut rx, shared }) = feed.queue else {
            return;
        };
        loop {
            // Nothing queued: what ran so far goes to the results thread before waiting.
            // (A closed queue has nothing more to wait for: a pooled unit's end is no
            // reason to send a batch of one.)
            if rx.is_empty() && !rx.is_closed() && !self.flush().await {
                break;
            }
            let Some(step) = rx.recv().await else { break };
            if shared.has_overflow.load(Ordering::Relaxed) && rx.len() <= rx.max_capacity() / 2 {
                self.ctx.park.room();
            }
            if self.ctx.stopped() || !self.step(step).await {
                break;
            }
        }
        // The reader may hold more for this lane: closing the queue tells it to drop them.
    }

    /// Counts the lane out, waking the reader if it waits to admit lanes and should be
    /// (see [`super::admission`]).
    fn ended(&self, queued: bool) {
        if self.ctx.admission.ended(queued) {
            self.ctx.park.lane_ended(queued);
        }
    }

    /// False when the lane must end (run stopped, results thread gone).
    async fn step(&mut self, step: Step) -> bool {
        match step.record.as_ref() {
            Record::ConnOpen(open) => {
                let due = self.ctx.due(open.t);
                if !self.ctx.wait_until(due, &mut self.stop).await {
                    return false;
                }
                let db = self.ctx.connector.target().map_db(open.db.as_deref());
                self.conn = self.ctx.connector.open(db).await;
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
            // Captured replay: the captured connection closed, so does its own. Pooled:
            // the pool's connections are not the captured ones; one that served a unit
            // of a connection that quit serves the next unit (a pinned one is closed
            // by its worker).
            if self.ctx.pool.is_none() {
                self.release().await;
            }
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

    /// Commit order, then (pooled) the unit's session on the connection.
    async fn start_unit(&mut self, unit: &UnitStart) -> bool {
        if let (Some(commits), Some(ticket)) = (&self.ctx.commits, unit.after_commit) {
            match commits.wait_for(ticket, &mut self.stop).await {
                None => return false,
                Some(waited) if !waited.is_zero() => {
                    self.ctx.sync_waits.fetch_add(1, Ordering::Relaxed);
                    let ns = nanos(waited);
                    self.ctx.sync_wait_ns.fetch_add(ns, Ordering::Relaxed);
                }
                Some(_) => {}
            }
        }
        self.follow_session(unit).await;
        true
    }

    /// Pooled: the connection takes the unit's default database and character set.
    /// Failures show in the unit's own commands, which run in the wrong session.
    async fn follow_session(&mut self, unit: &UnitStart) {
        if self.ctx.pool.is_none() {
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
        if self.conn.is_none() {
            self.conn = self.ctx.connector.open(db).await;
        }
        self.conn.as_mut()
    }

    async fn execute(&mut self, step: &Step, command: &Command) -> Done {
        // The context, not the target, is cloned: an Arc, where a Target holds maps.
        let ctx = self.ctx.clone();
        let target = ctx.connector.target();
        let mut stop = self.stop.clone();
        let Some(tc) = self.connection(target.map_db(None)).await else {
            return Done::ServerError(CANNOT_CONNECT);
        };
        let req = Request {
            conn: command.conn,
            cmd: &command.cmd,
            stmt_sql: step.stmt.as_ref(),
            db: tc.db.as_deref(),
            digest: ctx.result_digest,
        };
        let server_id = tc.conn.id();
        let outcome = tokio::select! {
            result = tc.session.execute(&mut tc.conn, req, target) => Some(result),
            () = cancelled(&mut stop) => None,
        };
        let Some(outcome) = outcome else {
            // The run stopped and the statement outlived the grace (a lock wait, a long
            // query): the server stops it, the connection is given up.
            self.lose_connection();
            kill_query(&ctx, server_id).await;
            return Done::ServerError(QUERY_INTERRUPTED);
        };
        let Some(tc) = self.conn.as_mut() else {
            return Done::ServerError(CONNECTION_LOST);
        };
        match outcome {
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
        self.conn = None;
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
        let (error, warnings, digest) = match done {
            Done::ServerError(code) => (Some(code), 0, None),
            Done::Ok {
                warnings, digest, ..
            } => (None, warnings, digest),
            Done::Skipped => (None, 0, None),
        };
        let divergence = exec::judge(&command.outcome, done);
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
            warnings,
            digest,
            divergence,
        };
        if !divergence.is_none() && self.ctx.examples.first(step.class, divergence) {
            self.example(step, command, &executed).await;
        }
        if let Some(metrics) = &self.ctx.metrics {
            metrics.record(&executed);
        }
        if error.is_some() {
            self.ctx.count_error();
        }
        self.pending.push(executed, finished_at);
        !self.pending.due(finished_at) || self.pending.send(&self.ctx.results).await
    }

    /// Sends the first diverging execution of its class and kind to the results file.
    async fn example(&self, step: &Step, command: &Command, executed: &Executed) {
        let example = Divergent {
            class: step.class,
            conn: executed.conn,
            seq: executed.seq,
            divergence: executed.divergence,
            statement: examples::statement(&command.cmd, step.stmt.as_deref()),
            captured: Answer::from(&command.outcome),
            replayed: executed.answer(),
        };
        // A results thread that is gone ends the run elsewhere; nothing to do here.
        let _ = self
            .ctx
            .results
            .send(Msg::Diverged(Box::new(example)))
            .await;
    }

    /// Hands what ran so far to the results thread before a wait.
    async fn flush(&mut self) -> bool {
        self.pending.send(&self.ctx.results).await
    }

    /// Gives the connection up (a captured connection closed, or quit).
    async fn release(&mut self) {
        if let Some(conn) = self.conn.take() {
            conn.close().await;
        }
        self.dirty = false;
    }

    async fn finish(&mut self) {
        self.flush().await;
        self.release().await;
    }
}
