//! What the capture reader tracks of each captured connection's session: transaction
//! state (from the captured server status, or the statements for v1 captures), where
//! units of work begin, state that follows a unit (database, character set, prepared
//! statements) and state that pins the connection.

use std::collections::HashMap;
use std::sync::Arc;

use captures::{Cmd, Command};

use super::step::{Held, UnitStart};
use crate::classify::{Class, Effect, PinReason};

/// A statement prepared on a captured connection.
#[derive(Debug, Clone)]
pub struct StmtInfo {
    pub sql: Arc<[u8]>,
    pub class: Class,
}

#[derive(Debug)]
pub struct ConnState {
    /// The lanes its steps go to now (one per `--scale` copy): the connection's lanes
    /// (captured) or its current unit's (pooled).
    pub lanes: Vec<u64>,
    /// A unit begins at the next delivered command.
    pub unit: Option<Box<UnitStart>>,
    /// Pooled: the current unit's steps, while the reader holds them.
    pub held: Option<Held>,
    /// The session effect of the command being read (set by classification).
    pub effect: Effect,
    pub in_tx: bool,
    /// After the previous command the connection was idle and outside a transaction.
    boundary: bool,
    pub pinned: bool,
    /// Default database (captured name).
    pub db: Option<String>,
    pub names: Option<Arc<[u8]>>,
    pub stmts: HashMap<u32, StmtInfo>,
    /// Position of the next command within the connection.
    pub seq: u64,
}

/// What reading one command told about its connection.
#[derive(Debug, Default)]
pub struct Observed {
    /// It ended a transaction, or wrote outside one: a commit in commit order.
    pub commits: bool,
    /// From it on, the session holds state that cannot move.
    pub pins: bool,
    /// It pinned the connection (for the first time since a reset), and why.
    pub pinned_now: Option<PinReason>,
}

impl ConnState {
    pub fn new(db: Option<String>) -> Self {
        ConnState {
            lanes: Vec::new(),
            unit: None,
            held: None,
            effect: Effect::None,
            in_tx: false,
            boundary: true,
            pinned: false,
            db,
            names: None,
            stmts: HashMap::new(),
            seq: 0,
        }
    }

    /// Whether the command being read begins a unit of work: the connection was idle
    /// outside a transaction, and the command does not read its predecessor's result.
    pub fn begins_unit(&mut self) -> bool {
        let begins = self.boundary && self.effect != Effect::ReadsPrevious;
        if begins {
            self.boundary = false;
        }
        begins
    }

    /// Applies a command's effects on the session (after its unit was settled).
    pub fn apply(&mut self, command: &Command, class: &Class) -> Observed {
        let effect = std::mem::replace(&mut self.effect, Effect::None);
        let ok = !command.outcome.is_err();
        let was_in_tx = self.in_tx;
        self.in_tx = match command.in_transaction() {
            Some(in_tx) => in_tx,
            None => match effect {
                Effect::Begin if ok => true,
                Effect::End if ok => false,
                _ => self.in_tx,
            },
        };
        let mut seen = Observed {
            commits: (was_in_tx && !self.in_tx) || (!self.in_tx && class.is_write && ok),
            ..Observed::default()
        };
        let pin = match (&effect, &command.cmd) {
            (Effect::Pin(reason), _) if ok => Some(*reason),
            (_, Cmd::ChangeUser { .. }) => Some(PinReason::ChangeUser),
            _ => None,
        };
        if let Some(reason) = pin {
            seen.pins = true;
            if !self.pinned {
                seen.pinned_now = Some(reason);
            }
            self.pinned = true;
        }
        let keep_with_next = effect == Effect::KeepWithNext;
        if ok {
            self.follow(command, effect, class);
        }
        self.boundary =
            command.cmd.expects_response() && !self.in_tx && !self.pinned && !keep_with_next;
        seen
    }

    /// Session state that units carry with them: database, character set, statements.
    fn follow(&mut self, command: &Command, effect: Effect, class: &Class) {
        match (&command.cmd, effect) {
            (Cmd::Query { .. }, Effect::Use(db)) => self.db = Some(db),
            (Cmd::Query { sql }, Effect::Names) => self.names = Some(Arc::from(sql.as_slice())),
            (Cmd::InitDb { db }, _) => self.db = Some(db.clone()),
            (Cmd::Prepare { sql, stmt_id, .. }, _) if *stmt_id != 0 => {
                let info = StmtInfo {
                    sql: Arc::from(sql.as_slice()),
                    // Announced with the PREPARE: its executes must not announce it again.
                    class: Class {
                        first_seen: None,
                        ..class.clone()
                    },
                };
                self.stmts.insert(*stmt_id, info);
            }
            (Cmd::StmtClose { stmt_id }, _) => {
                self.stmts.remove(stmt_id);
            }
            (Cmd::ResetConnection, _) => {
                // The server forgets the session: nothing pins it any more.
                self.pinned = false;
                self.in_tx = false;
                self.names = None;
                self.stmts.clear();
            }
            (Cmd::ChangeUser { db, .. }, _) => {
                self.db = db.clone();
                self.names = None;
                self.stmts.clear();
            }
            _ => {}
        }
    }
}
