//! Executing one captured command on a target connection, and judging its outcome
//! against the captured one.

use std::collections::HashMap;
use std::sync::Arc;

use captures::digest::{ColumnSpec, Columns, Digester, Likeness};
use captures::{Cmd, Digest, Divergence, Outcome, Value};
use mysql_async::prelude::Queryable;
use mysql_async::{ChangeUserOpts, Conn, Params, Statement};

use crate::statements::{Statements, StmtKey};
use crate::target::Target;

/// What a command did on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Rows returned (`rows`) or affected (`affected`), from every result set, with
    /// the warnings and the rows' digest (when asked for and a result set came).
    Ok {
        rows: u64,
        affected: u64,
        result_set: bool,
        warnings: u16,
        digest: Option<Digest>,
    },
    /// The server answered with an error.
    ServerError(u16),
    /// The command is not replayable with this client (e.g. cursor FETCH, COM_STATISTICS):
    /// counted, not sent.
    Skipped,
}

pub use crate::verdict::{CANNOT_CONNECT, CONNECTION_LOST};

/// Per-target-connection replay state: its prepared statements, long data waiting for
/// its EXECUTE.
#[derive(Debug, Default)]
pub struct Session {
    stmts: Statements,
    long_data: HashMap<(StmtKey, u16), Vec<u8>>,
}

/// What to run: a captured command of captured connection `conn`, with the SQL its
/// statement was prepared from (for statement commands), so a connection that has not
/// prepared it yet can, and the connection's default database (target name), which a
/// statement prepared here resolves its names in.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub conn: u64,
    pub cmd: &'a Cmd,
    pub stmt_sql: Option<&'a Arc<[u8]>>,
    pub db: Option<&'a str>,
    /// Digest the rows returned (see [`captures::digest`]).
    pub digest: bool,
}

const DONE: Done = Done::Ok {
    rows: 0,
    affected: 0,
    result_set: false,
    warnings: 0,
    digest: None,
};

impl Session {
    /// Forget server-side state (after a reconnect, RESET_CONNECTION or CHANGE_USER).
    pub fn clear(&mut self) {
        self.stmts.clear();
        self.long_data.clear();
    }

    /// Runs a command. `Err` means the connection is unusable (the caller reconnects);
    /// server errors are `Ok(Done::ServerError)`.
    pub async fn execute(
        &mut self,
        conn: &mut Conn,
        req: Request<'_>,
        target: &Target,
    ) -> Result<Done, mysql_async::Error> {
        let result = match req.cmd {
            Cmd::Query { sql } => match conn.query_iter(sql.as_slice()).await {
                Ok(mut result) => drain(&mut result, req.digest).await,
                Err(e) => Err(e),
            },
            Cmd::LoadLocal { sql, files } => match load_local(conn, sql, files).await {
                Some(result) => result,
                // Content the recorder did not keep (over its bound, redacted), or a
                // statement with several files: skipped and counted, never half sent.
                None => return Ok(Done::Skipped),
            },
            Cmd::Prepare { .. }
            | Cmd::Execute { .. }
            | Cmd::SendLongData { .. }
            | Cmd::StmtClose { .. }
            | Cmd::StmtReset { .. } => self.statement(conn, req).await,
            _ => match self.session(conn, req.cmd, target).await {
                Some(result) => result,
                None => return Ok(Done::Skipped),
            },
        };
        match result {
            Ok(done) => Ok(done),
            Err(mysql_async::Error::Server(e)) => Ok(Done::ServerError(e.code)),
            Err(e) => Err(e),
        }
    }

