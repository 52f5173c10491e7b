//! Strategies and fixtures shared by the captures tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report
#![allow(dead_code)]

use std::collections::BTreeMap;

use captures::{
    CaptureEnd, CloseReason, Cmd, CmdKind, Command, ConnClose, ConnOpen, Digest, Divergence,
    Executed, Meta, Outcome, Param, Record, ResultRecord, RunMeta, Value,
};
use proptest::prelude::*;

pub fn meta() -> Meta {
    Meta {
        tool: "captures-test 1".into(),
        started_unix_ns: 1_764_000_000_000_000_000,
        upstream: "127.0.0.1:3306".into(),
        server_version: "10.11.19-MariaDB-0+deb12u1".into(),
        redacted: false,
        labels: BTreeMap::from([("seed".into(), "42".into())]),
    }
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..max)
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,24}"
}

fn finite_f64() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL | prop::num::f64::ZERO | prop::num::f64::SUBNORMAL
}

fn finite_f32() -> impl Strategy<Value = f32> {
    prop::num::f32::NORMAL | prop::num::f32::ZERO
}

pub fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        bytes(64).prop_map(Value::Bytes),
        any::<i64>().prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        finite_f32().prop_map(Value::Float),
        finite_f64().prop_map(Value::Double),
        (
            any::<u16>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>()
        )
            .prop_map(|(y, mo, d, h, mi, s, us)| Value::Date(y, mo, d, h, mi, s, us)),
        (
            any::<bool>(),
            any::<u32>(),
            any::<u8>(),
            any::<u8>(),
            any::<u8>(),
            any::<u32>()
        )
            .prop_map(|(n, d, h, m, s, us)| Value::Time(n, d, h, m, s, us)),
        Just(Value::Redacted),
    ]
}

pub fn param() -> impl Strategy<Value = Param> {
    (any::<u8>(), any::<bool>(), value()).prop_map(|(column_type, unsigned, value)| Param {
        column_type,
        unsigned,
        value,
    })
}

pub fn cmd() -> impl Strategy<Value = Cmd> {
    prop_oneof![
        bytes(200).prop_map(|sql| Cmd::Query { sql }),
        (bytes(200), any::<u32>(), any::<u16>(), any::<u16>()).prop_map(
            |(sql, stmt_id, params, columns)| Cmd::Prepare {
                sql,
                stmt_id,
                params,
                columns
            }
        ),
        (
            any::<u32>(),
            any::<u8>(),
            prop::collection::vec(param(), 0..8)
        )
            .prop_map(|(stmt_id, flags, params)| Cmd::Execute {
                stmt_id,
                flags,
                params
            }),
        (any::<u32>(), any::<u16>(), bytes(100)).prop_map(|(stmt_id, param, data)| {
            Cmd::SendLongData {
                stmt_id,
                param,
                data,
            }
        }),
        any::<u32>().prop_map(|stmt_id| Cmd::StmtClose { stmt_id }),
        any::<u32>().prop_map(|stmt_id| Cmd::StmtReset { stmt_id }),
        (any::<u32>(), any::<u32>()).prop_map(|(stmt_id, rows)| Cmd::StmtFetch { stmt_id, rows }),
        text().prop_map(|db| Cmd::InitDb { db }),
        (text(), prop::option::of(text()), any::<u16>(), text()).prop_map(
            |(user, db, charset, auth_plugin)| Cmd::ChangeUser {
                user,
                db,
                charset,
                auth_plugin
            }
        ),
        Just(Cmd::Ping),
        Just(Cmd::ResetConnection),
        Just(Cmd::Quit),
        Just(Cmd::Statistics),
        (text(), text()).prop_map(|(table, wildcard)| Cmd::FieldList { table, wildcard }),
        (any::<u8>(), bytes(100)).prop_map(|(code, payload)| Cmd::Other { code, payload }),
    ]
}

pub fn digest() -> impl Strategy<Value = Digest> {
    (any::<u64>(), any::<u64>()).prop_map(|(unordered, ordered)| Digest { unordered, ordered })
}

pub fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        (any::<u64>(), any::<u64>(), any::<u16>()).prop_map(|(a, l, w)| Outcome::Ok {
            affected_rows: a,
            last_insert_id: l,
            warnings: w
        }),
        (any::<u64>(), any::<u16>(), prop::option::of(digest())).prop_map(
            |(count, warnings, digest)| Outcome::Rows {
                count,
                warnings,
                digest
            }
        ),
        (any::<u16>(), "[0-9A-Z]{5}", text()).prop_map(|(code, sqlstate, message)| Outcome::Err {
            code,
            sqlstate,
            message
        }),
        Just(Outcome::Dropped),
        Just(Outcome::NoResponse),
    ]
}

fn close_reason() -> impl Strategy<Value = CloseReason> {
    prop_oneof![
        Just(CloseReason::Quit),
        Just(CloseReason::ClientGone),
        Just(CloseReason::ServerGone),
        Just(CloseReason::ProtocolError),
        Just(CloseReason::Shutdown),
    ]
}

