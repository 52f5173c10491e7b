//! The digest of the rows a response carries, folded in as the packets pass (see
//! `captures::digest` for what it is). The response state machine says which packet is
//! what; this module only keeps the columns and the running digest.
//!
//! A row the digest cannot follow — a column definition it cannot read, a row of 16 MiB
//! or more (the relay looks at the first piece only), rows without known columns — gives
//! the response no digest. The traffic is never affected.

use std::sync::Arc;

use captures::Digest;
use captures::digest::{ColumnSpec, Columns, Digester};

use super::framing::MAX_PAYLOAD;

/// The running digest of one response.
#[derive(Debug)]
pub struct RowDigest {
    /// COM_STMT_EXECUTE: rows in the binary protocol.
    binary: bool,
    /// Columns of the result set being read.
    columns: Arc<Columns>,
    /// The statement's columns from its PREPARE_OK or an earlier EXECUTE, for a result
    /// set whose definitions MariaDB leaves out (metadata caching).
    cached: Option<Arc<Columns>>,
    /// Definitions read in this response (a PREPARE_OK's, or the first result set's),
    /// for the statement to cache.
    seen: Option<Arc<Columns>>,
    digester: Digester,
    failed: Option<&'static str>,
}

impl RowDigest {
    /// For a COM_QUERY: text rows.
    pub fn text() -> Self {
        Self::new(false, None)
    }

    /// For a COM_STMT_EXECUTE (binary rows), with the statement's columns if known.
    pub fn binary(cached: Option<Arc<Columns>>) -> Self {
        Self::new(true, cached)
    }

    /// For a COM_STMT_PREPARE: only its column definitions are kept.
    pub fn prepare() -> Self {
        Self::new(true, None)
    }

    fn new(binary: bool, cached: Option<Arc<Columns>>) -> Self {
        RowDigest {
            binary,
            columns: Arc::default(),
            cached,
            seen: None,
            digester: Digester::new(),
            failed: None,
        }
    }

    /// A result set starts; its definitions follow unless the server left them out.
    pub fn result_set(&mut self, definitions_follow: bool) {
        if definitions_follow {
            self.columns = Arc::default();
        } else {
            match &self.cached {
                Some(cached) => self.columns = Arc::clone(cached),
                None => self.fail("a result set without column definitions, none cached"),
            }
        }
    }

    /// One column definition packet; `last` when it completes the set.
    pub fn definition(&mut self, payload: &[u8], last: bool) {
        match ColumnSpec::from_definition(payload) {
            Some(spec) => Arc::make_mut(&mut self.columns).push(spec),
            None => self.fail("a column definition it cannot read"),
        }
        if last && self.seen.is_none() {
            self.seen = Some(Arc::clone(&self.columns));
        }
    }

    /// One row packet (its first piece, if it continues).
    pub fn row(&mut self, payload: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if payload.len() >= MAX_PAYLOAD {
            self.fail("a row of 16 MiB or more");
            return;
        }
        let digested = if self.binary {
            self.digester.binary_row(payload, &self.columns)
        } else {
            self.digester.text_row(payload, &self.columns)
        };
        if let Err(e) = digested {
            self.fail(e.reason());
        }
    }

    fn fail(&mut self, why: &'static str) {
        if self.failed.is_none() {
            tracing::debug!("no result digest: {why}");
            self.failed = Some(why);
        }
    }

    /// The digest of every row, unless one could not be followed.
    pub fn digest(&self) -> Option<Digest> {
        self.failed.is_none().then(|| self.digester.digest())
    }

    /// Column definitions this response carried, for the statement to cache.
    pub fn seen(&self) -> Option<Arc<Columns>> {
        self.seen.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::constants::{ColumnFlags, ColumnType};

    fn int_columns() -> Arc<Columns> {
        let spec = ColumnSpec::new(ColumnType::MYSQL_TYPE_LONG, ColumnFlags::empty(), 0);
        Arc::new([spec].into_iter().collect())
    }

    /// A binary row of one INT: header, NULL bitmap, the value.
    const ROW: [u8; 6] = [0x00, 0x00, 7, 0, 0, 0];

    #[test]
    fn skipped_definitions_use_the_statements_cached_columns() {
        let mut cached = RowDigest::binary(Some(int_columns()));
        cached.result_set(false);
        cached.row(&ROW);
        let mut read = RowDigest::binary(None);
        read.result_set(true);
        let mut def = vec![0u8; 4]; // four empty names, catalog first
        def.extend_from_slice(&[0, 0, 0x0c, 63, 0, 11, 0, 0, 0, 3, 0, 0, 0, 0, 0]);
        read.definition(&def, true);
        read.row(&ROW);
        assert!(cached.digest().is_some());
        assert_eq!(cached.digest(), read.digest());
        assert_eq!(read.seen().as_deref(), Some(&*int_columns()));
        assert_eq!(cached.seen(), None, "nothing new to cache");
    }

    #[test]
    fn rows_it_cannot_follow_leave_no_digest() {
        let mut unknown = RowDigest::binary(None);
        unknown.result_set(false);
        unknown.row(&ROW);
        assert_eq!(unknown.digest(), None, "no columns known");
        let mut huge = RowDigest::text();
        huge.result_set(true);
        huge.row(&vec![0u8; MAX_PAYLOAD]);
        assert_eq!(huge.digest(), None, "a row continued past 16 MiB");
        let mut short = RowDigest::binary(Some(int_columns()));
        short.result_set(false);
        short.row(&ROW[..4]);
        assert_eq!(short.digest(), None, "a malformed row");
    }
}
