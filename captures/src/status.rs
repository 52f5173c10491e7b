//! The server status flags (`SERVER_STATUS_*`) a capture keeps per command
//! ([`Command::status`](crate::Command::status)): the bits a replay or a report needs to
//! tell what session state a command left behind. Values are the protocol's, identical in
//! MySQL and MariaDB.

/// A transaction is open (explicit `BEGIN`, or a statement with autocommit off).
pub const IN_TRANS: u16 = 0x0001;
/// Autocommit is on for the session.
pub const AUTOCOMMIT: u16 = 0x0002;
/// Another result follows in the same response; the final OK/EOF never has it.
pub const MORE_RESULTS_EXISTS: u16 = 0x0008;
/// A read-only transaction is open (`START TRANSACTION READ ONLY`); servers may set it
/// without [`IN_TRANS`].
pub const IN_TRANS_READONLY: u16 = 0x2000;
/// Session state (variables, schema, transaction characteristics...) changed; details
/// travel in the OK packet's session-state info, which captures do not keep.
pub const SESSION_STATE_CHANGED: u16 = 0x4000;