pub fn record() -> impl Strategy<Value = Record> {
    prop_oneof![
        (
            any::<u64>(),
            any::<u64>(),
            text(),
            text(),
            prop::option::of(text()),
            any::<u32>(),
            any::<u8>(),
            text(),
            any::<u32>()
        )
            .prop_map(
                |(conn, t, client_addr, user, db, capabilities, charset, auth_plugin, id)| {
                    Record::ConnOpen(ConnOpen {
                        conn,
                        t,
                        client_addr,
                        user,
                        db,
                        capabilities,
                        charset,
                        auth_plugin,
                        server_conn_id: id,
                    })
                }
            ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            cmd(),
            outcome(),
            proptest::option::of(any::<u16>())
        )
            .prop_map(|(conn, t_start, t_end, cmd, outcome, status)| {
                Record::Command(Command {
                    conn,
                    t_start,
                    t_end,
                    cmd,
                    outcome,
                    status,
                })
            }),
        (any::<u64>(), any::<u64>(), close_reason())
            .prop_map(|(conn, t, reason)| Record::ConnClose(ConnClose { conn, t, reason })),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(t, commands, dropped)| {
            Record::End(CaptureEnd {
                t,
                commands,
                dropped,
            })
        }),
    ]
}

fn kind() -> impl Strategy<Value = CmdKind> {
    prop::sample::select(CmdKind::ALL.to_vec())
}

pub fn result_record() -> impl Strategy<Value = ResultRecord> {
    prop_oneof![
        (any::<u64>(), text(), prop::option::of(text())).prop_map(
            |(class, fingerprint, example)| {
                ResultRecord::Class {
                    class,
                    fingerprint,
                    example,
                }
            }
        ),
        (
            (any::<u64>(), any::<u64>(), any::<u64>(), kind()),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            (
                prop::option::of(any::<u16>()),
                any::<u16>(),
                prop::option::of(digest()),
                prop::sample::select(Divergence::ALL.to_vec())
            )
        )
            .prop_map(
                |(
                    (conn, seq, class, kind),
                    (scheduled_ns, sent_ns, finished_ns, rows),
                    (error, warnings, digest, divergence),
                )| {
                    ResultRecord::Exec(Executed {
                        conn,
                        seq,
                        class,
                        kind,
                        scheduled_ns,
                        sent_ns,
                        finished_ns,
                        rows,
                        error,
                        warnings,
                        digest,
                        divergence,
                    })
                }
            ),
    ]
}

pub fn run_meta() -> RunMeta {
    RunMeta {
        tool: "captures-test 1".into(),
        run_id: "run-1".into(),
        label: "mariadb".into(),
        target: "127.0.0.1:3307/shop".into(),
        server_version: "10.11.19-MariaDB".into(),
        speed: Some(2.5),
        scale: 1,
        capture: "shop.sqlcap@1764000000".into(),
        captured_ns: 60_000_000_000,
        started_unix_ns: 1_764_000_100_000_000_000,
        labels: BTreeMap::new(),
    }
}

/// A deterministic, realistic mix: connections opening, prepared statements, queries
/// with results, errors, closes.
pub fn sample_records(n: usize) -> Vec<Record> {
    let mut out = Vec::with_capacity(n);
    let mut t = 0u64;
    let conns = 8u64;
    for c in 0..conns {
        out.push(Record::ConnOpen(ConnOpen {
            conn: c,
            t,
            client_addr: format!("127.0.0.1:{}", 40000 + c),
            user: "shop".into(),
            db: Some("shop".into()),
            capabilities: 0x00ff_f7ff,
            charset: 45,
            auth_plugin: "mysql_native_password".into(),
            server_conn_id: 100 + c as u32,
        }));
    }
    let mut i = 0u64;
    while out.len() < n {
        let conn = i % conns;
        t += 37_000 + (i * 7919) % 50_000;
        let (cmd, outcome) = match i % 5 {
            0 => (
                Cmd::Query {
                    sql: format!("SELECT c FROM sbtest1 WHERE id={}", (i * 7919) % 10_000).into_bytes(),
                },
                Outcome::Rows {
                    count: 1,
                    warnings: 0,
                    digest: None,
                },
            ),
            1 => (
                Cmd::Execute {
                    stmt_id: 1,
                    flags: 0,
                    params: vec![Param {
                        column_type: 8,
                        unsigned: false,
                        value: Value::Int((i % 10_000) as i64),
                    }],
                },
                Outcome::Rows {
                    count: 1,
                    warnings: 0,
                    digest: None,
                },
            ),
            2 => (
                Cmd::Query {
                    sql: format!(
                        "UPDATE sbtest1 SET k=k+1 WHERE id={} /* shop checkout */",
                        i % 10_000
                    )
                    .into_bytes(),
                },
                Outcome::Ok {
                    affected_rows: 1,
                    last_insert_id: 0,
                    warnings: 0,
                },
            ),
            3 => (
                Cmd::Query {
                    sql: format!(
                        "INSERT INTO corder (order_id, customer_id, status, total_cents) VALUES ({}, {}, 'new', {})",
                        1_000_000 + i,
                        i % 997,
                        i * 13 % 100_000
                    )
                    .into_bytes(),
                },
                Outcome::Ok {
                    affected_rows: 1,
                    last_insert_id: 0,
                    warnings: 0,
                },
            ),
            _ => (
                Cmd::Query {
                    sql: b"SELECT * FROM missing".to_vec(),
                },
                Outcome::Err {
                    code: 1146,
                    sqlstate: "42S02".into(),
                    message: "Table 'shop.missing' doesn't exist".into(),
                },
            ),
        };
        out.push(Record::Command(Command {
            conn,
            t_start: t,
            t_end: t + 120_000,
            cmd,
            outcome,
            // Version 1 had no status; `tests/golden.rs` reads these back from v1 files.
            status: None,
        }));
        i += 1;
    }
    for c in 0..conns {
        out.push(Record::ConnClose(ConnClose {
            conn: c,
            t: t + 1_000_000,
            reason: CloseReason::Quit,
        }));
    }
    out
}
