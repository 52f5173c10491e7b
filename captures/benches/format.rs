//! Write and read throughput of the capture format on a realistic record mix.
//!
//! `cargo bench -p captures --bench format [-- RECORDS]` prints records/s and bytes per
//! record for writing (encode + zstd + write) and reading (read + crc + unzstd + decode)
//! a file on disk. The mix imitates a web shop: prepared point selects, text queries
//! with literals, inserts, updates, an occasional error, connections coming and going.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::time::Instant;

use captures::{
    CaptureReader, CaptureWriter, CloseReason, Cmd, Command, ConnClose, ConnOpen, Meta, Outcome,
    Param, Record, Value, WriterOptions,
};

fn mix(i: u64) -> Record {
    let conn = i % 64;
    let t = i * 40_000;
    let (cmd, outcome) = match i % 10 {
        0..=3 => (
            Cmd::Execute {
                stmt_id: 1 + (i % 3) as u32,
                flags: 0,
                params: vec![Param { column_type: 8, unsigned: false, value: Value::Int((i * 7919 % 100_000) as i64) }],
            },
            Outcome::Rows { count: 1, warnings: 0, digest: Some(digest(i)) },
        ),
        4 | 5 => (
            Cmd::Query {
                sql: format!(
                    "SELECT product_id, sku, name, price_cents, stock FROM product WHERE category = 'cat-{}' AND price_cents BETWEEN {} AND {} ORDER BY price_cents LIMIT 20",
                    i % 40,
                    i % 1000,
                    i % 1000 + 5000
                )
                .into_bytes(),
            },
            Outcome::Rows { count: 20, warnings: 0, digest: Some(digest(i)) },
        ),
        6 => (
            Cmd::Query {
                sql: format!(
                    "INSERT INTO cart_item (customer_id, product_id, qty) VALUES ({}, {}, {}) ON DUPLICATE KEY UPDATE qty = qty + VALUES(qty)",
                    1_700_000_000_000 + i % 100_000,
                    i % 5000,
                    1 + i % 3
                )
                .into_bytes(),
            },
            Outcome::Ok { affected_rows: 1, last_insert_id: 0, warnings: 0 },
        ),
        7 => (
            Cmd::Query {
                sql: format!("UPDATE product SET stock = stock - {} WHERE product_id = {} AND stock >= {}", 1 + i % 2, i % 5000, 1 + i % 2).into_bytes(),
            },
            Outcome::Ok { affected_rows: 1, last_insert_id: 0, warnings: 0 },
        ),
        8 => (Cmd::Query { sql: b"COMMIT".to_vec() }, Outcome::Ok { affected_rows: 0, last_insert_id: 0, warnings: 0 }),
        _ => (
            Cmd::Query { sql: format!("SELECT * FROM corder WHERE customer_id = {} ORDER BY created_at DESC LIMIT 10", i % 100_000).into_bytes() },
            if i % 1000 == 9 {
                Outcome::Err { code: 1205, sqlstate: "HY000".into(), message: "Lock wait timeout exceeded; try restarting transaction".into() }
            } else {
                Outcome::Rows { count: 3, warnings: 0, digest: Some(digest(i)) }
            },
        ),
    };
    if i.is_multiple_of(5000) {
        return Record::ConnOpen(ConnOpen {
            conn,
            t,
            client_addr: "127.0.0.1:51234".into(),
            user: "shop".into(),
            db: Some("shop".into()),
            capabilities: 0x000f_a685,
            charset: 45,
            auth_plugin: "mysql_native_password".into(),
            server_conn_id: i as u32,
        });
    }
    if i % 5000 == 4999 {
        return Record::ConnClose(ConnClose {
            conn,
            t,
            reason: CloseReason::Quit,
        });
    }
    Record::Command(Command {
        conn,
        t_start: t,
        t_end: t + 150_000 + i % 90_000,
        cmd,
        outcome,
        // AUTOCOMMIT, as most real statements leave it: the typical record size.
        status: Some(captures::status::AUTOCOMMIT),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; the first numeric argument is the record count.
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let records: Vec<Record> = (0..n).map(mix).collect();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bench.sqlcap");
    let meta = Meta {
        tool: "bench".into(),
        started_unix_ns: 0,
        upstream: "127.0.0.1:3306".into(),
        server_version: "10.11".into(),
        redacted: false,
        labels: Default::default(),
    };

    let start = Instant::now();
    let mut w = CaptureWriter::create(&path, &meta, WriterOptions::default())?;
    for r in &records {
        w.append(r)?;
    }
    let stats = w.close()?;
    let write_s = start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut count = 0u64;
    for r in CaptureReader::open(&path)? {
        std::hint::black_box(r?);
        count += 1;
    }
    let read_s = start.elapsed().as_secs_f64();
    assert_eq!(count, n);

    println!("records              {n}");
    println!(
        "write                {:>12.0} records/s  ({:.1} MB/s uncompressed)",
        n as f64 / write_s,
        stats.raw_bytes as f64 / write_s / 1e6
    );
    println!("read                 {:>12.0} records/s", n as f64 / read_s);
    println!(
        "bytes/record raw     {:>12.1}",
        stats.raw_bytes as f64 / n as f64
    );
    println!(
        "bytes/record on disk {:>12.1}  ({} chunks, ratio {:.1}x)",
        stats.file_bytes as f64 / n as f64,
        stats.chunks,
        stats.raw_bytes as f64 / stats.file_bytes as f64
    );
    Ok(())
}

/// A row digest as a capture keeps it: two hashes, incompressible.
fn digest(i: u64) -> captures::Digest {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    captures::Digest {
        unordered: h,
        ordered: h.rotate_left(29) ^ 0xc2b2_ae3d_27d4_eb4f,
    }
}
