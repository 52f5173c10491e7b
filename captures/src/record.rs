//! What a capture holds: one [`Meta`] header, then [`Record`]s in capture order.
//!
//! Times are nanoseconds since the capture started, on a monotonic clock, so they never
//! jump with NTP; `Meta::started_unix_ns` anchors them to the wall clock.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::status;

/// Capture-wide facts, written once in the file header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Name and version of the tool that wrote the file, e.g. `recorder 0.1.0`.
    pub tool: String,
    /// Wall-clock time of `t = 0`, nanoseconds since the Unix epoch.
    pub started_unix_ns: u64,
    /// The upstream the recorder relayed to, as given on its command line.
    pub upstream: String,
    /// The server version string from the upstream's greeting, if one was seen.
    pub server_version: String,
    /// Literal values were replaced by fingerprints: inspectable, not replayable.
    pub redacted: bool,
    /// Free-form labels (dataset seed, scenario mix, host, ...).
    pub labels: BTreeMap<String, String>,
}

/// Identifies one client connection within a capture (assigned by the recorder, dense
/// from 0; not the server's thread id).
pub type ConnId = u64;

/// One entry of a capture, in the order the recorder finished observing it.
///
/// Postcard encodes the variant's index: new variants go at the end, so files without
/// them still read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    ConnOpen(ConnOpen),
    Command(Command),
    ConnClose(ConnClose),
    /// The capture was closed cleanly; always the last record. A file without it was
    /// cut short (the recorder killed, the disk full, a crash). Added in version 2.
    End(CaptureEnd),
}

impl Record {
    /// The connection the record belongs to; `None` for [`Record::End`], which belongs
    /// to the whole capture.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            Record::ConnOpen(r) => Some(r.conn),
            Record::Command(r) => Some(r.conn),
            Record::ConnClose(r) => Some(r.conn),
            Record::End(_) => None,
        }
    }

    /// When the record's event started (ns since capture start).
    pub fn t(&self) -> u64 {
        match self {
            Record::ConnOpen(r) => r.t,
            Record::Command(r) => r.t_start,
            Record::ConnClose(r) => r.t,
            Record::End(r) => r.t,
        }
    }
}

/// The end of a cleanly closed capture, with what the writer knew of its completeness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureEnd {
    /// When the capture was closed (ns since capture start).
    pub t: u64,
    /// [`Record::Command`]s in the file, so a reader can check it saw them all.
    pub commands: u64,
    /// Records the recorder could not write (queue full): the capture is complete only
    /// if this is 0.
    pub dropped: u64,
}

/// A client connected and authenticated. Passwords and auth data are never stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnOpen {
    pub conn: ConnId,
    pub t: u64,
    pub client_addr: String,
    pub user: String,
    /// Schema named in the handshake response (CLIENT_CONNECT_WITH_DB), if any.
    pub db: Option<String>,
    /// Capability flags the client asked for (after the recorder's own adjustments).
    pub capabilities: u32,
    /// Collation id from the handshake response.
    pub charset: u8,
    /// Authentication plugin finally used (after any auth switch).
    pub auth_plugin: String,
    /// The server's connection (thread) id, handy for matching server logs.
    pub server_conn_id: u32,
}

/// One client command, its response's timing and outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Command {
    pub conn: ConnId,
    /// First byte of the command received from the client.
    pub t_start: u64,
    /// Last byte of the response relayed to the client (= `t_start` for commands
    /// without a response).
    pub t_end: u64,
    pub cmd: Cmd,
    pub outcome: Outcome,
    /// Server status flags ([`crate::status`]) of the response's final OK or EOF packet
    /// (for multi-result responses the last one, without `MORE_RESULTS_EXISTS`): the
    /// session's transaction and autocommit state after the command. `None` when the
    /// response ended in ERR, carried no status (PREPARE_OK, COM_STATISTICS), there was
    /// no response, it was dropped, or the file is format version 1. Added in version 2.
    pub status: Option<u16>,
}

