//! What a captured command is, in the one place that decides it: its query class,
//! whether it changes data, and what it does to its connection's session (transactions
//! opened and closed, state that a pooled replay cannot carry to another connection).
//!
//! Everything is read off the fingerprint (lower-cased, comments and literals gone), so
//! `/* x */ COMMIT` and `commit` are one thing; the raw text is consulted only for the
//! literal a decision needs (`USE db`, `SET autocommit = 1`).

use std::collections::HashSet;

use captures::CmdKind;
use captures::fingerprint::{Fingerprinter, class_id};
use serde::{Deserialize, Serialize};

/// Longest literal example kept per class (reports show it; the rest is noise).
const EXAMPLE_BYTES: usize = 1024;

/// A command's class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub id: u64,
    pub is_write: bool,
    /// Set the first time this classifier meets the class: its fingerprint and one
    /// literal example, for the results file.
    pub first_seen: Option<(String, Option<String>)>,
}

/// What a statement does to its session, as far as replaying it elsewhere is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Nothing a replay must follow.
    None,
    /// Opens a transaction (`BEGIN`, `START TRANSACTION`, `XA START`).
    Begin,
    /// Ends one: `COMMIT`, `ROLLBACK` (not to a savepoint), DDL's implicit commit,
    /// `SET autocommit = 1`.
    End,
    /// `USE db`: the default database follows the connection's next units.
    Use(String),
    /// `SET NAMES`/`SET CHARACTER SET`: the character set follows the next units.
    Names,
    /// Applies to the statement after it (`SET TRANSACTION ...`): never cut after it.
    KeepWithNext,
    /// Reads what the session's previous statement left (`LAST_INSERT_ID()`,
    /// `FOUND_ROWS()`, `ROW_COUNT()`): never cut before it.
    ReadsPrevious,
    /// Leaves state on the server connection that later statements may rely on.
    Pin(PinReason),
}

/// Why a captured connection had to stay on one target connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum PinReason {
    SessionVariable,
    UserVariable,
    TemporaryTable,
    NamedLock,
    TableLock,
    SqlPrepare,
    Handler,
    ChangeUser,
}

impl PinReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::SessionVariable => "session variable",
            PinReason::UserVariable => "user variable",
            PinReason::TemporaryTable => "temporary table",
            PinReason::NamedLock => "GET_LOCK",
            PinReason::TableLock => "LOCK TABLES",
            PinReason::SqlPrepare => "SQL PREPARE",
            PinReason::Handler => "HANDLER",
            PinReason::ChangeUser => "CHANGE_USER",
        }
    }
}

/// Classifies commands; remembers which classes it has met.
#[derive(Debug, Default)]
pub struct Classifier {
    fp: Fingerprinter,
    seen: HashSet<u64>,
}

impl Classifier {
    pub fn new() -> Self {
        Classifier::default()
    }

    /// Class and session effect of a statement (query or prepare).
    pub fn statement(&mut self, sql: &[u8]) -> (Class, Effect) {
        let text = self.fp.fingerprint(sql);
        let id = class_id(text);
        let is_write = is_write(text);
        let effect = effect(text, sql);
        let first_seen = self.seen.insert(id).then(|| {
            let example = String::from_utf8_lossy(&sql[..sql.len().min(EXAMPLE_BYTES)]);
            (text.to_string(), Some(example.into_owned()))
        });
        let class = Class {
            id,
            is_write,
            first_seen,
        };
        (class, effect)
    }

    /// Only the class id of a statement: what a command is, for a caller that needs no
    /// effect (explaining routes).
    pub fn class_id(&mut self, sql: &[u8]) -> u64 {
        class_id(self.fp.fingerprint(sql))
    }

    /// The class id and fingerprint of a statement, for a caller that shows them
    /// (tallying a capture).
    pub fn fingerprint(&mut self, sql: &[u8]) -> (u64, &str) {
        let text = self.fp.fingerprint(sql);
        (class_id(text), text)
    }

    /// Class of a command without SQL, named the way pt-query-digest names them.
    pub fn admin(&mut self, kind: CmdKind) -> Class {
        let text = admin_fingerprint(kind);
        let id = class_id(&text);
        let first_seen = self.seen.insert(id).then_some((text, None));
        Class {
            id,
            is_write: false,
            first_seen,
        }
    }
}

/// `administrator command: ping` and friends.
pub fn admin_fingerprint(kind: CmdKind) -> String {
    format!("administrator command: {kind}")
}

/// Whether a statement changes data (for `--skip-writes` and commit order).
pub fn is_write(fingerprint: &str) -> bool {
    let first = fingerprint
        .trim_start_matches(|c: char| c == '(' || c.is_whitespace())
        .split([' ', '('])
        .next()
        .unwrap_or("");
    matches!(
        first,
        "insert"
            | "update"
            | "delete"
            | "replace"
            | "create"
            | "drop"
            | "alter"
            | "truncate"
            | "rename"
            | "load"
            | "grant"
            | "revoke"
            | "call"
    ) || fingerprint.ends_with(" for update")
}

