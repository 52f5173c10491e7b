//! Client commands: their codes, the response each gets, and what is captured of them
//! (statement ids and EXECUTE parameters decoded here, nowhere else).

use std::sync::Arc;

use captures::digest::Columns;
use captures::{Cmd, Param, Value};
use mysql_common::constants::{ColumnFlags, ColumnType, Command};
use mysql_common::io::ParseBuf;
use mysql_common::value::{BinValue, ValueDeserializer};

use super::CodecError;
use super::until_nul;

// Command bytes.
pub const COM_QUIT: u8 = Command::COM_QUIT as u8;
pub const COM_INIT_DB: u8 = Command::COM_INIT_DB as u8;
pub const COM_QUERY: u8 = Command::COM_QUERY as u8;
pub const COM_FIELD_LIST: u8 = Command::COM_FIELD_LIST as u8;
pub const COM_STATISTICS: u8 = Command::COM_STATISTICS as u8;
pub const COM_PING: u8 = Command::COM_PING as u8;
pub const COM_CHANGE_USER: u8 = Command::COM_CHANGE_USER as u8;
pub const COM_STMT_PREPARE: u8 = Command::COM_STMT_PREPARE as u8;
pub const COM_STMT_EXECUTE: u8 = Command::COM_STMT_EXECUTE as u8;
pub const COM_STMT_SEND_LONG_DATA: u8 = Command::COM_STMT_SEND_LONG_DATA as u8;
pub const COM_STMT_CLOSE: u8 = Command::COM_STMT_CLOSE as u8;
pub const COM_STMT_RESET: u8 = Command::COM_STMT_RESET as u8;
pub const COM_SET_OPTION: u8 = Command::COM_SET_OPTION as u8;
pub const COM_STMT_FETCH: u8 = Command::COM_STMT_FETCH as u8;
pub const COM_RESET_CONNECTION: u8 = Command::COM_RESET_CONNECTION as u8;

/// How the response to a command is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No response at all (QUIT, STMT_CLOSE, SEND_LONG_DATA).
    Nothing,
    /// OK or ERR (PING, INIT_DB, RESET_CONNECTION, STMT_RESET, SET_OPTION...).
    OkOrErr,
    /// OK, ERR, LOCAL INFILE request or result sets, possibly several (QUERY, EXECUTE).
    Results,
    /// PREPARE_OK with parameter and column definitions, or ERR.
    Prepare,
    /// Rows of an open cursor, or ERR.
    Fetch,
    /// Column definitions until EOF, or ERR (the deprecated COM_FIELD_LIST).
    FieldList,
    /// One human-readable string packet (COM_STATISTICS).
    Statistics,
    /// An authentication exchange (COM_CHANGE_USER): relay both ways until OK/ERR.
    Auth,
    /// Unknown command: from here on, relay bytes blindly.
    Unknown,
}

pub fn expect_for(command: u8) -> Expect {
    match command {
        COM_QUIT | COM_STMT_CLOSE | COM_STMT_SEND_LONG_DATA => Expect::Nothing,
        COM_QUERY | COM_STMT_EXECUTE => Expect::Results,
        COM_STMT_PREPARE => Expect::Prepare,
        COM_STMT_FETCH => Expect::Fetch,
        COM_FIELD_LIST => Expect::FieldList,
        COM_STATISTICS => Expect::Statistics,
        COM_CHANGE_USER => Expect::Auth,
        COM_INIT_DB | COM_PING | COM_RESET_CONNECTION | COM_STMT_RESET | COM_SET_OPTION => {
            Expect::OkOrErr
        }
        // COM_SLEEP, COM_PROCESS_INFO, COM_DEBUG, COM_TIME... all answer OK/ERR;
        // replication and anything newer: passthrough.
        0x00 | 0x0a | 0x0d | 0x0c | 0x0f | 0x05 | 0x06 | 0x07 | 0x08 => Expect::OkOrErr,
        _ => Expect::Unknown,
    }
}

