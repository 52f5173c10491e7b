//! Writes a synthetic capture for the memory benchmark (bench/replayer-memory.sh):
//! CONNECTIONS connections opened 1 ms apart, each running COMMANDS/CONNECTIONS queries
//! GAP_MS apart, interleaved in time order as a recorder would write them.
//!
//! Usage: synthetic_capture OUT [COMMANDS=10000000] [CONNECTIONS=1000] [GAP_MS=10] [SQL]
//! SQL defaults to a 50 ms server-side sleep, which makes any target slow.

use anyhow::{Context, Result, bail};
use captures::{
    CaptureWriter, CloseReason, Cmd, Command, ConnClose, ConnOpen, Meta, Outcome, Record,
    WriterOptions,
};

const MS: u64 = 1_000_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(out) = args.first() else {
        bail!("usage: synthetic_capture OUT [COMMANDS] [CONNECTIONS] [GAP_MS] [SQL]");
    };
    let arg = |i: usize, default: u64| -> Result<u64> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse().with_context(|| format!("bad number {s:?}"))
        })
    };
    let commands = arg(1, 10_000_000)?;
    let connections = arg(2, 1_000)?.max(1);
    let gap = arg(3, 10)? * MS;
    let sql = args
        .get(4)
        .cloned()
        .unwrap_or_else(|| "SELECT SLEEP(0.05) AS pause".into());
    let per_conn = commands.div_ceil(connections);

    let meta = Meta {
        tool: "synthetic_capture".into(),
        started_unix_ns: 0,
        upstream: "synthetic".into(),
        server_version: "10.11".into(),
        redacted: false,
        labels: Default::default(),
    };
    let mut w = CaptureWriter::create(std::path::Path::new(out), &meta, WriterOptions::default())?;
    for conn in 0..connections {
        w.append(&Record::ConnOpen(ConnOpen {
            conn,
            t: conn * MS,
            client_addr: format!("10.0.{}.{}:40000", conn / 250, conn % 250),
            user: "app".into(),
            db: None,
            capabilities: 0,
            charset: 45,
            auth_plugin: "mysql_native_password".into(),
            server_conn_id: u32::try_from(conn).unwrap_or(u32::MAX),
        }))?;
    }
    // Connection c's i-th command starts at i × gap + c × (gap / connections) after the
    // last open: walking the grid row by row emits records in time order.
    let start = connections * MS;
    let stagger = gap / connections;
    let mut written = 0u64;
    'grid: for i in 0..per_conn {
        for conn in 0..connections {
            if written == commands {
                break 'grid;
            }
            let t = start + i * gap + conn * stagger;
            w.append(&Record::Command(Command {
                conn,
                t_start: t,
                t_end: t + 50 * MS,
                cmd: Cmd::Query {
                    sql: format!("{sql}, {written} AS n").into_bytes(),
                },
                outcome: Outcome::Rows {
                    count: 1,
                    warnings: 0,
                    digest: None,
                },
                status: Some(captures::status::AUTOCOMMIT),
            }))?;
            written += 1;
        }
    }
    let end = start + per_conn * gap + 100 * MS;
    for conn in 0..connections {
        w.append(&Record::ConnClose(ConnClose {
            conn,
            t: end,
            reason: CloseReason::Quit,
        }))?;
    }
    w.close()?;
    println!("{out}: {written} commands over {connections} connections");
    Ok(())
}
