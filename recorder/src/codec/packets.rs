//! The server's generic packets: OK, ERR, EOF (and OK-as-EOF), PREPARE_OK, and the ERR
//! the recorder sends a client itself. Parsed with mysql_common.

use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    CommonOkPacket, ErrPacket, OkPacket, OkPacketDeserializer, OkPacketKind, OldEofPacket,
    ResultSetTerminator, ServerError, SqlState, StmtPacket,
};
use mysql_common::proto::MySerialize;

use super::CodecError;
use super::framing::{self, MAX_PAYLOAD};

/// First byte of an OK packet (and of PREPARE_OK).
pub const OK: u8 = 0x00;
/// First byte of an ERR packet.
pub const ERR: u8 = 0xff;
/// First byte of an EOF packet, of OK-as-EOF (CLIENT_DEPRECATE_EOF), and of an auth
/// switch request.
pub const EOF: u8 = 0xfe;
/// First byte of a LOCAL INFILE request.
pub const LOCAL_INFILE: u8 = 0xfb;

/// MariaDB sends progress reports as ERR packets with this code (before the real answer).
const PROGRESS_REPORT: u16 = 0xFFFF;

/// ER_UNKNOWN_ERROR, the code servers use for errors without a code of their own. Not a
/// client-side code (CR_*, 2000..): clients take those from a server for a protocol error
/// (the mariadb client then reports "ERROR 2027 Received malformed packet").
const ER_UNKNOWN_ERROR: u16 = 1105;

/// What a server's ERR said: what a failed command is captured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerErr {
    pub code: u16,
    /// Empty when the packet has none (a pre-4.1 client).
    pub sqlstate: String,
    pub message: String,
}

/// An ERR packet's payload: the error, or `None` for a MariaDB progress report (which
/// ends nothing).
pub fn err(payload: &[u8], caps: CapabilityFlags) -> Result<Option<ServerErr>, CodecError> {
    // A MariaDB progress report (ALTER TABLE, LOAD DATA...) is an ERR packet with code
    // 0xFFFF and its own layout. It is negotiated with MARIADB_CLIENT_PROGRESS in the
    // extended capabilities, which mysql_common's parser does not look at (it wants
    // CLIENT_PROGRESS_OBSOLETE), so recognise it before parsing.
    if payload.get(1..3) == Some(&PROGRESS_REPORT.to_le_bytes()[..]) {
        return Ok(None);
    }
    let err: ErrPacket<'_> = ParseBuf(payload)
        .parse(caps)
        .map_err(CodecError::bad("ERR packet"))?;
    Ok(match err {
        ErrPacket::Progress(_) => None,
        ErrPacket::Error(e) => Some(ServerErr {
            code: e.error_code(),
            sqlstate: e
                .sql_state_ref()
                .map(|s| s.as_str().into_owned())
                .unwrap_or_default(),
            message: String::from_utf8_lossy(e.message_ref()).into_owned(),
        }),
    })
}

/// An OK packet's payload.
pub fn ok(payload: &[u8], caps: CapabilityFlags) -> Result<OkPacket<'_>, CodecError> {
    parse_ok::<CommonOkPacket>(payload, caps, "OK packet")
}

/// The status flags of an OK packet (one ending an authentication exchange), if it
/// parses as one.
pub fn ok_status(payload: &[u8], caps: CapabilityFlags) -> Option<u16> {
    ok(payload, caps).ok().map(|ok| ok.status_flags().bits())
}

/// Whether a packet ends rows or column definitions: an EOF (old, under 9 bytes) or,
/// with CLIENT_DEPRECATE_EOF, an OK that starts with 0xFE (any length a row's first
/// piece cannot have: a row starting with 0xFE is 16 MiB or more).
pub fn is_terminator(payload: &[u8], deprecate_eof: bool) -> bool {
    payload.first() == Some(&EOF)
        && if deprecate_eof {
            payload.len() < MAX_PAYLOAD
        } else {
            payload.len() < 9
        }
}

/// A packet ending rows or column definitions: an old EOF, or (`as_ok`) an OK-as-EOF.
pub fn terminator(
    payload: &[u8],
    caps: CapabilityFlags,
    as_ok: bool,
) -> Result<OkPacket<'_>, CodecError> {
    if as_ok {
        parse_ok::<ResultSetTerminator>(payload, caps, "result set terminator")
    } else {
        parse_ok::<OldEofPacket>(payload, caps, "EOF packet")
    }
}

fn parse_ok<'a, K: OkPacketKind>(
    payload: &'a [u8],
    caps: CapabilityFlags,
    what: &'static str,
) -> Result<OkPacket<'a>, CodecError> {
    Ok(ParseBuf(payload)
        .parse::<OkPacketDeserializer<'_, K>>(caps)
        .map_err(CodecError::bad(what))?
        .into_inner())
}

/// What a PREPARE_OK announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prepared {
    pub stmt_id: u32,
    pub params: u16,
    pub columns: u16,
    pub warnings: u16,
}