/// A command payload's code (its first byte).
pub fn code(payload: &[u8]) -> Result<u8, CodecError> {
    payload.first().copied().ok_or(CodecError::Empty)
}

/// A command kept as it was sent, undecoded (code, then the rest of the payload).
pub fn undecoded(payload: &[u8]) -> Cmd {
    Cmd::Other {
        code: payload.first().copied().unwrap_or(0),
        payload: payload.get(1..).unwrap_or(&[]).to_vec(),
    }
}

/// The statement id a COM_STMT_* command payload names (the 4 bytes after the code).
pub fn stmt_id(payload: &[u8]) -> Option<u32> {
    payload
        .get(1..5)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// Whether a COM_STMT_EXECUTE payload asks for a cursor (its flags byte: CURSOR_TYPE_READ_ONLY,
/// FOR_UPDATE or SCROLLABLE).
pub fn execute_opens_cursor(payload: &[u8]) -> bool {
    payload.first() == Some(&COM_STMT_EXECUTE) && payload.get(5).is_some_and(|f| f & 0x07 != 0)
}

/// What a command does to the prepared statements the relay keeps, before any response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StmtEffect {
    /// COM_STMT_SEND_LONG_DATA: this parameter's value was sent apart.
    LongData { stmt_id: u32, param: u16 },
    /// COM_STMT_CLOSE.
    Close(u32),
    /// COM_STMT_RESET: long data forgotten.
    Reset(u32),
}

/// The [`StmtEffect`] of a command payload, if it has one.
pub fn stmt_effect(payload: &[u8]) -> Option<StmtEffect> {
    let id = stmt_id(payload)?;
    match *payload.first()? {
        COM_STMT_SEND_LONG_DATA => payload.get(5..7).map(|p| StmtEffect::LongData {
            stmt_id: id,
            param: u16::from_le_bytes([p[0], p[1]]),
        }),
        COM_STMT_CLOSE => Some(StmtEffect::Close(id)),
        COM_STMT_RESET => Some(StmtEffect::Reset(id)),
        _ => None,
    }
}

/// Per-statement state needed to decode EXECUTE parameters.
#[derive(Debug, Clone, Default)]
pub struct StmtInfo {
    pub params: u16,
    /// Types bound by the last EXECUTE with new-params-bound = 1: (type, unsigned).
    pub types: Vec<(u8, bool)>,
    /// Parameters that received SEND_LONG_DATA since the last EXECUTE/RESET.
    pub long_data: Vec<u16>,
    /// Result columns from the PREPARE_OK or the last EXECUTE that sent them: what an
    /// EXECUTE's rows are digested with when MariaDB leaves the definitions out.
    pub columns: Option<Arc<Columns>>,
}

/// Decodes a COM_STMT_EXECUTE payload into the captured command; an error for parameters
/// that do not match the types bound, or of a type it does not know.
pub fn parse_execute(payload: &[u8], stmt: Option<&mut StmtInfo>) -> Result<Cmd, CodecError> {
    // code(1) stmt_id(4) flags(1) iterations(4), then the parameters.
    let (fixed, params) = payload
        .split_at_checked(10)
        .ok_or(CodecError::Short("COM_STMT_EXECUTE"))?;
    let stmt_id = u32::from_le_bytes([fixed[1], fixed[2], fixed[3], fixed[4]]);
    let flags = fixed[5];
    let Some(stmt) = stmt else {
        // Prepared before we saw it (or by a failed PREPARE): keep the id.
        return Ok(Cmd::Execute {
            stmt_id,
            flags,
            params: vec![],
        });
    };
    let params = if stmt.params > 0 {
        execute_params(params, stmt)?
    } else {
        Vec::new()
    };
    stmt.long_data.clear();
    Ok(Cmd::Execute {
        stmt_id,
        flags,
        params,
    })
}

