//! The capture reader: streams the capture once, in order, works out each command's
//! class, session effect and unit of work (it is the only one that sees every
//! connection's records in capture order), and hands steps to lanes.
//!
//! It never waits on one lane: a lane whose queue is full gets its steps parked in its
//! [`Overflow`] (memory up to a shared budget, then the spill file), so the connection
//! holding a lock always receives the COMMIT that releases it. What bounds the reader
//! is time: it reads a horizon ahead of the replay clock (at `--speed max`, ahead of the
//! furthest command started), and, in pooled replay, how many units wait for admission.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use captures::{CaptureReader, Cmd, Command, Record};
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::commits::CommitLog;
use super::ctx::Ctx;
use super::lane::{LaneFeed, LaneQueue, LaneShared, run_lane, run_worker};
use super::overflow::{Overflow, Spill};
use super::park::{LANE_END, ROOM, UNIT_END};
use super::results::Msg;
use super::session::ConnState;
use super::step::{Held, Step, UnitStart};
use super::{Connections, Dispatched};
use crate::classify::{Class, Classifier};
use crate::clock::nanos;
use crate::target::Speed;

/// How far ahead of the replay clock the reader reads (wall time at a speed factor,
/// capture time at `--speed max`). Longer than any lock wait worth replaying faithfully
/// (a lock holder's COMMIT must be read while the waiter waits) and short enough that
/// little is read that a stopped run throws away.
const HORIZON: Duration = Duration::from_secs(1);

/// Once the reader has to wait for the horizon, it waits until it may read this much
/// more: a reader woken for every record that comes within reach costs a context switch
/// each (on the CPU the replay and often the target share), where one wake-up per slack
/// reads thousands of records in one go.
const HORIZON_SLACK: Duration = Duration::from_millis(100);

/// A unit of work still open is handed over with a queue once it spans this much
/// capture time or this many steps (or when the reader waits): until then the reader
/// holds it, as most units end a few records after they begin.
const HOLD_SPAN: Duration = Duration::from_millis(100);
const HOLD_STEPS: usize = 64;

/// Steps kept in memory across all lanes' overflows; beyond it they go to the spill file.
/// ~200 bytes each: ~13 MiB.
const OVERFLOW_MEMORY: usize = 64 * 1024;

/// Steps the spill file may hold before the reader waits for lanes to catch up. Only a
/// replay lagging by minutes gets here; the file is then a few GiB at most.
const MAX_SPILLED: usize = 8 * 1024 * 1024;

/// Units of work read but not yet admitted (pooled replay), when the pool is saturated.
/// Each costs its steps (a whole unit, ~400 bytes with its records) or a lane entry
/// (~200 bytes, its steps waiting in the overflow).
const MAX_WAITING_UNITS: usize = 100_000;

/// Records read between two looks at lanes waiting for room or admission, and between
/// two hand-overs of the units of work read meanwhile (pooled replay). A unit is held at
/// most this long before it is handed over, whole if its end was read.
const SERVICE_EVERY: u32 = 64;

/// The longest the reader parks without being woken (wake-ups are not lost; this only
/// bounds a time-based wait such as the horizon's).
const MAX_PARK: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct FeedOptions {
    pub connections: Connections,
    pub scale: u32,
    pub read_ahead: usize,
    pub duration: Option<Duration>,
    pub only_class: HashSet<u64>,
    pub skip_writes: bool,
    pub sync_commits: bool,
}

struct LaneEntry {
    /// The lane's queue, made when the lane is admitted (its task spawned): a unit
    /// waiting for admission costs no queue.
    tx: Option<mpsc::Sender<Step>>,
    replay_conn: u64,
    /// Capture time of its first record (a pooled unit is taken by a worker when due).
    start_t: u64,
    overflow: Overflow,
    /// No more steps will come for it: its queue closes once the overflow is delivered.
    ended: bool,
    shared: Arc<LaneShared>,
}

