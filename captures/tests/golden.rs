//! Format versioning: files written by earlier versions must keep reading.
//!
//! `tests/data/golden-v1.sqlcap` and `golden-v1.sqlres` were written by format version 1
//! from the records below, `golden-v2.sqlcap` by capture format version 2,
//! `golden-v3.sqlcap` by capture version 3 and `golden-v2.sqlres` by results version 2. Never
//! regenerate them to make a test pass: a change that breaks this test breaks users'
//! existing captures. When a format gains a version, add `golden-vN.*` beside them and
//! keep these. To create a new version's files, run
//! `CAPTURES_BLESS=1 cargo test -p captures --test golden` once with the new version:
//! only the files of the version this build writes are rewritten.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::path::PathBuf;

use captures::Format;
use captures::{
    Answer, CaptureFormat, CaptureReader, CaptureWriter, CloseReason, Cmd, Command, ConnClose,
    ConnOpen, Digest, Divergence, Divergent, Executed, Outcome, Param, Record, ResultRecord,
    ResultsReader, ResultsWriter, Value, WriterOptions,
};

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// One of every record, command, value and outcome kind of format version 1.
fn v1_records() -> Vec<Record> {
    let cmds: Vec<(Cmd, Outcome)> = vec![
        (
            Cmd::Query {
                sql: b"SELECT 1".to_vec(),
            },
            Outcome::Rows {
                count: 1,
                warnings: 0,
                digest: None,
            },
        ),
        (
            Cmd::Query {
                sql: vec![b'S', 0xff, 0xfe, b'\''],
            },
            Outcome::Err {
                code: 1064,
                sqlstate: "42000".into(),
                message: "You have an error in your SQL syntax".into(),
            },
        ),
        (
            Cmd::Prepare {
                sql: b"SELECT * FROM product WHERE product_id = ?".to_vec(),
                stmt_id: 7,
                params: 1,
                columns: 8,
            },
            Outcome::Ok {
                affected_rows: 0,
                last_insert_id: 0,
                warnings: 0,
            },
        ),
        (
            Cmd::Execute {
                stmt_id: 7,
                flags: 1,
                params: vec![
                    Param {
                        column_type: 0x06,
                        unsigned: false,
                        value: Value::Null,
                    },
                    Param {
                        column_type: 0xfe,
                        unsigned: false,
                        value: Value::Bytes(b"caf\xc3\xa9".to_vec()),
                    },
                    Param {
                        column_type: 0x08,
                        unsigned: false,
                        value: Value::Int(-42),
                    },
                    Param {
                        column_type: 0x08,
                        unsigned: true,
                        value: Value::UInt(u64::MAX),
                    },
                    Param {
                        column_type: 0x04,
                        unsigned: false,
                        value: Value::Float(1.5),
                    },
                    Param {
                        column_type: 0x05,
                        unsigned: false,
                        value: Value::Double(-2.25),
                    },
                    Param {
                        column_type: 0x0c,
                        unsigned: false,
                        value: Value::Date(2026, 11, 24, 20, 15, 1, 123_456),
                    },
                    Param {
                        column_type: 0x0b,
                        unsigned: false,
                        value: Value::Time(true, 1, 2, 3, 4, 5),
                    },
                    Param {
                        column_type: 0x0f,
                        unsigned: false,
                        value: Value::Redacted,
                    },
                ],
            },
            Outcome::Rows {
                count: 3,
                warnings: 1,
                digest: None,
            },
        ),
        (
            Cmd::SendLongData {
                stmt_id: 7,
                param: 1,
                data: vec![0, 1, 2, 255],
            },
            Outcome::NoResponse,
        ),
        (
            Cmd::StmtFetch {
                stmt_id: 7,
                rows: 100,
            },
            Outcome::Rows {
                count: 100,
                warnings: 0,
                digest: None,
            },
        ),
        (
            Cmd::StmtReset { stmt_id: 7 },
            Outcome::Ok {
                affected_rows: 0,
                last_insert_id: 0,
                warnings: 0,
            },
        ),
        (Cmd::StmtClose { stmt_id: 7 }, Outcome::NoResponse),
        (
            Cmd::InitDb { db: "shop".into() },
            Outcome::Ok {
                affected_rows: 0,
                last_insert_id: 0,
                warnings: 0,
            },
        ),
        (
            Cmd::ChangeUser {
                user: "app".into(),
                db: Some("shop".into()),
                charset: 45,
                auth_plugin: "mysql_native_password".into(),
            },
            Outcome::Ok {
                affected_rows: 0,
                last_insert_id: 0,
                warnings: 0,
            },
        ),
        (
            Cmd::Ping,
            Outcome::Ok {
                affected_rows: 0,
                last_insert_id: 0,
                warnings: 0,
            },
        ),
        (
            Cmd::ResetConnection,
            Outcome::Ok {
                affected_rows: 0,
                last_insert_id: 0,
                warnings: 0,
            },
        ),
        (
            Cmd::Statistics,
            Outcome::Rows {
                count: 0,
                warnings: 0,
                digest: None,
            },
        ),
        (
            Cmd::FieldList {
                table: "product".into(),
                wildcard: "%".into(),
            },
            Outcome::Rows {
                count: 8,
                warnings: 0,
                digest: None,
            },
        ),
        (
            Cmd::Other {
                code: 0x1f,
                payload: vec![1, 2, 3],
            },
            Outcome::Dropped,
        ),
        (
            Cmd::Query {
                sql: b"INSERT INTO corder VALUES (1, 2, 'new', 300)".to_vec(),
            },
            Outcome::Ok {
                affected_rows: 1,
                last_insert_id: 99,
                warnings: 0,
            },
        ),
        (Cmd::Quit, Outcome::NoResponse),
    ];
    let mut out = vec![Record::ConnOpen(ConnOpen {
        conn: 0,
        t: 0,
        client_addr: "127.0.0.1:50000".into(),
        user: "shop".into(),
        db: Some("shop".into()),
        capabilities: 0x000f_a685,
        charset: 45,
        auth_plugin: "mysql_native_password".into(),
        server_conn_id: 12,
    })];
    for (i, (cmd, outcome)) in cmds.into_iter().enumerate() {
        let t = 1_000 * (i as u64 + 1);
        out.push(Record::Command(Command {
            conn: 0,
            t_start: t,
            t_end: t + 500,
            cmd,
            outcome,
            status: None,
        }));
    }
    for reason in [
        CloseReason::Quit,
        CloseReason::ClientGone,
        CloseReason::ServerGone,
        CloseReason::ProtocolError,
        CloseReason::Shutdown,
    ] {
        out.push(Record::ConnClose(ConnClose {
            conn: 0,
            t: 1_000_000,
            reason,
        }));
    }
    out.extend(common::sample_records(200));
    out
}

