//! The prepared statements one target connection holds for the captured connections it
//! serves.
//!
//! A replayed PREPARE is a real prepare, bound to the captured connection's statement
//! id, and a replayed CLOSE a real close, as captured. An EXECUTE whose PREPARE ran on
//! another target connection (pooled replay: each unit of work takes whichever
//! connection is free) needs the statement here too: it is prepared once per text and
//! default database and shared by every captured connection that prepared that text,
//! as an application's pool caches its statements. Keyed by captured id instead, 40
//! pooled connections replaying 8 captured ones that each prepared the same 4
//! statements would prepare 1,280 times where 160 do, and a capture of many
//! connections would keep evicting.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use mysql_async::Statement;

/// Statements one target connection keeps prepared. Bounds what a replay holds on the
/// server (its `max_prepared_stmt_count` is shared by every connection); a statement
/// evicted and executed again is simply prepared again.
pub const MAX_STATEMENTS: usize = 256;

/// A statement of a captured connection: (captured connection, statement id).
pub type StmtKey = (u64, u32);

/// A statement held, for eviction in age order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Held {
    Bound(StmtKey),
    Adopted(Arc<[u8]>, Option<String>),
}

/// One text's statements, by the default database each was prepared in.
type ByDatabase<S> = Vec<(Option<String>, S)>;

/// Generic over the statement only so it can be tested without a server.
#[derive(Debug)]
pub struct Statements<S = Statement> {
    /// Prepared by a replayed PREPARE on this connection.
    bound: HashMap<StmtKey, S>,
    /// Prepared here for EXECUTEs whose PREPARE ran elsewhere: by text, then by the
    /// default database it was prepared in (names resolve against it).
    adopted: HashMap<Arc<[u8]>, ByDatabase<S>>,
    /// Everything held, oldest first.
    order: VecDeque<Held>,
}

impl<S> Default for Statements<S> {
    fn default() -> Self {
        Statements {
            bound: HashMap::new(),
            adopted: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<S> Statements<S> {
    /// Forgets everything (the server forgot: a reconnect, RESET_CONNECTION, CHANGE_USER).
    pub fn clear(&mut self) {
        self.bound.clear();
        self.adopted.clear();
        self.order.clear();
    }

    /// The statement an EXECUTE of `key` runs: the one its PREPARE bound here, else one
    /// prepared here from the same text in database `db`.
    pub fn get(&self, key: StmtKey, sql: Option<&[u8]>, db: Option<&str>) -> Option<&S> {
        if let Some(stmt) = self.bound.get(&key) {
            return Some(stmt);
        }
        let shared = self.adopted.get(sql?)?;
        shared
            .iter()
            .find(|(d, _)| d.as_deref() == db)
            .map(|(_, stmt)| stmt)
    }

    /// Keeps a replayed PREPARE's statement; returns those the server should close (a
    /// statement the capture replaced without closing it, and the oldest beyond the bound).
    pub fn bind(&mut self, key: StmtKey, stmt: S) -> Vec<S> {
        let mut closing = Vec::new();
        match self.bound.insert(key, stmt) {
            Some(old) => closing.push(old),
            None => self.order.push_back(Held::Bound(key)),
        }
        self.evict(&mut closing);
        closing
    }

    /// Keeps a statement prepared for an EXECUTE whose PREPARE ran elsewhere; returns
    /// those the server should close.
    pub fn adopt(&mut self, sql: Arc<[u8]>, db: Option<String>, stmt: S) -> Vec<S> {
        let mut closing = Vec::new();
        let shared = self.adopted.entry(sql.clone()).or_default();
        match shared.iter_mut().find(|(d, _)| *d == db) {
            Some((_, old)) => closing.push(std::mem::replace(old, stmt)),
            None => {
                shared.push((db.clone(), stmt));
                self.order.push_back(Held::Adopted(sql, db));
            }
        }
        self.evict(&mut closing);
        closing
    }

    /// A replayed CLOSE: the statement its PREPARE bound here, if any.
    pub fn unbind(&mut self, key: StmtKey) -> Option<S> {
        let stmt = self.bound.remove(&key)?;
        self.order.retain(|held| *held != Held::Bound(key));
        Some(stmt)
    }

    fn evict(&mut self, closing: &mut Vec<S>) {
        while self.order.len() > MAX_STATEMENTS {
            let Some(oldest) = self.order.pop_front() else {
                return;
            };
            match oldest {
                Held::Bound(key) => closing.extend(self.bound.remove(&key)),
                Held::Adopted(sql, db) => {
                    if let Some(shared) = self.adopted.get_mut(&sql) {
                        if let Some(i) = shared.iter().position(|(d, _)| *d == db) {
                            closing.push(shared.swap_remove(i).1);
                        }
                        if shared.is_empty() {
                            self.adopted.remove(&sql);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql(text: &str) -> Arc<[u8]> {
        Arc::from(text.as_bytes())
    }

    #[test]
    fn an_execute_finds_its_bound_statement_first_then_one_adopted_by_text_and_db() {
        let mut s: Statements<u32> = Statements::default();
        let text = sql("SELECT c FROM t WHERE id=?");
        assert!(s.get((1, 1), Some(&text), Some("shop")).is_none());
        assert!(s.adopt(text.clone(), Some("shop".into()), 10).is_empty());
        // Any captured connection that prepared the text shares it, in that database only.
        assert_eq!(s.get((2, 7), Some(&text), Some("shop")), Some(&10));
        assert_eq!(s.get((2, 7), Some(&text), Some("other")), None);
        assert_eq!(s.get((2, 7), None, Some("shop")), None);
        // A PREPARE replayed here binds its own.
        assert!(s.bind((2, 7), 20).is_empty());
        assert_eq!(s.get((2, 7), Some(&text), Some("shop")), Some(&20));
        assert_eq!(s.unbind((2, 7)), Some(20));
        assert_eq!(s.get((2, 7), Some(&text), Some("shop")), Some(&10));
    }

    #[test]
    fn replaced_and_evicted_statements_come_back_to_be_closed() {
        let mut s: Statements<usize> = Statements::default();
        assert!(s.bind((1, 1), 1).is_empty());
        assert_eq!(s.bind((1, 1), 2), vec![1]);
        for i in 0..MAX_STATEMENTS {
            let closed = s.adopt(sql(&format!("SELECT {i}")), None, 100 + i);
            // The 256th statement held pushes the oldest (the bound one) out.
            if i + 1 == MAX_STATEMENTS {
                assert_eq!(closed, vec![2]);
            } else {
                assert!(closed.is_empty(), "{i}: {closed:?}");
            }
        }
        assert_eq!(s.get((1, 1), None, None), None);
        assert_eq!(
            s.adopt(sql("SELECT new"), None, 999),
            vec![100],
            "the oldest adopted goes next"
        );
        assert_eq!(s.get((9, 9), Some(b"SELECT 0".as_slice()), None), None);
        assert_eq!(
            s.get((9, 9), Some(b"SELECT 1".as_slice()), None),
            Some(&101)
        );
    }
}