/// The parameters after an EXECUTE's fixed part: NULL bitmap, new-params-bound flag,
/// types if bound, values. Keeps the types bound for the next EXECUTE.
fn execute_params(payload: &[u8], stmt: &mut StmtInfo) -> Result<Vec<Param>, CodecError> {
    const SHORT: CodecError = CodecError::Short("COM_STMT_EXECUTE parameters");
    let n = usize::from(stmt.params);
    let (bitmap, rest) = payload.split_at_checked(n.div_ceil(8)).ok_or(SHORT)?;
    let (&bound, mut rest) = rest.split_first().ok_or(SHORT)?;
    if bound == 1 {
        let (types, values) = rest.split_at_checked(2 * n).ok_or(SHORT)?;
        stmt.types = types
            .chunks_exact(2)
            .map(|t| (t[0], t[1] & 0x80 != 0))
            .collect();
        rest = values;
    }
    let mut buf = ParseBuf(rest);
    let mut params = Vec::with_capacity(n);
    for i in 0..n {
        let (ty, unsigned) = stmt.types.get(i).copied().unwrap_or((0xfd, false));
        let is_null = bitmap[i / 8] & (1 << (i % 8)) != 0;
        let long = u16::try_from(i).is_ok_and(|i| stmt.long_data.contains(&i));
        let value = if is_null {
            Value::Null
        } else if long {
            // Sent by SEND_LONG_DATA; not repeated in the EXECUTE packet.
            Value::Bytes(Vec::new())
        } else {
            let col_type = param_type(ty)?;
            let col_flags = if unsigned {
                ColumnFlags::UNSIGNED_FLAG
            } else {
                ColumnFlags::empty()
            };
            let v: ValueDeserializer<BinValue> = buf
                .parse((col_type, col_flags))
                .map_err(CodecError::bad("COM_STMT_EXECUTE parameter"))?;
            from_mysql(v.0)
        };
        params.push(Param {
            column_type: ty,
            unsigned,
            value,
        });
    }
    Ok(params)
}

/// The column type of a parameter, if mysql_common can decode its value: it panics on
/// the types only replication and storage use (a client never binds them, but a
/// broken one must not crash the recorder).
fn param_type(ty: u8) -> Result<ColumnType, CodecError> {
    use ColumnType::*;
    match ColumnType::try_from(ty) {
        Ok(
            MYSQL_TYPE_TIMESTAMP2
            | MYSQL_TYPE_DATETIME2
            | MYSQL_TYPE_TIME2
            | MYSQL_TYPE_TYPED_ARRAY
            | MYSQL_TYPE_UNKNOWN,
        )
        | Err(_) => Err(CodecError::ParamType(ty)),
        Ok(known) => Ok(known),
    }
}

fn from_mysql(v: mysql_common::value::Value) -> Value {
    use mysql_common::value::Value as V;
    match v {
        V::NULL => Value::Null,
        V::Bytes(b) => Value::Bytes(b),
        V::Int(i) => Value::Int(i),
        V::UInt(u) => Value::UInt(u),
        V::Float(f) => Value::Float(f),
        V::Double(d) => Value::Double(d),
        V::Date(y, m, d, h, mi, s, us) => Value::Date(y, m, d, h, mi, s, us),
        V::Time(neg, d, h, m, s, us) => Value::Time(neg, d, h, m, s, us),
    }
}