fn v1_results() -> Vec<ResultRecord> {
    vec![
        ResultRecord::Class {
            class: 0x1234_5678_9abc_def0,
            fingerprint: "select c from sbtest1 where id=?".into(),
            example: Some("SELECT c FROM sbtest1 WHERE id=7".into()),
        },
        ResultRecord::Class {
            class: 1,
            fingerprint: "select ?".into(),
            example: None,
        },
        ResultRecord::Exec(Executed {
            conn: 3,
            seq: 9,
            class: 0x1234_5678_9abc_def0,
            kind: captures::CmdKind::Execute,
            scheduled_ns: 1_000,
            sent_ns: 1_500,
            finished_ns: 90_000,
            rows: 1,
            error: None,
            warnings: 0,
            digest: None,
            divergence: Divergence::None,
        }),
        ResultRecord::Exec(Executed {
            conn: 4,
            seq: 10,
            class: 1,
            kind: captures::CmdKind::Query,
            scheduled_ns: 2_000,
            sent_ns: 2_000,
            finished_ns: 3_000,
            rows: 0,
            error: Some(1146),
            warnings: 0,
            digest: None,
            divergence: Divergence::ErrorChanged,
        }),
    ]
}

/// [`v1_records`] as version 2 keeps them: a status on every command whose response
/// ends in OK or EOF, covering the flags a session moves through and a varint of every
/// length (postcard encodes a `u16` in 1 to 3 bytes).
fn v2_records() -> Vec<Record> {
    use captures::status::{AUTOCOMMIT, IN_TRANS, IN_TRANS_READONLY, SESSION_STATE_CHANGED};
    let flags = [
        AUTOCOMMIT,
        IN_TRANS | AUTOCOMMIT,
        IN_TRANS,
        0,
        IN_TRANS_READONLY | IN_TRANS | SESSION_STATE_CHANGED,
        u16::MAX,
    ];
    let mut n = 0;
    let mut out = v1_records();
    for r in &mut out {
        if let Record::Command(c) = r
            && matches!(c.outcome, Outcome::Ok { .. } | Outcome::Rows { .. })
            && !matches!(c.cmd, Cmd::Prepare { .. })
        {
            c.status = Some(flags[n % flags.len()]);
            n += 1;
        }
    }
    out.extend(v2_load_local());
    out
}