    /// Prepared-statement commands, keyed by (captured connection, statement id).
    async fn statement(
        &mut self,
        conn: &mut Conn,
        req: Request<'_>,
    ) -> Result<Done, mysql_async::Error> {
        match req.cmd {
            Cmd::Prepare { sql, stmt_id, .. } => {
                let stmt = conn.prep(sql.as_slice()).await?;
                let closing = self.stmts.bind((req.conn, *stmt_id), stmt);
                close_all(conn, closing).await?;
            }
            Cmd::Execute {
                stmt_id, params, ..
            } => return self.exec(conn, (req.conn, *stmt_id), req, params).await,
            Cmd::SendLongData {
                stmt_id,
                param,
                data,
            } => {
                // mysql_async sends long values itself at EXECUTE: collect the pieces.
                self.long_data
                    .entry(((req.conn, *stmt_id), *param))
                    .or_default()
                    .extend_from_slice(data);
            }
            Cmd::StmtClose { stmt_id } => {
                let key = (req.conn, *stmt_id);
                if let Some(stmt) = self.stmts.unbind(key) {
                    conn.close(stmt).await?;
                }
                self.long_data.retain(|(k, _), _| *k != key);
            }
            Cmd::StmtReset { stmt_id } => {
                // The driver has no COM_STMT_RESET; the effect that matters (discarding
                // long data) is ours to undo.
                let key = (req.conn, *stmt_id);
                self.long_data.retain(|(k, _), _| *k != key);
            }
            _ => {}
        }
        Ok(DONE)
    }

    /// Session commands; `None` for those this client cannot replay (cursor FETCH,
    /// COM_STATISTICS, ...), which are counted as skipped.
    async fn session(
        &mut self,
        conn: &mut Conn,
        cmd: &Cmd,
        target: &Target,
    ) -> Option<Result<Done, mysql_async::Error>> {
        Some(match cmd {
            Cmd::InitDb { db } => use_db(conn, &target.map_db(Some(db))?).await.map(|()| DONE),
            Cmd::Ping => conn.ping().await.map(|()| DONE),
            Cmd::ResetConnection => {
                self.clear();
                conn.reset().await.map(|_| DONE)
            }
            Cmd::ChangeUser { db, .. } => {
                // The target's own credentials: the capture never holds passwords.
                self.clear();
                let opts = ChangeUserOpts::default().with_db_name(target.map_db(db.as_deref()));
                conn.change_user(opts).await.map(|()| DONE)
            }
            _ => return None,
        })
    }

    /// EXECUTE, preparing the statement first if this connection has not (pooled
    /// replay: it was prepared on another target connection).
    async fn exec(
        &mut self,
        conn: &mut Conn,
        key: StmtKey,
        req: Request<'_>,
        params: &[captures::Param],
    ) -> Result<Done, mysql_async::Error> {
        // One lookup (a hash of the SQL text when the PREPARE ran elsewhere) per EXECUTE;
        // a `Statement` is an `Arc`, cheaper to clone than to look up twice.
        let found = self
            .stmts
            .get(key, req.stmt_sql.map(|sql| &sql[..]), req.db)
            .cloned();
        let stmt = match (found, req.stmt_sql) {
            (Some(stmt), _) => stmt,
            (None, Some(sql)) => {
                let stmt = conn.prep(&sql[..]).await?;
                let db = req.db.map(str::to_owned);
                let closing = self.stmts.adopt(sql.clone(), db, stmt.clone());
                close_all(conn, closing).await?;
                stmt
            }
            // Prepared before the capture started, or its PREPARE failed: the server
            // would say "unknown prepared statement handler".
            (None, None) => return Ok(Done::ServerError(UNKNOWN_STATEMENT)),
        };
        let long_data = &mut self.long_data;
        let values: Vec<mysql_async::Value> = params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // Long data is rare: no lookup per parameter when there is none.
                let long = (!long_data.is_empty())
                    .then(|| u16::try_from(i).ok())
                    .flatten()
                    .and_then(|i| long_data.remove(&(key, i)));
                match long {
                    Some(bytes) => mysql_async::Value::Bytes(bytes),
                    None => to_mysql(&p.value),
                }
            })
            .collect();
        let params = if values.is_empty() {
            Params::Empty
        } else {
            Params::Positional(values)
        };
        match conn.exec_iter(&stmt, params).await {
            Ok(mut result) => drain(&mut result, req.digest).await,
            Err(e) => Err(e),
        }
    }
}