/// Decodes a client command payload (other than EXECUTE) into the captured command. It
/// reads leniently: a command the server will refuse is still captured as it was sent.
pub fn parse_command(payload: &[u8]) -> Cmd {
    let code = payload.first().copied().unwrap_or(0);
    let body = payload.get(1..).unwrap_or(&[]);
    let id = || stmt_id(payload).unwrap_or(0);
    match code {
        COM_QUERY => Cmd::Query { sql: body.to_vec() },
        COM_STMT_PREPARE => Cmd::Prepare {
            sql: body.to_vec(),
            stmt_id: 0,
            params: 0,
            columns: 0,
        },
        COM_STMT_SEND_LONG_DATA => Cmd::SendLongData {
            stmt_id: id(),
            param: body
                .get(4..6)
                .map_or(0, |b| u16::from_le_bytes([b[0], b[1]])),
            data: body.get(6..).unwrap_or(&[]).to_vec(),
        },
        COM_STMT_CLOSE => Cmd::StmtClose { stmt_id: id() },
        COM_STMT_RESET => Cmd::StmtReset { stmt_id: id() },
        COM_STMT_FETCH => Cmd::StmtFetch {
            stmt_id: id(),
            rows: body
                .get(4..8)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        },
        COM_INIT_DB => Cmd::InitDb {
            db: String::from_utf8_lossy(body).into_owned(),
        },
        COM_PING => Cmd::Ping,
        COM_RESET_CONNECTION => Cmd::ResetConnection,
        COM_QUIT => Cmd::Quit,
        COM_STATISTICS => Cmd::Statistics,
        COM_FIELD_LIST => {
            let table = until_nul(body);
            Cmd::FieldList {
                table: String::from_utf8_lossy(table).into_owned(),
                wildcard: String::from_utf8_lossy(body.get(table.len() + 1..).unwrap_or(&[]))
                    .into_owned(),
            }
        }
        COM_CHANGE_USER => change_user(body),
        _ => undecoded(payload),
    }
}