/// Pooled replay: a unit of work read but not admitted yet.
enum Waiting {
    /// A lane whose steps wait in its overflow.
    Lane(u64),
    /// A whole unit, all its steps in hand.
    Whole(LaneFeed),
}

pub struct Feed {
    ctx: Arc<Ctx>,
    handle: Handle,
    opts: FeedOptions,
    classifier: Classifier,
    conns: HashMap<u64, ConnState>,
    lanes: HashMap<u64, LaneEntry>,
    next_lane: u64,
    /// Pooled: units waiting for admission, oldest first.
    waiting: VecDeque<Waiting>,
    /// Pooled: units whose end was read, to hand over whole (captured connection, steps).
    complete: Vec<(u64, Held)>,
    /// Pooled: connections that may hold steps of a unit whose end is not read yet.
    holding: Vec<u64>,
    /// Lanes admitted before the replay's clock starts, started with it (`None` once
    /// it has): the first horizon is read before anything runs.
    starting: Option<Vec<LaneFeed>>,
    /// Lanes that may have overflow (checked and pruned by `service`).
    overflowing: Vec<u64>,
    spill: Spill,
    /// Steps in all lanes' overflows, in memory and on disk.
    overflow_memory: usize,
    spilled: usize,
    commits: CommitLog,
    alive: mpsc::Sender<()>,
    out: Dispatched,
    t0: Option<u64>,
    last_t: u64,
}

impl Feed {
    pub fn new(ctx: Arc<Ctx>, handle: Handle, opts: FeedOptions, alive: mpsc::Sender<()>) -> Self {
        Feed {
            ctx,
            handle,
            opts,
            classifier: Classifier::new(),
            conns: HashMap::new(),
            lanes: HashMap::new(),
            next_lane: 0,
            waiting: VecDeque::new(),
            complete: Vec::new(),
            holding: Vec::new(),
            starting: Some(Vec::new()),
            overflowing: Vec::new(),
            spill: Spill::new(),
            overflow_memory: 0,
            spilled: 0,
            commits: CommitLog::default(),
            alive,
            out: Dispatched::default(),
            t0: None,
            last_t: 0,
        }
    }

    /// Reads the whole capture (or its `--duration` prefix) into lanes; returns once
    /// every step is handed over.
    pub fn run(mut self, reader: CaptureReader<std::fs::File>) -> Dispatched {
        let limit = self.opts.duration.map(nanos);
        let mut read = 0u32;
        for item in reader {
            if self.ctx.stopped() {
                break;
            }
            let record = match item {
                Ok(record) => record,
                Err(e) => {
                    // A truncated tail is how a killed recorder leaves a file; anything
                    // else is damage, which the run must report as a failure.
                    self.out.damaged = !e.is_truncation();
                    self.out.problem = Some(e.to_string());
                    break;
                }
            };
            let t = record.t();
            let t0 = *self.t0.get_or_insert_with(|| {
                self.ctx.t0.store(t, Ordering::Relaxed);
                t
            });
            if limit.is_some_and(|l| t.saturating_sub(t0) > l) {
                // `--duration`: a prefix; every lane ends with it, not at its captured close.
                break;
            }
            self.wait_for_horizon(t);
            self.route(record);
            read += 1;
            if read.is_multiple_of(SERVICE_EVERY) {
                self.hand_over(false);
                self.service();
            }
        }
        self.out.span_ns = self.t0.map_or(0, |t0| self.last_t.saturating_sub(t0));
        self.drain();
        self.out.spilled_bytes = self.spill.bytes();
        self.out
    }

