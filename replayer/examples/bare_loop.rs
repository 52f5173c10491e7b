//! The replayer's speed anchor in bench/replayer.sh: what mysql_async alone does with
//! sysbench's oltp_point_select, with no capture, schedule or results: N connections,
//! each preparing `SELECT c FROM sbtestT WHERE id=?` once per table and executing it back
//! to back with uniform random ids for a fixed time. Rows are read the way the replayer
//! reads them (every row of every result set, counted), so the difference between this
//! and `replayer run --speed max` is the replayer's own cost.
//!
//! Usage: bare_loop URL [THREADS=8] [SECONDS=10] [TABLES=4] [TABLE_SIZE=10000]
//! Prints: `queries N qps Q`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

fn arg(n: usize, default: u64) -> Result<u64> {
    std::env::args()
        .nth(n)
        .map_or(Ok(default), |a| a.parse().context("numeric argument"))
}

fn main() -> Result<()> {
    let url = std::env::args()
        .nth(1)
        .context("usage: bare_loop URL [THREADS] [SECONDS] [TABLES] [TABLE_SIZE]")?;
    let threads = arg(2, 8)?;
    let secs = arg(3, 10)?;
    let tables = arg(4, 4)?.max(1);
    let size = arg(5, 10_000)?.max(1);
    let opts = Opts::from_url(&url)?;
    // The replayer's own runtime choice: one thread when confined to one CPU.
    let rt = replayer::run::runtime()?;
    let (queries, elapsed) = rt.block_on(async {
        let started = Instant::now();
        let end = started + Duration::from_secs(secs);
        let workers: Vec<_> = (0..threads)
            .map(|seed| {
                let opts = opts.clone();
                tokio::spawn(async move { worker(opts, seed, end, tables, size).await })
            })
            .collect();
        let mut total = 0u64;
        for w in workers {
            total += w.await??;
        }
        anyhow::Ok((total, started.elapsed()))
    })?;
    println!(
        "queries {queries} qps {:.0}",
        queries as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

async fn worker(opts: Opts, seed: u64, end: Instant, tables: u64, size: u64) -> Result<u64> {
    let mut conn = Conn::new(opts).await?;
    let mut stmts = Vec::new();
    for t in 1..=tables {
        stmts.push(
            conn.prep(format!("SELECT c FROM sbtest{t} WHERE id=?"))
                .await?,
        );
    }
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut n = 0u64;
    while Instant::now() < end {
        let stmt = &stmts[rng.random_range(0..stmts.len())];
        let id = rng.random_range(1..=size);
        let mut result = conn.exec_iter(stmt, (id,)).await?;
        let mut rows = 0u64;
        loop {
            while result.next().await?.is_some() {
                rows += 1;
            }
            if result.is_empty() {
                break;
            }
        }
        std::hint::black_box(rows);
        n += 1;
    }
    conn.disconnect().await?;
    Ok(n)
}