/// Version 2's `Cmd::LoadLocal`: content kept (binary, with a size past a varint byte),
/// an empty file, content not kept, and two requests in one multi-statement query.
fn v2_load_local() -> Vec<Record> {
    use captures::LocalFile;
    let kept = |content: &[u8]| LocalFile {
        size: content.len() as u64,
        content: Some(content.to_vec()),
    };
    let binary: Vec<u8> = (0..=255u8).chain(*b"1,a\n2,b\n").collect();
    let files = [
        vec![kept(&binary)],
        vec![kept(b"")],
        vec![LocalFile {
            size: 70 * 1024 * 1024,
            content: None,
        }],
        vec![kept(b"1,x\n"), kept(b"<row a=\"1\"/>")],
    ];
    files
        .into_iter()
        .enumerate()
        .map(|(i, files)| {
            let t = 2_000_000 + 1_000 * i as u64;
            Record::Command(Command {
                conn: 1,
                t_start: t,
                t_end: t + 700,
                cmd: Cmd::LoadLocal {
                    sql: format!("LOAD DATA LOCAL INFILE '/tmp/f{i}.csv' INTO TABLE t").into(),
                    files,
                },
                outcome: Outcome::Ok {
                    affected_rows: i as u64,
                    last_insert_id: 0,
                    warnings: 0,
                },
                status: Some(captures::status::AUTOCOMMIT),
            })
        })
        .collect()
}

/// [`v2_records`] as version 3 keeps them: a digest on most results (varied, so every
/// varint length of a `u64` shows up), none on some.
fn v3_records() -> Vec<Record> {
    let mut out = v2_records();
    let mut n = 0u64;
    for r in &mut out {
        if let Record::Command(Command {
            outcome: Outcome::Rows { digest, .. },
            ..
        }) = r
        {
            n += 1;
            if !n.is_multiple_of(7) {
                *digest = Some(Digest {
                    unordered: n.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (n % 64),
                    ordered: u64::MAX - n,
                });
            }
        }
    }
    out
}

/// Results version 2: every divergence kind, warnings and digests, and a `Diverged`
/// example.
fn v2_results() -> Vec<ResultRecord> {
    let mut out = v1_results();
    for (i, divergence) in Divergence::ALL.into_iter().enumerate() {
        let i = i as u64;
        out.push(ResultRecord::Exec(Executed {
            conn: i,
            seq: 100 + i,
            class: 1,
            kind: captures::CmdKind::Query,
            scheduled_ns: 10_000 * i,
            sent_ns: 10_000 * i + 5,
            finished_ns: 10_000 * i + 900,
            rows: i,
            error: i.is_multiple_of(3).then_some(1064),
            warnings: i as u16 * 300,
            digest: i.is_multiple_of(2).then_some(Digest {
                unordered: i << 60,
                ordered: i,
            }),
            divergence,
        }));
    }
    out.push(ResultRecord::Diverged(Box::new(Divergent {
        class: 1,
        conn: 4,
        seq: 10,
        divergence: Divergence::RowsDiffer,
        statement: "SELECT name FROM product WHERE price > 10 LIMIT 5".into(),
        captured: Answer {
            rows: 5,
            digest: Some(Digest {
                unordered: 1,
                ordered: 2,
            }),
            error: None,
            warnings: 0,
        },
        replayed: Answer {
            rows: 5,
            digest: Some(Digest {
                unordered: 3,
                ordered: 4,
            }),
            error: None,
            warnings: 1,
        },
    })));
    out
}

fn bless() -> bool {
    std::env::var_os("CAPTURES_BLESS").is_some()
}

/// Whether to rewrite the golden capture of `version`: only ever the one this build
/// writes, so blessing a new version cannot overwrite an older version's file.
fn bless_capture(version: u16) -> bool {
    bless() && CaptureFormat::VERSION == version
}