impl Command {
    /// Whether a transaction was open after the command (read-only ones included);
    /// `None` without a [`Command::status`].
    pub fn in_transaction(&self) -> Option<bool> {
        self.status
            .map(|s| s & (status::IN_TRANS | status::IN_TRANS_READONLY) != 0)
    }

    /// Whether autocommit was on after the command; `None` without a [`Command::status`].
    pub fn autocommit(&self) -> Option<bool> {
        self.status.map(|s| s & status::AUTOCOMMIT != 0)
    }
}

/// [`Record`] as format versions 1 and 2 wrote it: the same variants in the same order
/// (postcard encodes the variant index), with their [`Command`] shape.
#[derive(Deserialize)]
enum RecordOld<C> {
    ConnOpen(ConnOpen),
    Command(C),
    ConnClose(ConnClose),
    /// Version 2 only.
    End(CaptureEnd),
}

/// [`Command`] as format version 1 wrote it: without `status`.
#[derive(Deserialize)]
struct CommandV1 {
    conn: ConnId,
    t_start: u64,
    t_end: u64,
    cmd: Cmd,
    outcome: OutcomeV2,
}

/// [`Command`] as format version 2 wrote it: outcomes without digests.
#[derive(Deserialize)]
struct CommandV2 {
    conn: ConnId,
    t_start: u64,
    t_end: u64,
    cmd: Cmd,
    outcome: OutcomeV2,
    status: Option<u16>,
}

/// [`Outcome`] before version 3: rows without a digest.
#[derive(Deserialize)]
enum OutcomeV2 {
    Ok {
        affected_rows: u64,
        last_insert_id: u64,
        warnings: u16,
    },
    Rows {
        count: u64,
        warnings: u16,
    },
    Err {
        code: u16,
        sqlstate: String,
        message: String,
    },
    Dropped,
    NoResponse,
}

impl From<OutcomeV2> for Outcome {
    fn from(o: OutcomeV2) -> Self {
        match o {
            OutcomeV2::Ok {
                affected_rows,
                last_insert_id,
                warnings,
            } => Outcome::Ok {
                affected_rows,
                last_insert_id,
                warnings,
            },
            OutcomeV2::Rows { count, warnings } => Outcome::Rows {
                count,
                warnings,
                digest: None,
            },
            OutcomeV2::Err {
                code,
                sqlstate,
                message,
            } => Outcome::Err {
                code,
                sqlstate,
                message,
            },
            OutcomeV2::Dropped => Outcome::Dropped,
            OutcomeV2::NoResponse => Outcome::NoResponse,
        }
    }
}

impl From<CommandV1> for Command {
    fn from(c: CommandV1) -> Self {
        CommandV2 {
            conn: c.conn,
            t_start: c.t_start,
            t_end: c.t_end,
            cmd: c.cmd,
            outcome: c.outcome,
            status: None,
        }
        .into()
    }
}

impl From<CommandV2> for Command {
    fn from(c: CommandV2) -> Self {
        Command {
            conn: c.conn,
            t_start: c.t_start,
            t_end: c.t_end,
            cmd: c.cmd,
            outcome: c.outcome.into(),
            status: c.status,
        }
    }
}

impl<C: Into<Command>> From<RecordOld<C>> for Record {
    fn from(r: RecordOld<C>) -> Self {
        match r {
            RecordOld::ConnOpen(o) => Record::ConnOpen(o),
            RecordOld::Command(c) => Record::Command(c.into()),
            RecordOld::ConnClose(c) => Record::ConnClose(c),
            RecordOld::End(e) => Record::End(e),
        }
    }
}

/// Decodes one record of a capture written by format `version`, returning the bytes
/// after it. Postcard is not self-describing, so each version needs its own shape.
pub(crate) fn take_record(version: u16, bytes: &[u8]) -> postcard::Result<(Record, &[u8])> {
    match version {
        1 => old::<CommandV1>(bytes),
        2 => old::<CommandV2>(bytes),
        _ => postcard::take_from_bytes(bytes),
    }
}