/// The session effect of a statement, from its fingerprint (and raw text for literals).
pub fn effect(fingerprint: &str, sql: &[u8]) -> Effect {
    let f = fingerprint.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
    let mut words = f.split([' ', '(']);
    let first = words.next().unwrap_or("");
    let second = words.next().unwrap_or("");
    match first {
        "begin" => return Effect::Begin,
        "start" if second == "transaction" => return Effect::Begin,
        "xa" if matches!(second, "start" | "begin") => return Effect::Begin,
        "xa" if matches!(second, "commit" | "rollback") => return Effect::End,
        "commit" => return Effect::End,
        "rollback" if second != "to" => return Effect::End,
        "create" | "drop" if second == "temporary" => {
            return Effect::Pin(PinReason::TemporaryTable);
        }
        "create" | "drop" | "alter" | "rename" | "truncate" => return Effect::End,
        "use" => return use_db(sql).map_or(Effect::None, Effect::Use),
        "set" => return set_effect(f, second, sql),
        "lock" => return Effect::Pin(PinReason::TableLock),
        "handler" => return Effect::Pin(PinReason::Handler),
        "prepare" | "execute" | "deallocate" => return Effect::Pin(PinReason::SqlPrepare),
        _ => {}
    }
    if f.contains("get_lock(") {
        Effect::Pin(PinReason::NamedLock)
    } else if has_user_variable(f) {
        Effect::Pin(PinReason::UserVariable)
    } else if f.contains("last_insert_id()")
        || f.contains("found_rows()")
        || f.contains("row_count()")
    {
        Effect::ReadsPrevious
    } else {
        Effect::None
    }
}

fn set_effect(f: &str, second: &str, sql: &[u8]) -> Effect {
    match second {
        "names" | "charset" => Effect::Names,
        "character" => Effect::Names,
        "transaction" => Effect::KeepWithNext,
        _ if has_user_variable(f) => Effect::Pin(PinReason::UserVariable),
        _ if is_autocommit_on(f, sql) => Effect::End,
        _ => Effect::Pin(PinReason::SessionVariable),
    }
}

/// `SET autocommit = 1` (or ON/TRUE): the server's default, and a commit; anything else
/// (`= 0`) changes how every later statement behaves, which pins.
fn is_autocommit_on(f: &str, sql: &[u8]) -> bool {
    let single = f.matches('=').count() == 1;
    let names_it = f.starts_with("set autocommit")
        || f.starts_with("set @@autocommit")
        || f.starts_with("set session autocommit")
        || f.starts_with("set @@session.autocommit");
    if !(single && names_it) {
        return false;
    }
    let text = String::from_utf8_lossy(sql).to_ascii_lowercase();
    let value = text.rsplit('=').next().unwrap_or("");
    let value = value.trim().trim_end_matches(';').trim();
    matches!(value, "1" | "on" | "true")
}

/// A user variable (`@x`), as opposed to a system variable (`@@x`).
fn has_user_variable(f: &str) -> bool {
    let b = f.as_bytes();
    b.iter()
        .enumerate()
        .any(|(i, &c)| c == b'@' && b.get(i + 1) != Some(&b'@') && (i == 0 || b[i - 1] != b'@'))
}

/// The database named by `USE db` (backquotes removed).
fn use_db(sql: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(sql);
    let rest = text.trim().get(3..)?.trim().trim_end_matches(';').trim();
    let db = rest
        .strip_prefix('`')
        .and_then(|r| r.strip_suffix('`'))
        .unwrap_or(rest);
    (!db.is_empty()).then(|| db.replace("``", "`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eff(sql: &str) -> Effect {
        let mut c = Classifier::new();
        c.statement(sql.as_bytes()).1
    }

    #[test]
    fn transactions_open_and_close() {
        assert_eq!(eff("BEGIN"), Effect::Begin);
        assert_eq!(eff("start transaction read only"), Effect::Begin);
        assert_eq!(eff("/* app */ COMMIT"), Effect::End);
        assert_eq!(eff("ROLLBACK"), Effect::End);
        assert_eq!(eff("ROLLBACK TO SAVEPOINT a"), Effect::None);
        assert_eq!(eff("ALTER TABLE t ADD c INT"), Effect::End);
        assert_eq!(eff("SET autocommit = 1"), Effect::End);
        assert_eq!(eff("XA START 'x'"), Effect::Begin);
    }

    #[test]
    fn session_state_that_cannot_move_pins() {
        let pin = |r| Effect::Pin(r);
        assert_eq!(eff("SET autocommit=0"), pin(PinReason::SessionVariable));
        assert_eq!(
            eff("SET SESSION sql_mode=''"),
            pin(PinReason::SessionVariable)
        );
        assert_eq!(eff("SET @x = 1"), pin(PinReason::UserVariable));
        assert_eq!(eff("SELECT a INTO @v FROM t"), pin(PinReason::UserVariable));
        assert_eq!(eff("SELECT GET_LOCK('x', 1)"), pin(PinReason::NamedLock));
        assert_eq!(
            eff("CREATE TEMPORARY TABLE t (a int)"),
            pin(PinReason::TemporaryTable)
        );
        assert_eq!(eff("LOCK TABLES t WRITE"), pin(PinReason::TableLock));
        assert_eq!(eff("SELECT @@version"), Effect::None);
        assert_eq!(eff("SELECT 'a@b.c'"), Effect::None);
    }

    #[test]
    fn state_that_follows_the_unit() {
        assert_eq!(eff("USE shop"), Effect::Use("shop".into()));
        assert_eq!(eff("use `my db`;"), Effect::Use("my db".into()));
        assert_eq!(eff("SET NAMES utf8mb4"), Effect::Names);
        assert_eq!(eff("SET CHARACTER SET latin1"), Effect::Names);
        assert_eq!(
            eff("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"),
            Effect::KeepWithNext
        );
        assert_eq!(eff("SELECT LAST_INSERT_ID()"), Effect::ReadsPrevious);
    }

    #[test]
    fn a_class_is_announced_once() {
        let mut c = Classifier::new();
        let (a, _) = c.statement(b"SELECT * FROM t WHERE id = 1");
        let (b, _) = c.statement(b"SELECT * FROM t WHERE id = 2");
        assert_eq!(a.id, b.id);
        assert!(a.first_seen.is_some() && b.first_seen.is_none());
        assert!(c.statement(b"UPDATE t SET a = 1").0.is_write);
    }
}