#[test]
fn reads_golden_v1_capture() {
    let path = data("golden-v1.sqlcap");
    if bless_capture(1) {
        let mut w =
            CaptureWriter::create(&path, &common::meta(), WriterOptions::default()).unwrap();
        for r in v1_records() {
            w.append(&r).unwrap();
        }
        w.close().unwrap();
    }
    let reader = CaptureReader::open(&path).unwrap();
    assert_eq!(reader.version(), 1);
    assert_eq!(reader.header(), &common::meta());
    let records: Vec<Record> = reader.map(Result::unwrap).collect();
    assert_eq!(records, v1_records());
    assert!(records.iter().all(|r| match r {
        Record::Command(c) => c.status.is_none() && c.in_transaction().is_none(),
        _ => true,
    }));
}

#[test]
fn reads_golden_v2_capture() {
    let path = data("golden-v2.sqlcap");
    if bless_capture(2) {
        let mut w =
            CaptureWriter::create(&path, &common::meta(), WriterOptions::default()).unwrap();
        for r in v2_records() {
            w.append(&r).unwrap();
        }
        w.close().unwrap();
    }
    let reader = CaptureReader::open(&path).unwrap();
    assert_eq!(reader.version(), 2);
    assert_eq!(reader.header(), &common::meta());
    let records: Vec<Record> = reader.map(Result::unwrap).collect();
    assert_eq!(records, v2_records());
    let commands: Vec<&Command> = records
        .iter()
        .filter_map(|r| match r {
            Record::Command(c) => Some(c),
            _ => None,
        })
        .collect();
    // The first SELECT 1: autocommit, no transaction; the next OK: inside one.
    assert_eq!(commands[0].status, Some(captures::status::AUTOCOMMIT));
    assert_eq!(
        (commands[0].in_transaction(), commands[0].autocommit()),
        (Some(false), Some(true))
    );
    assert_eq!(commands[1].status, None, "an ERR keeps no status");
    assert_eq!(commands[2].status, None, "PREPARE_OK has no status");
    assert_eq!(commands[3].in_transaction(), Some(true));
    assert!(commands.iter().filter(|c| c.status.is_some()).count() > 100);
}

#[test]
fn reads_golden_v3_capture() {
    let path = data("golden-v3.sqlcap");
    if bless_capture(3) {
        let mut w =
            CaptureWriter::create(&path, &common::meta(), WriterOptions::default()).unwrap();
        for r in v3_records() {
            w.append(&r).unwrap();
        }
        w.close().unwrap();
    }
    let reader = CaptureReader::open(&path).unwrap();
    assert_eq!(reader.version(), 3);
    let records: Vec<Record> = reader.map(Result::unwrap).collect();
    assert_eq!(records, v3_records());
    let digests = records
        .iter()
        .filter(|r| {
            matches!(
                r,
                Record::Command(Command {
                    outcome: Outcome::Rows {
                        digest: Some(_),
                        ..
                    },
                    ..
                })
            )
        })
        .count();
    assert!(digests > 50, "{digests} digests");
}

#[test]
fn reads_golden_v2_results() {
    let path = data("golden-v2.sqlres");
    if bless() && captures::ResultsFormat::VERSION == 2 {
        let mut w =
            ResultsWriter::create(&path, &common::run_meta(), WriterOptions::default()).unwrap();
        for r in v2_results() {
            w.append(&r).unwrap();
        }
        w.close().unwrap();
    }
    let reader = ResultsReader::open(&path).unwrap();
    assert_eq!(reader.version(), 2);
    let records: Vec<ResultRecord> = reader.map(Result::unwrap).collect();
    assert_eq!(records, v2_results());
}

#[test]
fn reads_golden_v1_results() {
    let path = data("golden-v1.sqlres");
    if bless() && captures::ResultsFormat::VERSION == 1 {
        let mut w =
            ResultsWriter::create(&path, &common::run_meta(), WriterOptions::default()).unwrap();
        for r in v1_results() {
            w.append(&r).unwrap();
        }
        w.close().unwrap();
    }
    let reader = ResultsReader::open(&path).unwrap();
    assert_eq!(reader.version(), 1);
    assert_eq!(reader.header(), &common::run_meta());
    let records: Vec<ResultRecord> = reader.map(Result::unwrap).collect();
    assert_eq!(records, v1_results());
}

#[test]
fn divergence_names_in_json_are_their_stable_names() {
    for d in Divergence::ALL {
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            format!("\"{}\"", d.as_str())
        );
    }
}