fn old<C>(bytes: &[u8]) -> postcard::Result<(Record, &[u8])>
where
    C: Into<Command> + serde::de::DeserializeOwned,
{
    let (r, rest) = postcard::take_from_bytes::<RecordOld<C>>(bytes)?;
    Ok((r.into(), rest))
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// COM_QUIT.
    Quit,
    /// The client closed the socket without COM_QUIT.
    ClientGone,
    /// The server closed the connection (or it failed) first.
    ServerGone,
    /// The recorder closed it: malformed packet or protocol state it cannot follow.
    ProtocolError,
    /// The recorder was shutting down.
    Shutdown,
}

/// A connection ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnClose {
    pub conn: ConnId,
    pub t: u64,
    pub reason: CloseReason,
}

/// A client command, keeping what a replay needs to re-issue it.
///
/// SQL text is kept as bytes: a statement may legitimately carry non-UTF-8 bytes (binary
/// string literals under a binary or latin1 connection charset), and replay must send it
/// back unchanged. [`Cmd::sql_lossy`] gives a printable form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Cmd {
    /// COM_QUERY.
    Query {
        #[serde(with = "serde_bytes")]
        sql: Vec<u8>,
    },
    /// COM_STMT_PREPARE; `stmt_id` is the id the server returned (0 if the prepare
    /// failed), which later `Execute`/`Close`/... of the same connection refer to.
    Prepare {
        #[serde(with = "serde_bytes")]
        sql: Vec<u8>,
        stmt_id: u32,
        params: u16,
        columns: u16,
    },
    /// COM_STMT_EXECUTE with its parameters decoded using the types bound (now or by an
    /// earlier execute of the same statement). Values that arrived by
    /// COM_STMT_SEND_LONG_DATA are merged in, so a replay can bind them directly.
    Execute {
        stmt_id: u32,
        /// Cursor flags (CURSOR_TYPE_READ_ONLY etc.).
        flags: u8,
        params: Vec<Param>,
    },
    /// COM_STMT_SEND_LONG_DATA (no response).
    SendLongData {
        stmt_id: u32,
        param: u16,
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
    /// COM_STMT_CLOSE (no response).
    StmtClose { stmt_id: u32 },
    /// COM_STMT_RESET.
    StmtReset { stmt_id: u32 },
    /// COM_STMT_FETCH from an open cursor.
    StmtFetch { stmt_id: u32, rows: u32 },
    /// COM_INIT_DB (`USE db` from most clients).
    InitDb { db: String },
    /// COM_CHANGE_USER; the password is never stored.
    ChangeUser {
        user: String,
        db: Option<String>,
        charset: u16,
        auth_plugin: String,
    },
    /// COM_PING.
    Ping,
    /// COM_RESET_CONNECTION.
    ResetConnection,
    /// COM_QUIT.
    Quit,
    /// COM_STATISTICS.
    Statistics,
    /// COM_FIELD_LIST (deprecated, still sent by old clients).
    FieldList { table: String, wildcard: String },
    /// Anything else, relayed untouched and kept raw (command byte + payload).
    Other {
        code: u8,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// A COM_QUERY the server answered with a LOCAL INFILE request (`LOAD DATA LOCAL
    /// INFILE`, `LOAD XML LOCAL`): the statement, and what the client sent for each
    /// request, in order (one per LOCAL statement of a multi-statement query). A replay
    /// answers the server's requests with these contents in turn. Its [`Cmd::kind`] is
    /// [`CmdKind::Query`]. (A LOAD DATA LOCAL the server refused without asking for the
    /// file stays a [`Cmd::Query`].) Added in version 2.
    LoadLocal {
        #[serde(with = "serde_bytes")]
        sql: Vec<u8>,
        files: Vec<LocalFile>,
    },
}

/// What a client sent for one LOCAL INFILE request of a [`Cmd::LoadLocal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalFile {
    /// Bytes the client sent (0: it had no such file, or refused to send it).
    pub size: u64,
    /// The bytes, exactly as sent; `None` when they were not kept: more than the
    /// recorder's `--max-infile-bytes` for the command, or a `--redact` capture. A replay
    /// cannot send them again: it should skip the command and count it.
    #[serde(with = "serde_bytes")]
    pub content: Option<Vec<u8>>,
}

