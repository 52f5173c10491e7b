//! The response state machine: where each response ends, and what it amounted to.
//! Packet contents are read by [`super::packets`]; this module owns the states.

use std::sync::Arc;

use captures::Outcome;
use captures::digest::Columns;
use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;

use super::CodecError;
use super::command::Expect;
use super::digest::RowDigest;
use super::packets::{self, EOF, ERR, LOCAL_INFILE, OK, Prepared, ServerErr};

/// The response state machine: feed it each server packet's payload in order; it says
/// when the response is complete and what it amounted to.
#[derive(Debug)]
pub struct Response {
    expect: Expect,
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
    /// What a PREPARE_OK announced.
    prepared: Option<Prepared>,
    error: Option<ServerErr>,
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
    /// The response to a command expecting `expect`, on a session with capabilities `caps`
    /// (CLIENT_DEPRECATE_EOF among them decides how result sets end).
    pub fn new(expect: Expect, caps: CapabilityFlags) -> Self {
        let state = match expect {
            Expect::Results | Expect::Prepare => State::First,
            Expect::Fetch => State::Rows,
            Expect::FieldList => State::FieldList,
            Expect::Statistics => State::Statistics,
            _ => State::OkOrErr,
        };
        Response {
            expect,
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

    /// For a COM_STMT_EXECUTE whose flags ask for a cursor (see
    /// [`super::command::execute_opens_cursor`]). Elsewhere the flag is noise: MariaDB
    /// leaks it from a stored procedure's own cursor into the EOF of the result sets the
    /// procedure sends (`CALL p()` that OPENs a cursor and SELECTs), and those rows follow
    /// as usual.
    pub fn cursor_possible(mut self, possible: bool) -> Self {
        self.cursor_possible = possible;
        self
    }

    /// What the PREPARE_OK of a COM_STMT_PREPARE's response announced.
    pub fn prepared(&self) -> Option<Prepared> {
        self.prepared
    }

    fn deprecate_eof(&self) -> bool {
        self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF)
    }

    /// Feeds one logical packet (continuations joined, or at least its first piece: rows
    /// are told apart from terminators by their first bytes and length). `Err` means the
    /// server sent something impossible here.
    pub fn feed(&mut self, payload: &[u8]) -> Result<Step, CodecError> {
        let first = *payload.first().ok_or(CodecError::Empty)?;
        // An ERR packet can end any response (a progress report ends nothing).
        // (0xff never starts a row, column definition or PREPARE_OK; COM_STATISTICS
        // answers free text.)
        if first == ERR && self.state != State::Statistics {
            return self.err(payload);
        }
        match self.state {
            State::First => self.first(payload),
            State::OkOrErr => self.ok_or_err(payload),
            State::Columns(left) => Ok(self.column(payload, left)),
            State::ColumnsEof => self.columns_eof(payload),
            State::Rows => self.row(payload),
            State::PrepareParams(left, columns) => Ok(self.prepare_param(left, columns)),
            State::PrepareParamsEof(columns) => Ok(self.prepare_params_eof(columns)),
            State::PrepareColumns(left) => Ok(self.prepare_column(payload, left)),
            State::PrepareColumnsEof | State::Statistics => Ok(self.done()),
            State::FieldList => self.field(payload),
            State::Done => Err(CodecError::AfterEnd),
        }
    }

    /// An ERR packet: the response ends with it, unless it is a progress report.
    fn err(&mut self, payload: &[u8]) -> Result<Step, CodecError> {
        let Some(error) = packets::err(payload, self.caps)? else {
            return Ok(Step::More);
        };
        self.error = Some(error);
        Ok(self.done())
    }

    /// The first packet of a response, or of the next result: OK, PREPARE_OK, a LOCAL
    /// INFILE request, or a result set's column count.
    fn first(&mut self, payload: &[u8]) -> Result<Step, CodecError> {
        match payload.first().copied() {
            Some(OK) if self.expect == Expect::Prepare => {
                let prepared = packets::prepare_ok(payload)?;
                self.warnings = prepared.warnings;
                self.prepared = Some(prepared);
                self.state = match (prepared.params, prepared.columns) {
                    (0, 0) => State::Done,
                    (0, columns) => State::PrepareColumns(columns),
                    (params, columns) => State::PrepareParams(params, columns),
                };
                Ok(self.step())
            }
            Some(OK) => {
                let ok = packets::ok(payload, self.caps)?;
                self.affected += ok.affected_rows();
                self.last_insert_id = ok.last_insert_id().unwrap_or(self.last_insert_id);
                self.warnings = self.warnings.saturating_add(ok.warnings());
                self.after_result(ok.status_flags());
                Ok(self.step())
            }
            Some(LOCAL_INFILE) if self.expect == Expect::Results => Ok(Step::LocalInfile),
            _ => self.result_set(payload),
        }
    }

    /// A result set's column count (with MariaDB's "metadata follows" byte when the
    /// definitions may be left out).
    fn result_set(&mut self, payload: &[u8]) -> Result<Step, CodecError> {
        let mut buf = ParseBuf(payload);
        let columns = buf
            .checked_eat_lenenc_int()
            .ok_or(CodecError::ColumnCount)?;
        if columns == 0 {
            return Err(CodecError::ZeroColumns);
        }
        self.result_set = true;
        let metadata_follows = !self.skip_metadata_possible || buf.0.first() != Some(&0);
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

    /// The answer to a command that gets OK or ERR. Parsed leniently, as before statuses
    /// were kept: an odd OK still ends the response, only without a status.
    fn ok_or_err(&mut self, payload: &[u8]) -> Result<Step, CodecError> {
        self.status = match payload.first().copied() {
            Some(OK) => packets::ok(payload, self.caps).ok().map(|ok| {
                self.affected = ok.affected_rows();
                self.warnings = ok.warnings();
                ok.status_flags()
            }),
            // COM_SET_OPTION answers EOF (OK-as-EOF under CLIENT_DEPRECATE_EOF).
            Some(EOF) => self.terminator_status(payload, self.deprecate_eof()).ok(),
            Some(other) => return Err(CodecError::Unexpected(other)),
            None => return Err(CodecError::Empty),
        };
        Ok(self.done())
    }

    /// One column definition of a result set, `left` of them still to come.
    fn column(&mut self, payload: &[u8], left: u64) -> Step {
        if let Some(d) = &mut self.rows_digest {
            d.definition(payload, left == 1);
        }
        self.state = match (left - 1, self.deprecate_eof()) {
            (0, true) => State::Rows,
            (0, false) => State::ColumnsEof,
            (left, _) => State::Columns(left),
        };
        Step::More
    }

    /// The EOF after a result set's column definitions.
    fn columns_eof(&mut self, payload: &[u8]) -> Result<Step, CodecError> {
        let status = self.terminator_status(payload, false)?;
        // An open cursor: rows come later through COM_STMT_FETCH.
        if self.cursor_possible && status.contains(StatusFlags::SERVER_STATUS_CURSOR_EXISTS) {
            self.after_result(status);
        } else {
            self.state = State::Rows;
        }
        Ok(self.step())
    }

    /// A row, or the packet that ends the rows.
    fn row(&mut self, payload: &[u8]) -> Result<Step, CodecError> {
        if packets::is_terminator(payload, self.deprecate_eof()) {
            let status = self.terminator_status(payload, self.deprecate_eof())?;
            self.after_result(status);
            return Ok(self.step());
        }
        self.rows += 1;
        if let Some(d) = &mut self.rows_digest {
            d.row(payload);
        }
        Ok(Step::More)
    }

    /// One parameter definition of a PREPARE_OK, `left` of them still to come.
    fn prepare_param(&mut self, left: u16, columns: u16) -> Step {
        self.state = match (left - 1, self.deprecate_eof()) {
            (0, true) if columns > 0 => State::PrepareColumns(columns),
            (0, true) => State::Done,
            (0, false) => State::PrepareParamsEof(columns),
            (left, _) => State::PrepareParams(left, columns),
        };
        self.step()
    }

    /// The EOF after a PREPARE_OK's parameter definitions.
    fn prepare_params_eof(&mut self, columns: u16) -> Step {
        self.state = if columns > 0 {
            State::PrepareColumns(columns)
        } else {
            State::Done
        };
        self.step()
    }

    /// One column definition of a PREPARE_OK, `left` of them still to come.
    fn prepare_column(&mut self, payload: &[u8], left: u16) -> Step {
        if let Some(d) = &mut self.rows_digest {
            d.definition(payload, left == 1);
        }
        self.state = match (left - 1, self.deprecate_eof()) {
            (0, true) => State::Done,
            (0, false) => State::PrepareColumnsEof,
            (left, _) => State::PrepareColumns(left),
        };
        self.step()
    }

    /// One column definition of a COM_FIELD_LIST, or the packet that ends them.
    fn field(&mut self, payload: &[u8]) -> Result<Step, CodecError> {
        if packets::is_terminator(payload, self.deprecate_eof()) {
            self.status = self.terminator_status(payload, self.deprecate_eof()).ok();
            return Ok(self.done());
        }
        self.rows += 1;
        Ok(Step::More)
    }

    fn done(&mut self) -> Step {
        self.state = State::Done;
        Step::Done
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

    fn terminator_status(
        &mut self,
        payload: &[u8],
        as_ok: bool,
    ) -> Result<StatusFlags, CodecError> {
        let ok = packets::terminator(payload, self.caps, as_ok)?;
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
        if let Some(ServerErr {
            code,
            sqlstate,
            message,
        }) = &self.error
        {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A session's capabilities, CLIENT_DEPRECATE_EOF or not.
    fn caps(deprecate_eof: bool) -> CapabilityFlags {
        let mut caps = CapabilityFlags::empty();
        caps.set(CapabilityFlags::CLIENT_DEPRECATE_EOF, deprecate_eof);
        caps
    }

    #[test]
    fn a_text_result_set_ends_at_its_eof() {
        let mut r = Response::new(Expect::Results, caps(false));
        assert_eq!(r.feed(&[1]).unwrap(), Step::More); // 1 column
        assert_eq!(r.feed(b"\x03defcoldef").unwrap(), Step::More);
        assert_eq!(r.feed(&[0xfe, 0, 0, 2, 0]).unwrap(), Step::More);
        assert_eq!(r.feed(b"\x01a").unwrap(), Step::More);
        assert_eq!(r.feed(b"\x01b").unwrap(), Step::More);
        assert_eq!(r.feed(&[0xfe, 0, 0, 2, 0]).unwrap(), Step::Done);
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
        let mut r = Response::new(Expect::Results, caps(true));
        // OK with SERVER_MORE_RESULTS_EXISTS (0x0008), then a final OK.
        assert_eq!(r.feed(&[0, 1, 0, 8, 0, 0, 0]).unwrap(), Step::More);
        assert_eq!(r.feed(&[0, 2, 0, 2, 0, 0, 0]).unwrap(), Step::Done);
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
        let mut r = Response::new(Expect::Results, caps(true));
        assert_eq!(r.feed(&[1]).unwrap(), Step::More);
        assert_eq!(r.feed(b"\x03defcoldef").unwrap(), Step::More);
        assert_eq!(r.feed(b"\x01a").unwrap(), Step::More);
        assert_eq!(r.feed(&[0xfe, 0, 0, 3, 0, 0, 0]).unwrap(), Step::Done);
        assert_eq!(r.status(), Some(IN_TRANS | AUTOCOMMIT));
        // A multi-result response whose second statement fails: no status.
        let mut r = Response::new(Expect::Results, caps(true));
        assert_eq!(r.feed(&[0, 1, 0, 0x0b, 0, 0, 0]).unwrap(), Step::More);
        let err = b"\xff\x7a\x04#42S02no such table";
        assert_eq!(r.feed(err).unwrap(), Step::Done);
        assert_eq!(r.status(), None);
        // PREPARE_OK: id 1, no columns, no params; it carries no status.
        let mut r = Response::new(Expect::Prepare, caps(true));
        let prepare_ok = [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(r.feed(&prepare_ok).unwrap(), Step::Done);
        assert_eq!(r.status(), None);
        // An OK-or-ERR command (COM_PING) and an old EOF (COM_SET_OPTION).
        let mut r = Response::new(Expect::OkOrErr, caps(false));
        assert_eq!(r.feed(&[0, 0, 0, 2, 0, 0, 0]).unwrap(), Step::Done);
        assert_eq!(r.status(), Some(AUTOCOMMIT));
        let mut r = Response::new(Expect::OkOrErr, caps(false));
        assert_eq!(r.feed(&[0xfe, 0, 0, 1, 0]).unwrap(), Step::Done);
        assert_eq!(r.status(), Some(IN_TRANS));
    }

    #[test]
    fn cached_metadata_skips_the_column_definitions() {
        // MariaDB, MARIADB_CLIENT_CACHE_METADATA: column count 2, "metadata follows" = 0,
        // so the rows come at once (this hung the relay before it knew).
        let mut r = Response::new(Expect::Results, caps(true)).skip_metadata_possible(true);
        assert_eq!(r.feed(&[2, 0]).unwrap(), Step::More);
        assert_eq!(r.feed(&[0, 0, 1, b'a', 1, b'b']).unwrap(), Step::More);
        assert_eq!(r.feed(&[0xfe, 0, 0, 2, 0, 0, 0]).unwrap(), Step::Done);
        assert_eq!(
            r.outcome(),
            Outcome::Rows {
                count: 1,
                warnings: 0,
                digest: None
            }
        );
        // "metadata follows" = 1: definitions as usual.
        let mut r = Response::new(Expect::Results, caps(true)).skip_metadata_possible(true);
        assert_eq!(r.feed(&[1, 1]).unwrap(), Step::More);
        assert_eq!(r.feed(b"\x03defcoldef").unwrap(), Step::More);
        assert_eq!(r.feed(&[0, 0, 1, b'a']).unwrap(), Step::More);
        assert_eq!(r.feed(&[0xfe, 0, 0, 2, 0, 0, 0]).unwrap(), Step::Done);
    }

    #[test]
    fn cursor_exists_ends_the_response_only_for_a_cursor_execute() {
        // Column count, one definition, EOF with CURSOR_EXISTS | MORE_RESULTS |
        // AUTOCOMMIT (0x004a), as MariaDB sends for `CALL p()` when p has a cursor open.
        let leak: [&[u8]; 3] = [&[1], b"\x03defcoldef", &[0xfe, 0, 0, 0x4a, 0]];
        let mut r = Response::new(Expect::Results, caps(false));
        for p in leak {
            assert_eq!(r.feed(p).unwrap(), Step::More);
        }
        assert_eq!(r.feed(b"\x011").unwrap(), Step::More); // a row
        assert_eq!(r.feed(&[0xfe, 0, 0, 0x4a, 0]).unwrap(), Step::More);
        assert_eq!(r.feed(&[0, 0, 0, 0x22, 0, 0, 0]).unwrap(), Step::Done);
        // A COM_STMT_EXECUTE that asked for a cursor: the EOF ends it, rows come by FETCH.
        let mut r = Response::new(Expect::Results, caps(false)).cursor_possible(true);
        assert_eq!(r.feed(&[1]).unwrap(), Step::More);
        assert_eq!(r.feed(b"\x03defcoldef").unwrap(), Step::More);
        assert_eq!(r.feed(&[0xfe, 0, 0, 0x42, 0]).unwrap(), Step::Done);
    }

    #[test]
    fn a_progress_report_ends_nothing() {
        // ERR 0xFFFF: stage 1 of 2, 50.000%, "copy" (MariaDB's progress report layout).
        let progress = [
            0xff, 0xff, 0xff, 1, 1, 2, 0x50, 0xc3, 0, 4, b'c', b'o', b'p', b'y',
        ];
        let mut r = Response::new(Expect::Results, CapabilityFlags::CLIENT_PROTOCOL_41);
        assert_eq!(r.feed(&progress).unwrap(), Step::More);
        assert_eq!(r.feed(&[0, 0, 0, 2, 0, 0, 0]).unwrap(), Step::Done);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut r = Response::new(Expect::Results, caps(true));
        assert!(matches!(r.feed(&[]), Err(CodecError::Empty)));
        assert!(
            matches!(r.feed(&[0]), Err(CodecError::Bad { .. })),
            "short OK"
        );
        assert!(
            matches!(r.feed(&[0xff, 1]), Err(CodecError::Bad { .. })),
            "short ERR"
        );
        assert!(matches!(r.feed(&[0xfc, 1]), Err(CodecError::ColumnCount)));
        assert!(matches!(
            r.feed(&[0xfc, 0, 0]),
            Err(CodecError::ZeroColumns)
        ));
        let mut r = Response::new(Expect::Prepare, caps(true));
        assert!(
            matches!(r.feed(&[0, 1, 0]), Err(CodecError::Bad { .. })),
            "short PREPARE_OK"
        );
        let mut r = Response::new(Expect::Fetch, caps(false));
        assert!(
            matches!(r.feed(&[0xfe, 1]), Err(CodecError::Bad { .. })),
            "short EOF"
        );
        let mut r = Response::new(Expect::OkOrErr, caps(true));
        assert!(matches!(r.feed(&[0x42]), Err(CodecError::Unexpected(0x42))));
        assert_eq!(
            r.feed(&[0, 1]).unwrap(),
            Step::Done,
            "an odd OK ends it all the same"
        );
        assert_eq!(r.status(), None);
        assert!(matches!(r.feed(&[0]), Err(CodecError::AfterEnd)));
    }
}