/// COM_CHANGE_USER: user\0, auth (length-prefixed with CLIENT_SECURE_CONNECTION), db\0,
/// charset(2), plugin\0: the auth response is skipped, never stored.
fn change_user(body: &[u8]) -> Cmd {
    let user = until_nul(body);
    let rest = body.get(user.len() + 1..).unwrap_or(&[]);
    let auth_len = usize::from(rest.first().copied().unwrap_or(0));
    let after = rest.get(1 + auth_len..).unwrap_or(&[]);
    let db = until_nul(after);
    let tail = after.get(db.len() + 1..).unwrap_or(&[]);
    let charset = tail
        .get(..2)
        .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    let plugin = until_nul(tail.get(2..).unwrap_or(&[]));
    Cmd::ChangeUser {
        user: String::from_utf8_lossy(user).into_owned(),
        db: (!db.is_empty()).then(|| String::from_utf8_lossy(db).into_owned()),
        charset,
        auth_plugin: String::from_utf8_lossy(plugin).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execute_flags_say_whether_a_cursor_opens() {
        // COM_STMT_EXECUTE: statement id 1, flags, iteration count 1.
        let execute = |flags| [COM_STMT_EXECUTE, 1, 0, 0, 0, flags, 1, 0, 0, 0];
        assert!(execute_opens_cursor(&execute(1)));
        assert!(!execute_opens_cursor(&execute(0)));
        assert!(!execute_opens_cursor(&[COM_QUERY, 1, 0, 0, 0, 1]));
        assert!(!execute_opens_cursor(&[COM_STMT_EXECUTE]));
    }

    #[test]
    fn execute_parameters_are_decoded_with_the_types_bound() {
        let mut stmt = StmtInfo {
            params: 2,
            ..Default::default()
        };
        // id 7, no flags, 1 iteration; bitmap: the second is NULL; types bound: LONGLONG
        // unsigned, VAR_STRING; the first's 8 bytes.
        let mut execute = vec![COM_STMT_EXECUTE, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0b10, 1];
        execute.extend_from_slice(&[0x08, 0x80, 0xfd, 0]);
        execute.extend_from_slice(&42u64.to_le_bytes());
        stmt.long_data.push(0);
        let Ok(Cmd::Execute {
            stmt_id, params, ..
        }) = parse_execute(&execute, Some(&mut stmt))
        else {
            panic!("not decoded");
        };
        assert_eq!(stmt_id, 7);
        // The first was sent as long data: not in the packet, captured empty.
        assert_eq!(params[0].value, Value::Bytes(Vec::new()));
        assert_eq!(params[1].value, Value::Null);
        assert_eq!(stmt.types, [(0x08, true), (0xfd, false)]);
        assert!(stmt.long_data.is_empty(), "long data is for one EXECUTE");
        let Ok(Cmd::Execute { params, .. }) = parse_execute(&execute, Some(&mut stmt)) else {
            panic!("not decoded");
        };
        assert!(matches!(params[0].value, Value::Int(42) | Value::UInt(42)));
    }

    #[test]
    fn malformed_commands_are_errors_or_captured_as_sent_never_a_panic() {
        assert!(parse_execute(&[COM_STMT_EXECUTE, 1], None).is_err());
        let mut stmt = StmtInfo {
            params: 9,
            ..Default::default()
        };
        let execute = [COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        // Missing bitmap, missing types, missing values, an unknown type.
        assert!(parse_execute(&execute, Some(&mut stmt)).is_err());
        assert!(parse_execute(&[&execute[..], &[0, 0, 1]].concat(), Some(&mut stmt)).is_err());
        let types = [0x08u8, 0].repeat(9);
        let values = [&execute[..], &[0, 0, 1], &types].concat();
        assert!(parse_execute(&values, Some(&mut stmt)).is_err());
        stmt.params = 1;
        let unknown = [&execute[..], &[0, 1, 0x42, 0, 0]].concat();
        assert!(matches!(
            parse_execute(&unknown, Some(&mut stmt)),
            Err(CodecError::ParamType(0x42))
        ));
        // TIME2 (0x13): a type mysql_common panics on, refused before it is asked.
        let time2 = [&execute[..], &[0, 1, 0x13, 0, 0]].concat();
        assert!(matches!(
            parse_execute(&time2, Some(&mut stmt)),
            Err(CodecError::ParamType(0x13))
        ));
        let _ = parse_command(&[]);
        let _ = parse_command(&[COM_CHANGE_USER, 0xff]);
        let _ = parse_command(&[COM_FIELD_LIST]);
        assert!(matches!(code(&[]), Err(CodecError::Empty)));
        assert_eq!(
            undecoded(&[]),
            Cmd::Other {
                code: 0,
                payload: vec![]
            }
        );
        assert_eq!(stmt_id(&[COM_STMT_CLOSE, 1, 0]), None);
        assert_eq!(stmt_effect(&[COM_STMT_SEND_LONG_DATA, 1, 0, 0, 0, 3]), None);
        assert_eq!(stmt_effect(&[COM_STMT_RESET, 1, 0, 0]), None);
    }

    #[test]
    fn commands_are_captured_with_their_arguments() {
        assert_eq!(
            stmt_effect(&[COM_STMT_SEND_LONG_DATA, 1, 0, 0, 0, 3, 0, b'x']),
            Some(StmtEffect::LongData {
                stmt_id: 1,
                param: 3
            })
        );
        assert_eq!(
            stmt_effect(&[COM_STMT_CLOSE, 2, 1, 0, 0]),
            Some(StmtEffect::Close(258))
        );
        assert_eq!(stmt_effect(&[COM_QUERY, 2, 1, 0, 0]), None);
        let change_user = [
            &[COM_CHANGE_USER][..],
            b"bob\0",
            &[3, 1, 2, 3],
            b"shop\0",
            &[33, 0],
            b"client_ed25519\0",
        ]
        .concat();
        assert_eq!(
            parse_command(&change_user),
            Cmd::ChangeUser {
                user: "bob".into(),
                db: Some("shop".into()),
                charset: 33,
                auth_plugin: "client_ed25519".into()
            }
        );
        assert_eq!(
            parse_command(b"\x04t\0%"),
            Cmd::FieldList {
                table: "t".into(),
                wildcard: "%".into()
            }
        );
        assert_eq!(
            parse_command(&[COM_STMT_FETCH, 5, 0, 0, 0, 10, 0, 0, 0]),
            Cmd::StmtFetch {
                stmt_id: 5,
                rows: 10
            }
        );
    }
}