/// Command kinds, for tags, filters and per-kind counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CmdKind {
    Query,
    Prepare,
    Execute,
    SendLongData,
    StmtClose,
    StmtReset,
    StmtFetch,
    InitDb,
    ChangeUser,
    Ping,
    ResetConnection,
    Quit,
    Statistics,
    FieldList,
    Other,
}

impl CmdKind {
    pub const ALL: [CmdKind; 15] = [
        CmdKind::Query,
        CmdKind::Prepare,
        CmdKind::Execute,
        CmdKind::SendLongData,
        CmdKind::StmtClose,
        CmdKind::StmtReset,
        CmdKind::StmtFetch,
        CmdKind::InitDb,
        CmdKind::ChangeUser,
        CmdKind::Ping,
        CmdKind::ResetConnection,
        CmdKind::Quit,
        CmdKind::Statistics,
        CmdKind::FieldList,
        CmdKind::Other,
    ];

    /// Stable lower-case name, used in metrics tags and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CmdKind::Query => "query",
            CmdKind::Prepare => "prepare",
            CmdKind::Execute => "execute",
            CmdKind::SendLongData => "send_long_data",
            CmdKind::StmtClose => "stmt_close",
            CmdKind::StmtReset => "stmt_reset",
            CmdKind::StmtFetch => "stmt_fetch",
            CmdKind::InitDb => "init_db",
            CmdKind::ChangeUser => "change_user",
            CmdKind::Ping => "ping",
            CmdKind::ResetConnection => "reset_connection",
            CmdKind::Quit => "quit",
            CmdKind::Statistics => "statistics",
            CmdKind::FieldList => "field_list",
            CmdKind::Other => "other",
        }
    }
}

impl fmt::Display for CmdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Cmd {
    pub fn kind(&self) -> CmdKind {
        match self {
            Cmd::Query { .. } => CmdKind::Query,
            Cmd::Prepare { .. } => CmdKind::Prepare,
            Cmd::Execute { .. } => CmdKind::Execute,
            Cmd::SendLongData { .. } => CmdKind::SendLongData,
            Cmd::StmtClose { .. } => CmdKind::StmtClose,
            Cmd::StmtReset { .. } => CmdKind::StmtReset,
            Cmd::StmtFetch { .. } => CmdKind::StmtFetch,
            Cmd::InitDb { .. } => CmdKind::InitDb,
            Cmd::ChangeUser { .. } => CmdKind::ChangeUser,
            Cmd::Ping => CmdKind::Ping,
            Cmd::ResetConnection => CmdKind::ResetConnection,
            Cmd::Quit => CmdKind::Quit,
            Cmd::Statistics => CmdKind::Statistics,
            Cmd::FieldList { .. } => CmdKind::FieldList,
            Cmd::Other { .. } => CmdKind::Other,
            // On the wire it is a COM_QUERY: per-kind counts and tags stay comparable.
            Cmd::LoadLocal { .. } => CmdKind::Query,
        }
    }

    /// The SQL text of a query (LOAD DATA LOCAL included) or prepare.
    pub fn sql(&self) -> Option<&[u8]> {
        match self {
            Cmd::Query { sql } | Cmd::Prepare { sql, .. } | Cmd::LoadLocal { sql, .. } => Some(sql),
            _ => None,
        }
    }