/// A PREPARE_OK's payload.
pub fn prepare_ok(payload: &[u8]) -> Result<Prepared, CodecError> {
    let ok: StmtPacket = ParseBuf(payload)
        .parse(())
        .map_err(CodecError::bad("PREPARE_OK"))?;
    Ok(Prepared {
        stmt_id: ok.statement_id(),
        params: ok.num_params(),
        columns: ok.num_columns(),
        warnings: ok.warning_count(),
    })
}

/// An ERR packet (ER_UNKNOWN_ERROR) with sequence id `seq`, for failures the recorder
/// itself reports to a client during the connection phase. `sql_state`: the client has
/// sent its capabilities and speaks 4.1, so (as a server would) the packet carries a SQL
/// state, which such clients then expect; before the login it must not.
pub fn err_packet(seq: u8, sql_state: bool, message: &str) -> Vec<u8> {
    let state = sql_state.then(|| SqlState::new(*b"HY000"));
    // Header, code and state take 3 or 9 bytes: the message gets the rest of one packet.
    let room = MAX_PAYLOAD - 1 - if sql_state { 9 } else { 3 };
    let message = &message.as_bytes()[..message.len().min(room)];
    let mut payload = Vec::with_capacity(9 + message.len());
    ErrPacket::Error(ServerError::new(ER_UNKNOWN_ERROR, state, message)).serialize(&mut payload);
    framing::packet(seq, &payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const P41: CapabilityFlags = CapabilityFlags::CLIENT_PROTOCOL_41;

    #[test]
    fn eof_rules_follow_deprecate_eof() {
        assert!(is_terminator(&[0xfe, 0, 0, 2, 0], false));
        assert!(!is_terminator(&[0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9], false));
        assert!(is_terminator(&[0xfe, 0, 0, 2, 0, 0, 0], true));
        assert!(is_terminator(&[0xfe, 1, 2, 3, 4, 5, 6, 7, 8, 9], true));
        assert!(!is_terminator(&[0x01, 0], true));
        assert!(!is_terminator(&[], true));
        let eof = terminator(&[0xfe, 1, 0, 2, 0], P41, false).unwrap();
        assert_eq!((eof.warnings(), eof.status_flags().bits()), (1, 2));
        assert_eq!(ok_status(&[0, 0, 0, 0x22, 0, 0, 0], P41), Some(0x22));
    }

    #[test]
    fn an_err_is_an_error_or_a_progress_report() {
        let e = err(b"\xff\x7a\x04#42S02no such table", P41).unwrap();
        assert_eq!(
            e,
            Some(ServerErr {
                code: 1146,
                sqlstate: "42S02".into(),
                message: "no such table".into()
            })
        );
        let progress = [
            0xff, 0xff, 0xff, 1, 1, 2, 0x50, 0xc3, 0, 4, b'c', b'o', b'p', b'y',
        ];
        assert_eq!(err(&progress, P41).unwrap(), None);
    }

    #[test]
    fn a_prepare_ok_says_the_statement_and_its_shape() {
        let ok = [0, 7, 0, 0, 0, 2, 0, 1, 0, 0, 3, 0];
        assert_eq!(
            prepare_ok(&ok).unwrap(),
            Prepared {
                stmt_id: 7,
                params: 1,
                columns: 2,
                warnings: 3
            }
        );
    }

    #[test]
    fn malformed_packets_are_errors_not_panics() {
        assert!(prepare_ok(&[0, 7, 0]).is_err());
        assert!(prepare_ok(&[]).is_err());
        assert!(err(&[0xff], P41).is_err());
        assert!(err(&[0xff, 1, 0, b'#', b'4'], P41).is_err());
        assert!(ok(&[0], P41).is_err());
        assert!(ok(&[], P41).is_err());
        assert!(terminator(&[0xfe, 1], P41, false).is_err());
        assert!(terminator(&[0xfe], P41, true).is_err());
        assert_eq!(ok_status(&[0, 0], P41), None);
    }

    #[test]
    fn the_recorders_own_err_is_what_a_server_would_send() {
        // Before the login: no SQL state.
        assert_eq!(
            err_packet(0, false, "no"),
            [5, 0, 0, 0, 0xff, 0x51, 0x04, b'n', b'o']
        );
        // After a 4.1 login: #HY000.
        let packet = err_packet(3, true, "no");
        assert_eq!(packet[..4], [11, 0, 0, 3]);
        assert_eq!(packet[4..], *b"\xff\x51\x04#HY000no");
        let e = err(&packet[4..], P41).unwrap().unwrap();
        assert_eq!((e.code, e.sqlstate.as_str()), (1105, "HY000"));
        // A message longer than a packet is cut to fit one.
        let long = "x".repeat(MAX_PAYLOAD + 5);
        assert_eq!(err_packet(0, true, &long).len(), 4 + MAX_PAYLOAD - 1);
    }
}