/// ER_UNKNOWN_STMT_HANDLER: what the server says to an EXECUTE of a statement it does
/// not know.
const UNKNOWN_STATEMENT: u16 = 1243;

/// Closes statements the cache let go (replaced or evicted).
async fn close_all(conn: &mut Conn, stmts: Vec<Statement>) -> Result<(), mysql_async::Error> {
    for stmt in stmts {
        conn.close(stmt).await?;
    }
    Ok(())
}

/// LOAD DATA LOCAL INFILE with the file's content as captured, sent when the server
/// asks for it; `None` when the capture does not hold exactly one file's content.
async fn load_local(
    conn: &mut Conn,
    sql: &[u8],
    files: &[captures::LocalFile],
) -> Option<Result<Done, mysql_async::Error>> {
    let [
        captures::LocalFile {
            content: Some(content),
            ..
        },
    ] = files
    else {
        return None;
    };
    let data = bytes::Bytes::from(content.clone());
    conn.set_infile_handler(async move {
        let once = futures_util::stream::once(async move { Ok(data) });
        Ok(Box::pin(once) as mysql_async::InfileData)
    });
    Some(match conn.query_iter(sql).await {
        Ok(mut result) => drain(&mut result, false).await,
        Err(e) => Err(e),
    })
}

/// Makes `db` the connection's default database.
pub async fn use_db(conn: &mut Conn, db: &str) -> Result<(), mysql_async::Error> {
    conn.query_drop(format!("USE `{}`", db.replace('`', "``")))
        .await
}

/// Reads every result set of a response, counting rows, summing affected rows and
/// warnings, and (`digest`) folding the rows into a digest.
async fn drain<P: mysql_async::prelude::Protocol>(
    result: &mut mysql_async::QueryResult<'_, 'static, P>,
    digest: bool,
) -> Result<Done, mysql_async::Error> {
    let mut rows = 0u64;
    let mut affected = 0u64;
    let mut warnings = 0u16;
    let mut result_set = false;
    let mut digester = digest.then(Digester::new);
    loop {
        let columns = result.columns().filter(|c| !c.is_empty());
        result_set |= columns.is_some();
        // What the digest needs of the columns, only when digesting (no allocation else).
        let columns: Columns = match (&digester, columns) {
            (Some(_), Some(c)) => c
                .iter()
                .map(|c| ColumnSpec::new(c.column_type(), c.flags(), c.decimals()))
                .collect(),
            _ => Columns::default(),
        };
        while let Some(row) = result.next().await? {
            rows += 1;
            if let Some(d) = &mut digester {
                d.value_row((0..row.len()).map(|i| row.as_ref(i)), &columns);
            }
        }
        affected += result.affected_rows();
        warnings = warnings.saturating_add(result.warnings());
        if result.is_empty() {
            break;
        }
    }
    Ok(Done::Ok {
        rows,
        affected,
        result_set,
        warnings,
        digest: digester.filter(|_| result_set).map(|d| d.digest()),
    })
}

/// Captured parameter values become the driver's values unchanged, types included.
pub fn to_mysql(value: &Value) -> mysql_async::Value {
    match value {
        Value::Null | Value::Redacted => mysql_async::Value::NULL,
        Value::Bytes(b) => mysql_async::Value::Bytes(b.clone()),
        Value::Int(i) => mysql_async::Value::Int(*i),
        Value::UInt(u) => mysql_async::Value::UInt(*u),
        Value::Float(f) => mysql_async::Value::Float(*f),
        Value::Double(d) => mysql_async::Value::Double(*d),
        Value::Date(y, m, d, h, mi, s, us) => {
            mysql_async::Value::Date(*y, *m, *d, *h, *mi, *s, *us)
        }
        Value::Time(neg, d, h, m, s, us) => mysql_async::Value::Time(*neg, *d, *h, *m, *s, *us),
    }
}

/// Rows (or affected rows) to store in the results file.
pub fn rows_of(done: Done) -> u64 {
    match done {
        Done::Ok {
            rows, result_set, ..
        } if result_set => rows,
        Done::Ok { affected, .. } => affected,
        _ => 0,
    }
}