    /// Waits until a record captured at `t` is within the horizon, serving lanes meanwhile.
    fn wait_for_horizon(&mut self, t: u64) {
        loop {
            if self.ctx.stopped() {
                return;
            }
            let (ready, timeout, progress) = self.horizon(t);
            // Units waiting for admission never hold reading back (below the hard cap):
            // a running unit's next step may lie behind any number of new units.
            let room = self.waiting.len() < MAX_WAITING_UNITS && self.spilled < MAX_SPILLED;
            if ready && room {
                return;
            }
            // Lanes must not wait for what the reader holds while it waits.
            self.hand_over(true);
            self.start();
            self.service();
            let wants = self.wants();
            self.ctx
                .park
                .wait(wants, progress, timeout, || self.ctx.stopped());
        }
    }

    /// What lanes may do that the reader must be woken for: make room where it holds
    /// steps, and end so that the unit at the head of the admission queue can go.
    fn wants(&self) -> u8 {
        let room = if self.overflowing.is_empty() { 0 } else { ROOM };
        let admission = match self.waiting.front() {
            Some(Waiting::Lane(_)) => LANE_END,
            Some(Waiting::Whole(_)) => UNIT_END,
            None => 0,
        };
        room | admission
    }

    /// Whether `t` is within the horizon; if not, how long to park and what progress to
    /// be woken at (both [`HORIZON_SLACK`] past the point where `t` comes within reach).
    fn horizon(&self, t: u64) -> (bool, Duration, Option<u64>) {
        match self.ctx.speed {
            Speed::Factor(_) => {
                let due = self.ctx.due(t).unwrap_or_else(Instant::now);
                let ahead = due.saturating_duration_since(Instant::now());
                let reach = HORIZON - HORIZON_SLACK;
                (
                    ahead <= HORIZON,
                    ahead.saturating_sub(reach).min(MAX_PARK),
                    None,
                )
            }
            Speed::Max => {
                let t0 = self.t0.unwrap_or(0);
                let progress = self.ctx.progress.load(Ordering::Relaxed).max(t0);
                let want = t.saturating_sub(nanos(HORIZON));
                let wake_at = t.saturating_sub(nanos(HORIZON - HORIZON_SLACK));
                (progress >= want, MAX_PARK, Some(wake_at.max(1)))
            }
        }
    }

    fn route(&mut self, record: Record) {
        match record {
            Record::ConnOpen(open) => {
                let state = ConnState::new(open.db.clone());
                self.conns.insert(open.conn, state);
                self.out.connections += u64::from(self.opts.scale.max(1));
                if self.opts.connections == Connections::Captured {
                    let lanes = self.open_lanes(open.conn, open.t);
                    self.deliver_all(&lanes, &Arc::new(Record::ConnOpen(open)));
                }
            }
            Record::Command(command) => self.command(command),
            Record::End(end) if end.dropped > 0 => {
                self.out.problem.get_or_insert_with(|| {
                    format!(
                        "the recorder dropped {} records: the capture is incomplete",
                        end.dropped
                    )
                });
            }
            Record::End(_) => {}
            Record::ConnClose(close) => {
                let Some(mut state) = self.conns.remove(&close.conn) else {
                    return;
                };
                if let Some(held) = state.held.take() {
                    self.complete.push((close.conn, held));
                }
                if self.opts.connections == Connections::Captured {
                    let record = Arc::new(Record::ConnClose(close));
                    self.deliver_all(&state.lanes, &record);
                }
                self.end_lanes(&state.lanes);
            }
        }
    }

    fn command(&mut self, command: Command) {
        self.last_t = self.last_t.max(command.t_start);
        let conn = command.conn;
        if let std::collections::hash_map::Entry::Vacant(e) = self.conns.entry(conn) {
            // Opened before the capture started: replay what the capture has of it.
            e.insert(ConnState::new(None));
            self.out.connections += u64::from(self.opts.scale.max(1));
        }
        let (class, stmt) = self.classify(&command);
        let filtered = (!self.opts.only_class.is_empty()
            && !self.opts.only_class.contains(&class.id))
            || (self.opts.skip_writes && class.is_write);
        if self
            .conns
            .get_mut(&conn)
            .is_some_and(ConnState::begins_unit)
        {
            self.start_unit(conn, command.t_start);
        }
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        let observed = state.apply(&command, &class);
        if let Some(reason) = observed.pinned_now {
            *self.out.pinned.entry(reason).or_default() += 1;
        }
        let commit = (observed.commits && self.opts.sync_commits && !filtered)
            .then(|| self.commits.issue(command.t_end));
        if filtered {
            if let Some(state) = self.conns.get_mut(&conn) {
                state.seq += 1;
            }
            return;
        }
        self.out.captured_commands += u64::from(command.cmd.expects_response());
        self.out.captured_errors += u64::from(command.outcome.is_err());
        self.announce(&class);
        self.deliver_command(conn, command, class.id, stmt, commit, observed.pins);
    }

