//! `playground demo --live-reshard`: the capture is replayed against Vitess while
//! vitess/reshard.sh moves the customer tables to their own keyspace and splits it in
//! two, and `replayer timeline` shows the latency the application saw through each
//! cut-over ("shard while observing performance").

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::events::{EventLog, around_replay};
use crate::procs::{free_addr, run_logged};
use crate::replay::ReplayRun;
use crate::stage::Stages;
use crate::targets::{SeedSpec, VitessTarget, reseed_vitess};
use crate::tools::Binaries;
use crate::vitess::{Cluster, Layout};

/// How long the reshard takes on a small machine (2 vCPUs, the default 2,000
/// customers: about 2.5 min); the replay is slowed to last about this long.
const EXPECTED_RESHARD: Duration = Duration::from_secs(200);

/// Traffic kept running after the reshard ends, to show the settled state.
const SETTLE: Duration = Duration::from_secs(10);

/// The stages this adds to the demo's count.
pub const STAGES: usize = 4;

pub struct Live<'a> {
    pub repo: &'a Path,
    pub bins: &'a Binaries,
    pub capture: &'a Path,
    pub captured: Duration,
    pub speed: Option<f64>,
    pub vtgate_buffer: bool,
    pub seed: &'a SeedSpec,
    pub statsd: Option<&'a str>,
    /// InfluxDB's URL: reshard.sh writes its milestones there too (dashboard markers).
    pub influx: Option<String>,
    pub events: Option<&'a EventLog>,
    pub out: &'a Path,
    pub logs: &'a Path,
}

/// What the run left: the page and the phase table (for the terminal summary).
pub struct LiveOutcome {
    pub html: PathBuf,
    pub table: String,
}

pub fn run(live: &Live<'_>, stages: &mut Stages) -> Result<LiveOutcome> {
    let speed = live.speed.unwrap_or_else(|| {
        (live.captured.as_secs_f64() / EXPECTED_RESHARD.as_secs_f64()).clamp(0.05, 1.0)
    });
    let port = free_addr()?.port();
    let dir = std::env::temp_dir().join(format!("sqlreplay-vitess-live-{}", std::process::id()));
    let cluster = stages.run(
        &format!("start Vitess unsharded for the live reshard (vtgate on 127.0.0.1:{port})"),
        || Cluster::up(live.repo, Layout::Unsharded, &dir, port, live.vtgate_buffer),
    )?;
    let vt = VitessTarget::new(&cluster);
    stages.run("seed it", || {
        reseed_vitess(live.bins, &vt, live.seed, &live.logs.join("seed.log"))
    })?;

    let results = live.out.join("live-reshard.results");
    let events = live.out.join("live-reshard-events.jsonl");
    // A rerun into the same directory must not inherit the last run's events.
    let _ = std::fs::remove_file(&events);
    stages.run(
        &format!(
            "replay at {speed:.2}× while vitess/reshard.sh runs (MoveTables, then 0 → -80, 80-)"
        ),
        || {
            around_replay(live.events, "live-reshard", || {
                replay_while_resharding(live, &vt.url, &dir, speed, &results, &events)
            })
        },
    )?;
    drop(cluster);

    let html = live.out.join("live-reshard.html");
    let table = stages.run("latency through the cut-overs (replayer timeline)", || {
        let output = Command::new(&live.bins.replayer)
            .arg("timeline")
            .arg(&results)
            .arg("--events")
            .arg(&events)
            .arg("--html")
            .arg(&html)
            .arg("--json")
            .arg(live.out.join("live-reshard.json"))
            .output()
            .context("running replayer timeline")?;
        if !output.status.success() {
            bail!(
                "replayer timeline failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let table = String::from_utf8_lossy(&output.stdout).into_owned();
        std::fs::write(live.out.join("live-reshard.txt"), &table)?;
        Ok(table)
    })?;
    Ok(LiveOutcome { html, table })
}

/// Replays the capture against `target` while vitess/reshard.sh moves and splits the
/// customer tables of the cluster in `dir`; the milestones go to `events` (and to
/// InfluxDB when the demo has one).
fn replay_while_resharding(
    live: &Live<'_>,
    target: &str,
    dir: &Path,
    speed: f64,
    results: &Path,
    events: &Path,
) -> Result<()> {
    // Default keyspace `shop`, as the application had before sharding: the
    // tables move to `customer` under the traffic, and reshard.sh --live keeps
    // the routing rules that send `shop.customer` there. (Without a default
    // keyspace instead, vtgate sends table-less statements such as a
    // connection's `SELECT @@...` to the new `customer` keyspace before it has
    // a serving tablet, and they fail.)
    let replay = ReplayRun {
        capture: live.capture,
        target,
        db_map: None,
        speed,
        label: "live-reshard",
        out: results,
        statsd: live.statsd,
        quiet: true,
    }
    .spawn(live.bins, live.logs)?;
    // Some traffic before anything moves: the baseline of the timeline.
    std::thread::sleep(SETTLE);
    let mut reshard = Command::new(live.repo.join("vitess/reshard.sh"));
    reshard
        .arg("--dir")
        .arg(dir)
        .arg("--live")
        .env("RESHARD_EVENTS", events);
    if let Some(url) = &live.influx {
        reshard.env("SQLREPLAY_INFLUX_URL", url);
    }
    let resharded = run_logged("vitess/reshard.sh", reshard, &live.logs.join("reshard.log"));
    std::thread::sleep(SETTLE);
    // SIGTERM: the replayer stops sending, writes what ran, exits 130; if the
    // capture ran out first it has exited 0 already.
    let status = replay.stop(Duration::from_secs(60))?;
    resharded?;
    if !status.success() && status.code() != Some(130) {
        bail!("the replay failed ({status}); see logs/replay-live-reshard.log");
    }
    Ok(())
}
