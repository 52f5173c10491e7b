//! The part of the MySQL protocol a relay has to understand: where each response ends,
//! and what a command and its outcome were. Packet contents are parsed with
//! mysql_common; this module only owns the state machine.

use std::sync::Arc;

use captures::Outcome;
use captures::digest::Columns;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    CommonOkPacket, ErrPacket, HandshakePacket, HandshakeResponse, OkPacketDeserializer,
    OldEofPacket, ResultSetTerminator,
};

use crate::codec::command::Expect;
use crate::codec::framing::MAX_PAYLOAD;
use crate::digest::RowDigest;

/// CLIENT_SSL is stripped from the relayed greeting unless the recorder terminates TLS
/// itself (the relay reads plaintext). The compression flags are relayed as offered:
/// the relay decodes compressed frames (see [`crate::codec::compress`]).
pub const CLIENT_SSL: u32 = 0x0000_0800;
pub const CLIENT_COMPRESS: u32 = 0x0000_0020;
/// CLIENT_ZSTD_COMPRESSION_ALGORITHM (MySQL 8).
pub const CLIENT_ZSTD: u32 = 0x0400_0000;

/// MariaDB's extended capabilities (the 4 bytes in the greeting's filler, used when the
/// server clears CLIENT_MYSQL). Bulk execution (COM_STMT_BULK_EXECUTE) is stripped: the
/// relay cannot decode it and would have to pass the connection through uncaptured.
/// Metadata caching is kept and followed (see `Response::skip_metadata_possible`).
pub const MARIADB_CLIENT_STMT_BULK_OPERATIONS: u32 = 0x0000_0004;
pub const MARIADB_CLIENT_CACHE_METADATA: u32 = 0x0000_0010;
pub const MARIADB_CLIENT_BULK_UNIT_RESULTS: u32 = 0x0000_0020;
const CLIENT_MYSQL: u32 = 0x0000_0001;

/// MariaDB sends progress reports as ERR packets with this code (before the real answer).
const PROGRESS_REPORT: u16 = 0xFFFF;

/// What the greeting told us, after patching its capabilities in place.
#[derive(Debug, Clone)]
pub struct Greeting {
    pub server_version: String,
    pub connection_id: u32,
    /// Capabilities as relayed to the client.
    pub capabilities: u32,
    /// Capabilities as the server sent them.
    pub server_capabilities: u32,
    /// MariaDB extended capabilities as relayed (0 for MySQL).
    pub mariadb_capabilities: u32,
}

/// Parses the server greeting, clears the `strip` capabilities and sets the `set` ones
/// in `payload` (in place, so every other byte is relayed as the server sent it).
pub fn patch_greeting(payload: &mut [u8], strip: u32, set: u32) -> Option<Greeting> {
    let (server_version, connection_id, capabilities, mariadb_capabilities) = {
        let hs: HandshakePacket<'_> = ParseBuf(payload).parse(()).ok()?;
        (
            String::from_utf8_lossy(hs.server_version_ref()).into_owned(),
            hs.connection_id(),
            hs.capabilities().bits(),
            hs.mariadb_ext_capabilities().bits(),
        )
    };
    // protocol(1) version\0 conn_id(4) auth1(8) filler(1) caps_lo(2) charset(1)
    // status(2) caps_hi(2) auth_len(1) reserved(6) mariadb_caps(4)
    let nul = payload.iter().skip(1).position(|b| *b == 0)? + 1;
    let lo = nul + 1 + 4 + 8 + 1;
    let hi = lo + 2 + 1 + 2;
    let patch = |bits: u16, shift: u32| (bits & !((strip >> shift) as u16)) | (set >> shift) as u16;
    if payload.len() >= hi + 2 {
        let caps_lo = patch(u16::from_le_bytes([payload[lo], payload[lo + 1]]), 0);
        payload[lo..lo + 2].copy_from_slice(&caps_lo.to_le_bytes());
        let caps_hi = patch(u16::from_le_bytes([payload[hi], payload[hi + 1]]), 16);
        payload[hi..hi + 2].copy_from_slice(&caps_hi.to_le_bytes());
    } else if payload.len() >= lo + 2 {
        let caps_lo = patch(u16::from_le_bytes([payload[lo], payload[lo + 1]]), 0);
        payload[lo..lo + 2].copy_from_slice(&caps_lo.to_le_bytes());
    }
    let mut mariadb_capabilities = mariadb_capabilities;
    let ext = hi + 2 + 1 + 6;
    if capabilities & CLIENT_MYSQL == 0 && payload.len() >= ext + 4 {
        mariadb_capabilities &=
            !(MARIADB_CLIENT_STMT_BULK_OPERATIONS | MARIADB_CLIENT_BULK_UNIT_RESULTS);
        payload[ext..ext + 4].copy_from_slice(&mariadb_capabilities.to_le_bytes());
    } else {
        mariadb_capabilities = 0;
    }
    Some(Greeting {
        server_version,
        connection_id,
        capabilities: (capabilities & !strip) | set,
        server_capabilities: capabilities,
        mariadb_capabilities,
    })
}

