//! A captured record on its way to the lane that replays it, with what the capture
//! reader worked out about it while it still saw the whole capture in order.

use std::sync::Arc;

use captures::Record;
use serde::{Deserialize, Serialize};

/// One record for a lane. Cloned once per `--scale` copy: the record itself is shared.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Step {
    pub record: Arc<Record>,
    /// Query class (0 for records that are not commands).
    pub class: u64,
    /// Position of the command within its captured connection.
    pub seq: u64,
    /// For statement commands (execute, close, ...): the statement as prepared on the
    /// captured connection, so whichever target connection runs it can prepare it.
    pub stmt: Option<Arc<[u8]>>,
    /// The first command of a unit of work: where pacing, commit order and (pooled) a
    /// target connection are settled.
    pub unit: Option<Box<UnitStart>>,
    /// This command ended a transaction in the capture (or was a write outside one):
    /// its ticket in commit order (see [`super::commits`]).
    pub commit: Option<u64>,
    /// After this command the session holds state that cannot move to another target
    /// connection: the lane's connection must not go back to the pool.
    pub pins: bool,
}

/// What a unit of work needs from the session it runs on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitStart {
    /// Default database on the captured connection when the unit started (captured name).
    pub db: Option<String>,
    /// The last `SET NAMES ...` the captured connection ran before the unit, if any.
    pub names: Option<Arc<[u8]>>,
    /// With `--sync commits`: the commit ticket that must have completed in the replay
    /// before the unit may start (every commit captured before the unit's start).
    pub after_commit: Option<u64>,
}

/// Pooled replay: the steps of a captured connection's current unit of work that the
/// reader holds until it knows whether the unit ends (the connection's next command
/// begins another unit, or it closes) — a unit handed over whole needs no queue to its
/// lane — or until it hands over what it holds (see `Feed::hand_over`).
#[derive(Debug)]
pub struct Held {
    /// Capture time of the unit's first command.
    pub start_t: u64,
    pub steps: Vec<Step>,
}