    /// The SQL text, with invalid UTF-8 replaced, for display.
    pub fn sql_lossy(&self) -> Option<std::borrow::Cow<'_, str>> {
        self.sql().map(String::from_utf8_lossy)
    }

    /// Whether the server answers this command (STMT_CLOSE, SEND_LONG_DATA and QUIT
    /// have no response).
    pub fn expects_response(&self) -> bool {
        !matches!(
            self,
            Cmd::StmtClose { .. } | Cmd::SendLongData { .. } | Cmd::Quit
        )
    }
}

/// One bound parameter of COM_STMT_EXECUTE.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// MySQL column type code the client bound (MYSQL_TYPE_*).
    pub column_type: u8,
    /// The UNSIGNED flag of the bound type.
    pub unsigned: bool,
    pub value: Value,
}

/// A parameter value, as the binary protocol carries it (mirrors `mysql_common::Value`,
/// so the replayer can bind it without conversion).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    Int(i64),
    UInt(u64),
    Float(f32),
    Double(f64),
    /// year, month, day, hour, minute, second, microsecond
    Date(u16, u8, u8, u8, u8, u8, u32),
    /// negative, days, hours, minutes, seconds, microseconds
    Time(bool, u32, u8, u8, u8, u32),
    /// Removed by `recorder --redact`.
    Redacted,
}

impl Value {
    /// The value as a SQL literal (strings quoted, `'` and `\\` escaped; dates and times
    /// quoted with microseconds), for showing or explaining a statement with its
    /// parameters filled in; `None` for a redacted value.
    pub fn sql_literal(&self) -> Option<String> {
        Some(match self {
            Value::Null => "NULL".into(),
            Value::Int(i) => i.to_string(),
            Value::UInt(u) => u.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Double(d) => d.to_string(),
            Value::Bytes(b) => {
                let s = String::from_utf8_lossy(b);
                format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
            }
            Value::Date(y, mo, d, h, mi, s, us) => {
                format!("'{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{us:06}'")
            }
            Value::Time(neg, d, h, m, s, us) => {
                let sign = if *neg { "-" } else { "" };
                let hours = u64::from(*d) * 24 + u64::from(*h);
                format!("'{sign}{hours}:{m:02}:{s:02}.{us:06}'")
            }
            Value::Redacted => return None,
        })
    }
}

/// What the server answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// OK packet (for multi-result commands: the last one, with affected rows summed).
    Ok {
        affected_rows: u64,
        last_insert_id: u64,
        warnings: u16,
    },
    /// One or more result sets; `count` is the total number of rows sent, `digest`
    /// their [`crate::digest`] (absent when the recorder ran with `--no-result-digest`,
    /// could not follow a row, or the file is older than version 3).
    Rows {
        count: u64,
        warnings: u16,
        digest: Option<Digest>,
    },
    /// ERR packet.
    Err {
        code: u16,
        /// Five-character SQLSTATE, empty if the server sent none.
        sqlstate: String,
        /// Empty in redacted captures (messages quote values).
        message: String,
    },
    /// The connection ended before the response was complete.
    Dropped,
    /// The command has no response (STMT_CLOSE, SEND_LONG_DATA, QUIT).
    NoResponse,
}

impl Outcome {
    pub fn is_err(&self) -> bool {
        matches!(self, Outcome::Err { .. })
    }

    /// Rows returned or affected: the number a replay compares.
    pub fn rows(&self) -> u64 {
        match *self {
            Outcome::Ok { affected_rows, .. } => affected_rows,
            Outcome::Rows { count, .. } => count,
            _ => 0,
        }
    }

    /// The digest of the rows returned, if kept.
    pub fn digest(&self) -> Option<Digest> {
        match *self {
            Outcome::Rows { digest, .. } => digest,
            _ => None,
        }
    }

    /// Warnings the server reported (0 for errors and missing responses).
    pub fn warnings(&self) -> u16 {
        match *self {
            Outcome::Ok { warnings, .. } | Outcome::Rows { warnings, .. } => warnings,
            _ => 0,
        }
    }

    pub fn error_code(&self) -> Option<u16> {
        match *self {
            Outcome::Err { code, .. } => Some(code),
            _ => None,
        }
    }
}