/// The client's login: who, which database, what it can do. Never the password.
#[derive(Debug, Clone)]
pub struct Login {
    pub user: String,
    pub db: Option<String>,
    pub capabilities: u32,
    /// MariaDB extended capabilities the client asked for (0 when it speaks plain MySQL).
    pub mariadb_capabilities: u32,
    pub charset: u8,
    pub max_packet_size: u32,
    pub auth_plugin: String,
}

/// Whether a handshake response is really an SSLRequest (32 bytes, CLIENT_SSL set).
pub fn is_ssl_request(payload: &[u8]) -> bool {
    payload.len() == 32
        && u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) & CLIENT_SSL != 0
}

/// Sets or clears CLIENT_SSL in a login packet's payload, in place: a login relayed to a
/// plaintext upstream must not claim TLS (the server would start a TLS handshake), and one
/// relayed over TLS the recorder opened must claim it, as the SSLRequest before it did.
/// CLIENT_SSL lives in the low 16 bits, which old and 4.1 logins both start with.
pub fn set_login_ssl(payload: &mut [u8], ssl: bool) {
    if let Some(lo) = payload.get_mut(0..2) {
        let mut caps = u16::from_le_bytes([lo[0], lo[1]]);
        if ssl {
            caps |= CLIENT_SSL as u16;
        } else {
            caps &= !(CLIENT_SSL as u16);
        }
        lo.copy_from_slice(&caps.to_le_bytes());
    }
}

/// The SSLRequest the recorder sends the upstream for a client that logged in without
/// TLS: the login's own capabilities plus CLIENT_SSL, as a client would send it.
pub fn ssl_request(login: &Login) -> Vec<u8> {
    use mysql_common::constants::MariadbCapabilities;
    use mysql_common::proto::MySerialize;
    let request = mysql_common::packets::SslRequest::new(
        CapabilityFlags::from_bits_retain(login.capabilities | CLIENT_SSL),
        login.max_packet_size,
        login.charset,
    )
    .with_mariadb_capabilities(MariadbCapabilities::from_bits_retain(
        login.mariadb_capabilities,
    ));
    let mut payload = Vec::with_capacity(32);
    request.serialize(&mut payload);
    payload
}

pub fn parse_login(payload: &[u8]) -> Option<Login> {
    let r: HandshakeResponse<'_> = ParseBuf(payload).parse(()).ok()?;
    Some(Login {
        user: String::from_utf8_lossy(r.user()).into_owned(),
        db: r
            .db_name()
            .filter(|d| !d.is_empty())
            .map(|d| String::from_utf8_lossy(d).into_owned()),
        capabilities: r.capabilities().bits(),
        mariadb_capabilities: if r.capabilities().bits() & CLIENT_MYSQL == 0 {
            r.mariadb_ext_capabilities().bits()
        } else {
            0
        },
        charset: r.collation(),
        // Not exposed by mysql_common; fixed at bytes 4..8 of every 4.1 login.
        max_packet_size: payload
            .get(4..8)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        auth_plugin: r
            .auth_plugin()
            .map(|p| String::from_utf8_lossy(p.as_bytes()).into_owned())
            .unwrap_or_default(),
    })
}