    /// Class of a command and, for statement commands, the statement's SQL.
    fn classify(&mut self, command: &Command) -> (Class, Option<Arc<[u8]>>) {
        match &command.cmd {
            Cmd::Query { sql } | Cmd::Prepare { sql, .. } | Cmd::LoadLocal { sql, .. } => {
                let (class, effect) = self.classifier.statement(sql);
                if let Some(state) = self.conns.get_mut(&command.conn) {
                    state.effect = effect;
                }
                (class, None)
            }
            Cmd::Execute { stmt_id, .. }
            | Cmd::SendLongData { stmt_id, .. }
            | Cmd::StmtClose { stmt_id }
            | Cmd::StmtReset { stmt_id }
            | Cmd::StmtFetch { stmt_id, .. } => {
                let state = self.conns.get_mut(&command.conn);
                let info = state.and_then(|s| {
                    s.effect = crate::classify::Effect::None;
                    s.stmts.get(stmt_id).cloned()
                });
                match info {
                    Some(info) => (info.class, Some(info.sql)),
                    None => (
                        Class {
                            id: 0,
                            is_write: false,
                            first_seen: None,
                        },
                        None,
                    ),
                }
            }
            other => {
                if let Some(state) = self.conns.get_mut(&command.conn) {
                    state.effect = crate::classify::Effect::None;
                }
                (self.classifier.admin(other.kind()), None)
            }
        }
    }

    /// The first time a class is met, the results file learns its fingerprint.
    fn announce(&self, class: &Class) {
        if let Some((fingerprint, example)) = &class.first_seen {
            let _ = self.ctx.results.blocking_send(Msg::Class {
                class: class.id,
                fingerprint: fingerprint.clone(),
                example: example.clone(),
            });
        }
    }

    /// A new unit of work begins at the connection's next delivered command.
    fn start_unit(&mut self, conn: u64, t_start: u64) {
        let after_commit = if self.opts.sync_commits {
            self.commits.before(t_start)
        } else {
            None
        };
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        state.unit = Some(Box::new(UnitStart {
            db: state.db.clone(),
            names: state.names.clone(),
            after_commit,
        }));
        if self.opts.connections == Connections::Pooled {
            let lanes = std::mem::take(&mut state.lanes);
            if let Some(held) = state.held.take() {
                self.complete.push((conn, held));
            }
            self.end_lanes(&lanes);
        }
    }