/// How the target's answer differed from the captured one.
pub fn judge(captured: &Outcome, done: Done) -> Divergence {
    let Done::Ok {
        rows,
        affected,
        result_set,
        warnings,
        digest,
    } = done
    else {
        return match (captured, done) {
            (_, Done::Skipped) | (Outcome::Dropped | Outcome::NoResponse, _) => Divergence::None,
            (Outcome::Err { code, .. }, Done::ServerError(c)) if *code == c => Divergence::None,
            (Outcome::Err { .. }, _) => Divergence::ErrorChanged,
            _ => Divergence::ErrorNew,
        };
    };
    match captured {
        Outcome::Err { .. } => Divergence::ErrorResolved,
        Outcome::Rows {
            count,
            warnings: w,
            digest: d,
        } => {
            if *count != rows {
                return Divergence::RowCount;
            }
            match d.zip(digest).map(|(a, b)| a.likeness(&b)) {
                Some(Likeness::Different) => Divergence::RowsDiffer,
                Some(Likeness::OrderOnly) => Divergence::OrderOnly,
                _ if *w != warnings => Divergence::Warnings,
                _ => Divergence::None,
            }
        }
        Outcome::Ok {
            affected_rows,
            warnings: w,
            ..
        } if !result_set => {
            if *affected_rows != affected {
                Divergence::Affected
            } else if *w != warnings {
                Divergence::Warnings
            } else {
                Divergence::None
            }
        }
        _ => Divergence::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u64, digest: Option<Digest>, warnings: u16) -> Done {
        Done::Ok {
            rows: n,
            affected: 0,
            result_set: true,
            warnings,
            digest,
        }
    }

    fn ok(n: u64, warnings: u16) -> Done {
        Done::Ok {
            rows: 0,
            affected: n,
            result_set: false,
            warnings,
            digest: None,
        }
    }

    const D: Digest = Digest {
        unordered: 1,
        ordered: 2,
    };

    #[test]
    fn answers_are_judged_by_rows_digest_affected_warnings_and_error_code() {
        use Divergence::*;
        let captured_rows = Outcome::Rows {
            count: 3,
            warnings: 0,
            digest: Some(D),
        };
        let reordered = Digest {
            unordered: 1,
            ordered: 9,
        };
        let other = Digest {
            unordered: 5,
            ordered: 2,
        };
        assert_eq!(judge(&captured_rows, rows(3, Some(D), 0)), None);
        assert_eq!(judge(&captured_rows, rows(2, Some(D), 0)), RowCount);
        assert_eq!(
            judge(&captured_rows, rows(3, Some(reordered), 0)),
            OrderOnly
        );
        assert_eq!(judge(&captured_rows, rows(3, Some(other), 0)), RowsDiffer);
        assert_eq!(judge(&captured_rows, rows(3, Some(D), 1)), Warnings);
        // Nothing to compare the rows with: the count and warnings still count.
        assert_eq!(judge(&captured_rows, rows(3, Option::None, 0)), None);
        let captured_ok = Outcome::Ok {
            affected_rows: 1,
            last_insert_id: 0,
            warnings: 0,
        };
        assert_eq!(judge(&captured_ok, ok(1, 0)), None);
        assert_eq!(judge(&captured_ok, ok(0, 0)), Affected);
        assert_eq!(judge(&captured_ok, ok(1, 2)), Warnings);
        assert_eq!(judge(&captured_ok, Done::ServerError(1062)), ErrorNew);
        let dup = Outcome::Err {
            code: 1062,
            sqlstate: "23000".into(),
            message: String::new(),
        };
        assert_eq!(judge(&dup, Done::ServerError(1062)), None);
        assert_eq!(judge(&dup, Done::ServerError(1146)), ErrorChanged);
        assert_eq!(judge(&dup, ok(1, 0)), ErrorResolved);
        assert_eq!(judge(&Outcome::Dropped, ok(1, 0)), None);
        assert_eq!(judge(&captured_ok, Done::Skipped), None);
    }
}