/// The response state machine: feed it each server packet's payload in order; it says
/// when the response is complete and what it amounted to.
#[derive(Debug)]
pub struct Response {
    caps: CapabilityFlags,
    state: State,
    rows: u64,
    affected: u64,
    last_insert_id: u64,
    warnings: u16,
    result_set: bool,
    /// A binary result set whose column definitions MariaDB may leave out because the
    /// client cached them (MARIADB_CLIENT_CACHE_METADATA, COM_STMT_EXECUTE only).
    skip_metadata_possible: bool,
    /// A COM_STMT_EXECUTE that asked for a cursor: only then does SERVER_STATUS_CURSOR_EXISTS
    /// after the column definitions mean "no rows now, they come through COM_STMT_FETCH".
    cursor_possible: bool,
    /// Set by PREPARE_OK: (statement id, params, columns).
    pub prepared: Option<(u32, u16, u16)>,
    error: Option<(u16, String, String)>,
    /// Status flags of the OK/EOF that completed the response (see [`Response::status`]).
    status: Option<StatusFlags>,
    /// The rows' digest, when the command is captured with digests.
    rows_digest: Option<RowDigest>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The first packet of a response (or of the next result of a multi-result one).
    First,
    OkOrErr,
    Columns(u64),
    ColumnsEof,
    Rows,
    PrepareParams(u16, u16),
    PrepareParamsEof(u16),
    PrepareColumns(u16),
    PrepareColumnsEof,
    FieldList,
    Statistics,
    Done,
}

/// What one packet did to the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    More,
    /// The server asks for a local file: relay client packets up to an empty one, then
    /// keep feeding server packets.
    LocalInfile,
    Done,
}

impl Response {
    pub fn new(expect: Expect, deprecate_eof: bool, capabilities: u32) -> Self {
        let mut caps = CapabilityFlags::from_bits_truncate(capabilities);
        caps.set(CapabilityFlags::CLIENT_DEPRECATE_EOF, deprecate_eof);
        let state = match expect {
            Expect::Results | Expect::Prepare => State::First,
            Expect::Fetch => State::Rows,
            Expect::FieldList => State::FieldList,
            Expect::Statistics => State::Statistics,
            _ => State::OkOrErr,
        };
        Response {
            caps,
            state,
            rows: 0,
            affected: 0,
            last_insert_id: 0,
            warnings: 0,
            result_set: false,
            skip_metadata_possible: false,
            cursor_possible: false,
            prepared: None,
            error: None,
            status: None,
            rows_digest: None,
        }
    }

    /// Digest the rows (and read the column definitions) as they pass.
    pub fn digest(mut self, digest: Option<RowDigest>) -> Self {
        self.rows_digest = digest;
        self
    }

    /// Column definitions the response carried (a PREPARE_OK's, or an EXECUTE's first
    /// result set's), when digesting: what a statement caches for later executes.
    pub fn columns_seen(&self) -> Option<Arc<Columns>> {
        self.rows_digest.as_ref().and_then(RowDigest::seen)
    }

    /// For COM_STMT_EXECUTE on a session that negotiated MariaDB metadata caching: the
    /// column count then carries a "metadata follows" byte, and 0 there means no column
    /// definitions (the EOF after them still follows the CLIENT_DEPRECATE_EOF rule).
    pub fn skip_metadata_possible(mut self, possible: bool) -> Self {
        self.skip_metadata_possible = possible;
        self
    }