    fn deliver_command(
        &mut self,
        conn: u64,
        command: Command,
        class: u64,
        stmt: Option<Arc<[u8]>>,
        commit: Option<u64>,
        pins: bool,
    ) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        // A lane always begins with a unit, even where the capture gave no boundary (a
        // connection whose first command reads a previous result).
        let unit = state.unit.take().or_else(|| {
            (state.lanes.is_empty() && state.held.is_none()).then(|| {
                Box::new(UnitStart {
                    db: state.db.clone(),
                    names: state.names.clone(),
                    after_commit: None,
                })
            })
        });
        let seq = state.seq;
        state.seq += 1;
        let t_start = command.t_start;
        let step = Step {
            record: Arc::new(Record::Command(command)),
            class,
            seq,
            stmt,
            unit,
            commit,
            pins,
        };
        if self.opts.connections == Connections::Pooled && state.lanes.is_empty() {
            self.hold(conn, step, t_start);
            return;
        }
        let lanes = if state.lanes.is_empty() {
            self.open_lanes(conn, t_start)
        } else {
            state.lanes.clone()
        };
        for id in lanes {
            self.deliver(id, step.clone());
        }
    }

    /// Pooled: a step of a unit not handed over yet, held until its end is read or the
    /// next hand-over.
    fn hold(&mut self, conn: u64, step: Step, t_start: u64) {
        let Some(state) = self.conns.get_mut(&conn) else {
            return;
        };
        match &mut state.held {
            Some(held) => held.steps.push(step),
            None => {
                state.held = Some(Held {
                    start_t: t_start,
                    steps: vec![step],
                });
                self.holding.push(conn);
            }
        }
    }

    /// Pooled: hands over the units read since the last time, in the order they began:
    /// a unit whose end was read as a whole (its steps in hand, no queue), one still
    /// open as a lane whose later steps follow through its queue. An open unit is kept
    /// a while longer unless `all` (the reader is about to wait) or it is a long one
    /// ([`HOLD_SPAN`], [`HOLD_STEPS`]): most end a few records later, and go whole.
    fn hand_over(&mut self, all: bool) {
        if self.complete.is_empty() && self.holding.is_empty() {
            return;
        }
        let mut units: Vec<(u64, Held, bool)> = self
            .complete
            .drain(..)
            .map(|(conn, held)| (conn, held, true))
            .collect();
        let last_t = self.last_t;
        let mut kept = Vec::new();
        for conn in std::mem::take(&mut self.holding) {
            let Some(state) = self.conns.get_mut(&conn) else {
                continue;
            };
            let long = |held: &Held| {
                held.steps.len() >= HOLD_STEPS
                    || last_t.saturating_sub(held.start_t) >= nanos(HOLD_SPAN)
            };
            match state.held.take() {
                Some(held) if all || long(&held) => units.push((conn, held, false)),
                Some(held) => {
                    state.held = Some(held);
                    kept.push(conn);
                }
                None => {}
            }
        }
        self.holding = kept;
        units.sort_by_key(|(_, held, _)| held.start_t);
        for (conn, held, whole) in units {
            if whole {
                self.hand_over_whole(conn, held);
            } else {
                let lanes = self.open_lanes(conn, held.start_t);
                for step in held.steps {
                    for &id in &lanes {
                        self.deliver(id, step.clone());
                    }
                }
            }
        }
    }

    /// A whole unit, to the pool or to wait for admission (one per `--scale` copy).
    fn hand_over_whole(&mut self, conn: u64, held: Held) {
        let Held { start_t, mut steps } = held;
        let mut copies = self.replay_conns(conn).peekable();
        while let Some(replay_conn) = copies.next() {
            // The last copy (the only one without `--scale`) takes the steps themselves.
            let steps = if copies.peek().is_some() {
                steps.clone()
            } else {
                std::mem::take(&mut steps)
            };
            let feed = LaneFeed {
                steps,
                queue: None,
                replay_conn,
                start_t,
            };
            if self.waiting.is_empty() && self.ctx.admission.has_room(false) {
                self.admit_feed(feed);
            } else {
                self.waiting.push_back(Waiting::Whole(feed));
            }
        }
    }

    /// A connection's open or close, to each of its lanes (no class, no position).
    fn deliver_all(&mut self, lanes: &[u64], record: &Arc<Record>) {
        for &id in lanes {
            let step = Step {
                record: record.clone(),
                class: 0,
                seq: 0,
                stmt: None,
                unit: None,
                commit: None,
                pins: false,
            };
            self.deliver(id, step);
        }
    }

    /// New lanes for a captured connection (one per `--scale` copy).
    fn open_lanes(&mut self, conn: u64, start_t: u64) -> Vec<u64> {
        let ids: Vec<u64> = self
            .replay_conns(conn)
            .map(|replay_conn| self.new_lane(replay_conn, start_t))
            .collect();
        if let Some(state) = self.conns.get_mut(&conn) {
            state.lanes = ids.clone();
        }
        ids
    }

    /// The ids a captured connection's commands get in results, one per `--scale` copy.
    fn replay_conns(&self, conn: u64) -> impl Iterator<Item = u64> + use<> {
        let scale = u64::from(self.opts.scale.max(1));
        (0..scale).map(move |copy| conn * scale + copy)
    }

    fn new_lane(&mut self, replay_conn: u64, start_t: u64) -> u64 {
        let id = self.next_lane;
        self.next_lane += 1;
        self.lanes.insert(
            id,
            LaneEntry {
                tx: None,
                replay_conn,
                start_t,
                overflow: Overflow::default(),
                ended: false,
                shared: Arc::new(LaneShared::default()),
            },
        );
        let admit_now = self.opts.connections == Connections::Captured
            || (self.waiting.is_empty() && self.ctx.admission.has_room(true));
        if admit_now {
            self.admit(id);
        } else {
            self.waiting.push_back(Waiting::Lane(id));
        }
        id
    }

    /// Spawns a lane's task.
    fn admit(&mut self, id: u64) {
        let Some(lane) = self.lanes.get_mut(&id) else {
            return;
        };
        if lane.tx.is_some() {
            return;
        }
        let (tx, rx) = mpsc::channel(self.opts.read_ahead.max(1));
        lane.tx = Some(tx);
        let feed = LaneFeed {
            steps: Vec::new(),
            queue: Some(LaneQueue {
                rx,
                shared: lane.shared.clone(),
            }),
            replay_conn: lane.replay_conn,
            start_t: lane.start_t,
        };
        self.admit_feed(feed);
        self.refill(id);
        if self.lanes.get(&id).is_some_and(|l| !l.overflow.is_empty()) {
            self.overflowing.push(id);
        }
    }

    /// Starts the replay's clock and the lanes admitted so far, once (the reader has
    /// read its first horizon, or all there is).
    fn start(&mut self) {
        if let Some(admitted) = self.starting.take() {
            self.ctx.start_clock();
            for feed in admitted {
                self.launch(feed);
            }
        }
    }

    /// Admits a lane: it starts now, or with the clock.
    fn admit_feed(&mut self, feed: LaneFeed) {
        self.ctx.admission.admitted(feed.queue.is_some());
        match &mut self.starting {
            Some(admitted) => admitted.push(feed),
            None => self.launch(feed),
        }
    }

    /// Starts a lane: on the pool (pooled) or as a task of its own (captured).
    fn launch(&mut self, feed: LaneFeed) {
        match &self.ctx.pool {
            Some(pool) => {
                if pool.push(feed) {
                    let worker = run_worker(self.ctx.clone(), self.alive.clone(), None);
                    self.handle.spawn(worker);
                }
            }
            None => {
                let task = run_lane(self.ctx.clone(), feed, self.alive.clone());
                self.handle.spawn(task);
            }
        }
    }

    /// Hands a step to its lane, or parks it in the lane's overflow.
    fn deliver(&mut self, id: u64, step: Step) {
        let Some(lane) = self.lanes.get_mut(&id) else {
            return;
        };
        let step = match &lane.tx {
            Some(tx) if lane.overflow.is_empty() => match tx.try_send(step) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(step)) => step,
                // The lane ended early (the run is stopping): nothing to deliver.
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            },
            _ => step,
        };
        // Only admitted lanes are served; a waiting one is listed when admitted.
        if lane.overflow.is_empty() && lane.tx.is_some() {
            self.overflowing.push(id);
        }
        lane.overflow.push(step);
        lane.shared.has_overflow.store(true, Ordering::Relaxed);
        self.overflow_memory += 1;
        if self.overflow_memory > OVERFLOW_MEMORY {
            match lane.overflow.spill_back(&mut self.spill) {
                Ok(n) => {
                    self.overflow_memory -= n;
                    self.spilled += n;
                }
                Err(e) => {
                    // Keep going in memory: a full disk must not break the replay.
                    tracing::warn!("spilling replay steps to disk failed: {e}");
                }
            }
        }
    }

    /// Moves what fits from a lane's overflow into its queue; closes ended lanes.
    fn refill(&mut self, id: u64) {
        let Some(lane) = self.lanes.get_mut(&id) else {
            return;
        };
        if let Some(tx) = &lane.tx {
            while tx.capacity() > 0 {
                let before = lane.overflow.in_memory();
                let on_disk = lane.overflow.on_disk();
                let step = match lane.overflow.pop(&self.spill) {
                    Ok(Some(step)) => step,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!("reading replay steps back from the spill file: {e}");
                        self.ctx.halt();
                        break;
                    }
                };
                // A block read back moves from disk into memory; the popped step leaves.
                self.spilled -= on_disk - lane.overflow.on_disk();
                self.overflow_memory =
                    (self.overflow_memory + lane.overflow.in_memory()).saturating_sub(before);
                match tx.try_send(step) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(step)) => {
                        lane.overflow.unpop(step);
                        self.overflow_memory += 1;
                        break;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {
                        self.overflow_memory = self
                            .overflow_memory
                            .saturating_sub(lane.overflow.in_memory());
                        self.spilled -= lane.overflow.on_disk();
                        lane.overflow = Overflow::default();
                        break;
                    }
                }
            }
        }
        let empty = lane.overflow.is_empty();
        lane.shared.has_overflow.store(!empty, Ordering::Relaxed);
        if empty && lane.ended && lane.tx.is_some() {
            self.lanes.remove(&id);
        }
    }

    /// No more steps for these lanes.
    fn end_lanes(&mut self, ids: &[u64]) {
        for &id in ids {
            if let Some(lane) = self.lanes.get_mut(&id) {
                lane.ended = true;
            }
            self.refill(id);
        }
    }

    /// Admits waiting units while there is room, and refills lanes with overflow.
    fn service(&mut self) {
        // In order: a unit that may not be admitted yet holds back those behind it.
        while let Some(head) = self.waiting.front() {
            let queued = matches!(head, Waiting::Lane(_));
            if !self.ctx.admission.has_room(queued) {
                break;
            }
            match self.waiting.pop_front() {
                Some(Waiting::Lane(id)) => self.admit(id),
                Some(Waiting::Whole(feed)) => self.admit_feed(feed),
                None => break,
            }
        }
        let overflowing = std::mem::take(&mut self.overflowing);
        for id in overflowing {
            self.refill(id);
            if self.lanes.get(&id).is_some_and(|l| !l.overflow.is_empty()) {
                self.overflowing.push(id);
            }
        }
    }

    /// End of the capture: every lane ends once what is parked for it is delivered.
    fn drain(&mut self) {
        let mut open = Vec::new();
        for (conn, mut state) in std::mem::take(&mut self.conns) {
            if let Some(held) = state.held.take() {
                self.complete.push((conn, held));
            }
            open.extend(state.lanes);
        }
        self.hand_over(true);
        self.start();
        self.end_lanes(&open);
        while !self.waiting.is_empty() || !self.overflowing.is_empty() {
            self.service();
            if self.ctx.stopped() {
                break;
            }
            let pending = !self.waiting.is_empty() || !self.overflowing.is_empty();
            if pending {
                self.ctx
                    .park
                    .wait(self.wants(), None, MAX_PARK, || self.ctx.stopped());
            }
        }
        // Whatever is left (the run stopped) is dropped; closing the queues ends lanes.
        self.lanes.clear();
        self.waiting.clear();
        if let Some(pool) = &self.ctx.pool {
            pool.close();
        }
    }
}