    /// For a COM_STMT_EXECUTE whose flags ask for a cursor (see [`crate::codec::command::execute_opens_cursor`]).
    /// Elsewhere the flag is noise: MariaDB leaks it from a stored procedure's own cursor
    /// into the EOF of the result sets the procedure sends (`CALL p()` that OPENs a cursor
    /// and SELECTs), and those rows follow as usual.
    pub fn cursor_possible(mut self, possible: bool) -> Self {
        self.cursor_possible = possible;
        self
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    /// Feeds one logical packet (continuations joined, or at least its first bytes and
    /// true length for rows). `Err` means the server sent something impossible here.
    pub fn feed(&mut self, payload: &[u8], expect: Expect) -> Result<Step, String> {
        let first = *payload.first().ok_or("empty packet")?;
        // An ERR packet can end any response (a progress report ends nothing).
        // (0xff never starts a row, column definition or PREPARE_OK; COM_STATISTICS
        // answers free text.)
        if first == 0xff && self.state != State::Statistics {
            // A MariaDB progress report (ALTER TABLE, LOAD DATA...) is an ERR packet with
            // code 0xFFFF and its own layout. It is negotiated with MARIADB_CLIENT_PROGRESS
            // in the extended capabilities, which mysql_common's parser does not look at
            // (it wants CLIENT_PROGRESS_OBSOLETE), so recognise it before parsing.
            if payload.get(1..3) == Some(&PROGRESS_REPORT.to_le_bytes()[..]) {
                return Ok(Step::More);
            }
            let err: ErrPacket<'_> = ParseBuf(payload)
                .parse(self.caps)
                .map_err(|e| format!("bad ERR packet: {e}"))?;
            return match err {
                ErrPacket::Progress(_) => Ok(Step::More),
                ErrPacket::Error(e) => {
                    self.error = Some((
                        e.error_code(),
                        e.sql_state_ref()
                            .map(|s| s.as_str().into_owned())
                            .unwrap_or_default(),
                        String::from_utf8_lossy(e.message_ref()).into_owned(),
                    ));
                    self.state = State::Done;
                    Ok(Step::Done)
                }
            };
        }
        match self.state {
            State::First => match first {
                0x00 if expect == Expect::Prepare => {
                    if payload.len() < 12 {
                        return Err("short PREPARE_OK".into());
                    }
                    let id = u32::from_le_bytes([payload[1], payload[2], payload[3], payload[4]]);
                    let columns = u16::from_le_bytes([payload[5], payload[6]]);
                    let params = u16::from_le_bytes([payload[7], payload[8]]);
                    self.warnings = u16::from_le_bytes([payload[10], payload[11]]);
                    self.prepared = Some((id, params, columns));
                    self.state = if params > 0 {
                        State::PrepareParams(params, columns)
                    } else if columns > 0 {
                        State::PrepareColumns(columns)
                    } else {
                        State::Done
                    };
                    Ok(self.step())
                }
                0x00 => {
                    let ok = ParseBuf(payload)
                        .parse::<OkPacketDeserializer<'_, CommonOkPacket>>(self.caps)
                        .map_err(|e| format!("bad OK packet: {e}"))?
                        .into_inner();
                    self.affected += ok.affected_rows();
                    self.last_insert_id = ok.last_insert_id().unwrap_or(self.last_insert_id);
                    self.warnings = self.warnings.saturating_add(ok.warnings());
                    self.after_result(ok.status_flags());
                    Ok(self.step())
                }
                0xfb if expect == Expect::Results => Ok(Step::LocalInfile),
                _ => {
                    let mut buf = ParseBuf(payload);
                    let columns = buf.checked_eat_lenenc_int().ok_or("bad column count")?;
                    if columns == 0 {
                        return Err("result set with zero columns".into());
                    }
                    self.result_set = true;
                    let metadata_follows =
                        !self.skip_metadata_possible || buf.0.first() != Some(&0);
                    if let Some(d) = &mut self.rows_digest {
                        d.result_set(metadata_follows);
                    }
                    self.state = match (metadata_follows, self.deprecate_eof()) {
                        (true, _) => State::Columns(columns),
                        (false, true) => State::Rows,
                        (false, false) => State::ColumnsEof,
                    };
                    Ok(Step::More)
                }
            },
            State::OkOrErr => {
                // Parsed leniently, as before statuses were kept: an odd OK still ends
                // the response, only without a status.
                self.status = match first {
                    0x00 => ParseBuf(payload)
                        .parse::<OkPacketDeserializer<'_, CommonOkPacket>>(self.caps)
                        .ok()
                        .map(|ok| {
                            let ok = ok.into_inner();
                            self.affected = ok.affected_rows();
                            self.warnings = ok.warnings();
                            ok.status_flags()
                        }),
                    // COM_SET_OPTION answers EOF (OK-as-EOF under CLIENT_DEPRECATE_EOF).
                    0xfe => self.terminator_status(payload, self.deprecate_eof()).ok(),
                    _ => return Err(format!("expected OK or ERR, got 0x{first:02x}")),
                };
                self.state = State::Done;
                Ok(Step::Done)
            }
            State::Columns(n) => {
                if let Some(d) = &mut self.rows_digest {
                    d.definition(payload, n == 1);
                }
                self.state = match (n - 1, self.deprecate_eof()) {
                    (0, true) => State::Rows,
                    (0, false) => State::ColumnsEof,
                    (left, _) => State::Columns(left),
                };
                Ok(Step::More)
            }
            State::ColumnsEof => {
                let status = self.terminator_status(payload, false)?;
                // An open cursor: rows come later through COM_STMT_FETCH.
                if self.cursor_possible && status.contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS)
                {
                    self.after_result(status);
                } else {
                    self.state = State::Rows;
                }
                Ok(self.step())
            }
            State::Rows => {
                if self.is_terminator(payload) {
                    let status = self.terminator_status(payload, self.deprecate_eof())?;
                    self.after_result(status);
                    Ok(self.step())
                } else {
                    self.rows += 1;
                    if let Some(d) = &mut self.rows_digest {
                        d.row(payload);
                    }
                    Ok(Step::More)
                }
            }
            State::PrepareParams(n, columns) => {
                self.state = match (n - 1, self.deprecate_eof()) {
                    (0, true) if columns > 0 => State::PrepareColumns(columns),
                    (0, true) => State::Done,
                    (0, false) => State::PrepareParamsEof(columns),
                    (left, _) => State::PrepareParams(left, columns),
                };
                Ok(self.step())
            }
            State::PrepareParamsEof(columns) => {
                self.state = if columns > 0 {
                    State::PrepareColumns(columns)
                } else {
                    State::Done
                };
                Ok(self.step())
            }
            State::PrepareColumns(n) => {
                if let Some(d) = &mut self.rows_digest {
                    d.definition(payload, n == 1);
                }
                self.state = match (n - 1, self.deprecate_eof()) {
                    (0, true) => State::Done,
                    (0, false) => State::PrepareColumnsEof,
                    (left, _) => State::PrepareColumns(left),
                };
                Ok(self.step())
            }
            State::PrepareColumnsEof => {
                self.state = State::Done;
                Ok(Step::Done)
            }
            State::FieldList => {
                if self.is_terminator(payload) {
                    self.status = self.terminator_status(payload, self.deprecate_eof()).ok();
                    self.state = State::Done;
                    Ok(Step::Done)
                } else {
                    self.rows += 1;
                    Ok(Step::More)
                }
            }
            State::Statistics => {
                self.state = State::Done;
                Ok(Step::Done)
            }
            State::Done => Err("a packet after the response was complete".into()),
        }
    }

    fn step(&self) -> Step {
        if self.state == State::Done {
            Step::Done
        } else {
            Step::More
        }
    }

    /// After an OK or a result set's end: another result follows, or we are done.
    /// The last result's status is the one kept: it tells the session state after the
    /// whole command.
    fn after_result(&mut self, status: StatusFlags) {
        if status.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS) {
            self.state = State::First;
        } else {
            self.state = State::Done;
            self.status = Some(status);
        }
    }

    /// EOF (old, < 9 bytes) or OK-with-0xFE (CLIENT_DEPRECATE_EOF) ending rows.
    fn is_terminator(&self, payload: &[u8]) -> bool {
        payload[0] == 0xfe
            && if self.deprecate_eof() {
                payload.len() < MAX_PAYLOAD
            } else {
                payload.len() < 9
            }
    }

    fn terminator_status(&mut self, payload: &[u8], as_ok: bool) -> Result<StatusFlags, String> {
        let ok = if as_ok {
            ParseBuf(payload)
                .parse::<OkPacketDeserializer<'_, ResultSetTerminator>>(self.caps)
                .map_err(|e| format!("bad result set terminator: {e}"))?
                .into_inner()
        } else {
            ParseBuf(payload)
                .parse::<OkPacketDeserializer<'_, OldEofPacket>>(self.caps)
                .map_err(|e| format!("bad EOF packet: {e}"))?
                .into_inner()
        };
        self.warnings = self.warnings.saturating_add(ok.warnings());
        Ok(ok.status_flags())
    }

    /// Server status flags (`SERVER_STATUS_*`) of the OK or EOF that ended the response,
    /// the final one of a multi-result response. `None` if it ended in ERR (an ERR
    /// carries no status, and one after a partial multi-result voids the earlier OKs) or
    /// in a packet without status (PREPARE_OK, COM_STATISTICS).
    pub fn status(&self) -> Option<u16> {
        match self.error {
            Some(_) => None,
            None => self.status.map(|s| s.bits()),
        }
    }

    /// What the whole response amounted to.
    pub fn outcome(&self) -> Outcome {
        if let Some((code, sqlstate, message)) = &self.error {
            return Outcome::Err {
                code: *code,
                sqlstate: sqlstate.clone(),
                message: message.clone(),
            };
        }
        if self.result_set {
            Outcome::Rows {
                count: self.rows,
                warnings: self.warnings,
                digest: self.rows_digest.as_ref().and_then(RowDigest::digest),
            }
        } else {
            Outcome::Ok {
                affected_rows: self.affected,
                last_insert_id: self.last_insert_id,
                warnings: self.warnings,
            }
        }
    }
}

/// The status flags of an OK packet (one ending an authentication exchange), if it
/// parses as one.
pub fn ok_status(payload: &[u8], capabilities: u32) -> Option<u16> {
    let caps = CapabilityFlags::from_bits_truncate(capabilities);
    let ok = ParseBuf(payload)
        .parse::<OkPacketDeserializer<'_, CommonOkPacket>>(caps)
        .ok()?;
    Some(ok.into_inner().status_flags().bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eof_rules_follow_deprecate_eof() {
        let r = Response::new(Expect::Results, false, 0);
        assert!(r.is_terminator(&[0xfe, 0, 0, 2, 0]));
        assert!(!r.is_terminator(&[0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
        let r = Response::new(Expect::Results, true, 0);
        assert!(r.is_terminator(&[0xfe, 0, 0, 2, 0, 0, 0]));
    }

    #[test]
    fn a_text_result_set_ends_at_its_eof() {
        let mut r = Response::new(Expect::Results, false, 0);
        assert_eq!(r.feed(&[1], Expect::Results), Ok(Step::More)); // 1 column
        assert_eq!(r.feed(b"\x03defcoldef", Expect::Results), Ok(Step::More));
        assert_eq!(r.feed(&[0xfe, 0, 0, 2, 0], Expect::Results), Ok(Step::More));
        assert_eq!(r.feed(b"\x01a", Expect::Results), Ok(Step::More));
        assert_eq!(r.feed(b"\x01b", Expect::Results), Ok(Step::More));
        assert_eq!(r.feed(&[0xfe, 0, 0, 2, 0], Expect::Results), Ok(Step::Done));
        assert_eq!(
            r.outcome(),
            Outcome::Rows {
                count: 2,
                warnings: 0,
                digest: None
            }
        );
        assert_eq!(r.status(), Some(captures::status::AUTOCOMMIT));
    }

    #[test]
    fn more_results_keep_the_response_open() {
        let mut r = Response::new(Expect::Results, true, 0);
        // OK with SERVER_MORE_RESULTS_EXISTS (0x0008), then a final OK.
        assert_eq!(
            r.feed(&[0, 1, 0, 8, 0, 0, 0], Expect::Results),
            Ok(Step::More)
        );
        assert_eq!(
            r.feed(&[0, 2, 0, 2, 0, 0, 0], Expect::Results),
            Ok(Step::Done)
        );
        assert!(matches!(
            r.outcome(),
            Outcome::Ok {
                affected_rows: 3,
                ..
            }
        ));
        assert_eq!(r.status(), Some(captures::status::AUTOCOMMIT));
    }

    #[test]
    fn the_status_is_the_final_ok_or_eofs() {
        use captures::status::{AUTOCOMMIT, IN_TRANS};
        // OK-as-EOF (CLIENT_DEPRECATE_EOF) ending a result set inside a transaction.
        let mut r = Response::new(Expect::Results, true, 0);
        assert_eq!(r.feed(&[1], Expect::Results), Ok(Step::More));
        assert_eq!(r.feed(b"\x03defcoldef", Expect::Results), Ok(Step::More));
        assert_eq!(r.feed(b"\x01a", Expect::Results), Ok(Step::More));
        assert_eq!(
            r.feed(&[0xfe, 0, 0, 3, 0, 0, 0], Expect::Results),
            Ok(Step::Done)
        );
        assert_eq!(r.status(), Some(IN_TRANS | AUTOCOMMIT));
        // A multi-result response whose second statement fails: no status.
        let mut r = Response::new(Expect::Results, true, 0);
        assert_eq!(
            r.feed(&[0, 1, 0, 0x0b, 0, 0, 0], Expect::Results),
            Ok(Step::More)
        );
        let err = b"\xff\x7a\x04#42S02no such table";
        assert_eq!(r.feed(err, Expect::Results), Ok(Step::Done));
        assert_eq!(r.status(), None);
        // PREPARE_OK: id 1, no columns, no params; it carries no status.
        let mut r = Response::new(Expect::Prepare, true, 0);
        let prepare_ok = [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(r.feed(&prepare_ok, Expect::Prepare), Ok(Step::Done));
        assert_eq!(r.status(), None);
        // An OK-or-ERR command (COM_PING) and an old EOF (COM_SET_OPTION).
        let mut r = Response::new(Expect::OkOrErr, false, 0);
        assert_eq!(
            r.feed(&[0, 0, 0, 2, 0, 0, 0], Expect::OkOrErr),
            Ok(Step::Done)
        );
        assert_eq!(r.status(), Some(AUTOCOMMIT));
        let mut r = Response::new(Expect::OkOrErr, false, 0);
        assert_eq!(r.feed(&[0xfe, 0, 0, 1, 0], Expect::OkOrErr), Ok(Step::Done));
        assert_eq!(r.status(), Some(IN_TRANS));
        assert_eq!(ok_status(&[0, 0, 0, 0x22, 0, 0, 0], 0), Some(0x22));
    }

    #[test]
    fn cached_metadata_skips_the_column_definitions() {
        // MariaDB, MARIADB_CLIENT_CACHE_METADATA: column count 2, "metadata follows" = 0,
        // so the rows come at once (this hung the relay before it knew).
        let mut r = Response::new(Expect::Results, true, 0).skip_metadata_possible(true);
        assert_eq!(r.feed(&[2, 0], Expect::Results), Ok(Step::More));
        assert_eq!(
            r.feed(&[0, 0, 1, b'a', 1, b'b'], Expect::Results),
            Ok(Step::More)
        );
        assert_eq!(
            r.feed(&[0xfe, 0, 0, 2, 0, 0, 0], Expect::Results),
            Ok(Step::Done)
        );
        assert_eq!(
            r.outcome(),
            Outcome::Rows {
                count: 1,
                warnings: 0,
                digest: None
            }
        );
        // "metadata follows" = 1: definitions as usual.
        let mut r = Response::new(Expect::Results, true, 0).skip_metadata_possible(true);
        assert_eq!(r.feed(&[1, 1], Expect::Results), Ok(Step::More));
        assert_eq!(r.feed(b"\x03defcoldef", Expect::Results), Ok(Step::More));
        assert_eq!(r.feed(&[0, 0, 1, b'a'], Expect::Results), Ok(Step::More));
        assert_eq!(
            r.feed(&[0xfe, 0, 0, 2, 0, 0, 0], Expect::Results),
            Ok(Step::Done)
        );
    }

    #[test]
    fn cursor_exists_ends_the_response_only_for_a_cursor_execute() {
        // Column count, one definition, EOF with CURSOR_EXISTS | MORE_RESULTS |
        // AUTOCOMMIT (0x004a), as MariaDB sends for `CALL p()` when p has a cursor open.
        let leak: [&[u8]; 3] = [&[1], b"\x03defcoldef", &[0xfe, 0, 0, 0x4a, 0]];
        let mut r = Response::new(Expect::Results, false, 0);
        for p in leak {
            assert_eq!(r.feed(p, Expect::Results), Ok(Step::More));
        }
        assert_eq!(r.feed(b"\x011", Expect::Results), Ok(Step::More)); // a row
        assert_eq!(
            r.feed(&[0xfe, 0, 0, 0x4a, 0], Expect::Results),
            Ok(Step::More)
        );
        assert_eq!(
            r.feed(&[0, 0, 0, 0x22, 0, 0, 0], Expect::Results),
            Ok(Step::Done)
        );
        // A COM_STMT_EXECUTE that asked for a cursor: the EOF ends it, rows come by FETCH.
        let mut r = Response::new(Expect::Results, false, 0).cursor_possible(true);
        assert_eq!(r.feed(&[1], Expect::Results), Ok(Step::More));
        assert_eq!(r.feed(b"\x03defcoldef", Expect::Results), Ok(Step::More));
        assert_eq!(
            r.feed(&[0xfe, 0, 0, 0x42, 0], Expect::Results),
            Ok(Step::Done)
        );
    }

    #[test]
    fn a_progress_report_ends_nothing() {
        // ERR 0xFFFF: stage 1 of 2, 50.000%, "copy" (MariaDB's progress report layout).
        let progress = [
            0xff, 0xff, 0xff, 1, 1, 2, 0x50, 0xc3, 0, 4, b'c', b'o', b'p', b'y',
        ];
        let mut r = Response::new(Expect::Results, false, 0x0200);
        assert_eq!(r.feed(&progress, Expect::Results), Ok(Step::More));
        assert_eq!(
            r.feed(&[0, 0, 0, 2, 0, 0, 0], Expect::Results),
            Ok(Step::Done)
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut r = Response::new(Expect::OkOrErr, true, 0);
        assert!(r.feed(&[0x42], Expect::OkOrErr).is_err());
    }
}
