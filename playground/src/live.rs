//! `playground demo --live-reshard`: the capture is replayed against Vitess while
//! vitess/reshard.sh moves the customer tables to their own keyspace and splits it in
//! two, and `replayer timeline` shows the latency the application saw through each
//! cut-over ("shard while observing performance").

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::events::{EventLog, around_replay};
use crate::procs::{free_addr, run_logged};
use crate::replay::ReplayRun;
use crate::targets::{SeedSpec, VitessTarget, reseed_vitess};
use crate::tools::Binaries;
use crate::vitess::{Cluster, Layout};

/// How long the reshard takes on a small machine (2 vCPUs, the default 2,000
/// customers: about 2.5 min); the replay is slowed to last about this long.
const EXPECTED_RESHARD: Duration = Duration::from_secs(200);

/// Traffic kept running after the reshard ends, to show the settled state.
const SETTLE: Duration = Duration::from_secs(10);

/// The stages this adds to the demo, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    StartVitess,
    Seed,
    Replay,
    Timeline,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::StartVitess,
        Stage::Seed,
        Stage::Replay,
        Stage::Timeline,
    ];
}

/// What the live reshard needs from the demo.
pub struct Live {
    pub repo: PathBuf,
    pub bins: Binaries,
    pub capture: PathBuf,
    pub captured: Duration,
    pub speed: Option<f64>,
    pub vtgate_buffer: bool,
    pub seed: SeedSpec,
    pub statsd: Option<String>,
    /// InfluxDB's URL: reshard.sh writes its milestones there too (dashboard markers).
    pub influx: Option<String>,
    pub events: Option<EventLog>,
    pub out: PathBuf,
    pub logs: PathBuf,
}

impl Live {
    fn speed(&self) -> f64 {
        self.speed.unwrap_or_else(|| {
            (self.captured.as_secs_f64() / EXPECTED_RESHARD.as_secs_f64()).clamp(0.05, 1.0)
        })
    }

    fn results(&self) -> PathBuf {
        self.out.join("live-reshard.results")
    }

    fn events_file(&self) -> PathBuf {
        self.out.join("live-reshard-events.jsonl")
    }
}

/// What the run left: the page and the phase table (for the terminal summary).
pub struct LiveOutcome {
    pub html: PathBuf,
    pub table: String,
}

/// The live reshard as it runs, one [`Stage`] at a time.
pub struct LiveRun {
    live: Live,
    /// The vtgate port picked for the cluster (shown in its stage's line).
    port: Option<u16>,
    cluster: Option<(Cluster, VitessTarget)>,
    outcome: Option<LiveOutcome>,
}

impl LiveRun {
    pub fn new(live: Live) -> Self {
        LiveRun {
            live,
            port: None,
            cluster: None,
            outcome: None,
        }
    }

    /// Gets ready for `stage` (picks the vtgate port; stops the cluster once the replay
    /// is done) and returns its progress line.
    pub fn prepare(&mut self, stage: Stage) -> Result<String> {
        Ok(match stage {
            Stage::StartVitess => {
                let port = free_addr()?.port();
                self.port = Some(port);
                format!("start Vitess unsharded for the live reshard (vtgate on 127.0.0.1:{port})")
            }
            Stage::Seed => "seed it".into(),
            Stage::Replay => format!(
                "replay at {:.2}× while vitess/reshard.sh runs (MoveTables, then 0 → -80, 80-)",
                self.live.speed()
            ),
            Stage::Timeline => {
                self.cluster = None;
                "latency through the cut-overs (replayer timeline)".into()
            }
        })
    }

    pub fn run(&mut self, stage: Stage) -> Result<()> {
        let live = &self.live;
        match stage {
            Stage::StartVitess => {
                let port = self.port.context("no vtgate port picked")?;
                let cluster = Cluster::up(
                    &live.repo,
                    Layout::Unsharded,
                    &cluster_dir(),
                    port,
                    live.vtgate_buffer,
                )?;
                let vt = VitessTarget::new(&cluster);
                self.cluster = Some((cluster, vt));
            }
            Stage::Seed => {
                let (_, vt) = self.cluster.as_ref().context("Vitess is not running")?;
                reseed_vitess(&live.bins, vt, &live.seed, &live.logs.join("seed.log"))?;
            }
            Stage::Replay => {
                let (_, vt) = self.cluster.as_ref().context("Vitess is not running")?;
                // A rerun into the same directory must not inherit the last run's events.
                let _ = std::fs::remove_file(live.events_file());
                around_replay(live.events.as_ref(), "live-reshard", || {
                    replay_while_resharding(live, &vt.url)
                })?;
            }
            Stage::Timeline => self.outcome = Some(timeline(live)?),
        }
        Ok(())
    }

    /// The page and table, once [`Stage::Timeline`] has run.
    pub fn outcome(&self) -> Option<&LiveOutcome> {
        self.outcome.as_ref()
    }
}

/// Where the live cluster keeps its state (reshard.sh is pointed there too).
fn cluster_dir() -> PathBuf {
    std::env::temp_dir().join(format!("sqlreplay-vitess-live-{}", std::process::id()))
}

/// `replayer timeline` over the replay's results and the reshard's milestones.
fn timeline(live: &Live) -> Result<LiveOutcome> {
    let html = live.out.join("live-reshard.html");
    let output = Command::new(&live.bins.replayer)
        .arg("timeline")
        .arg(live.results())
        .arg("--events")
        .arg(live.events_file())
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
    Ok(LiveOutcome { html, table })
}

/// Replays the capture against `target` while vitess/reshard.sh moves and splits the
/// customer tables of the live cluster; the milestones go to the events file (and to
/// InfluxDB when the demo has one).
fn replay_while_resharding(live: &Live, target: &str) -> Result<()> {
    // Default keyspace `shop`, as the application had before sharding: the
    // tables move to `customer` under the traffic, and reshard.sh --live keeps
    // the routing rules that send `shop.customer` there. (Without a default
    // keyspace instead, vtgate sends table-less statements such as a
    // connection's `SELECT @@...` to the new `customer` keyspace before it has
    // a serving tablet, and they fail.)
    let replay = ReplayRun {
        capture: &live.capture,
        target,
        db_map: None,
        speed: live.speed(),
        label: "live-reshard",
        out: &live.results(),
        statsd: live.statsd.as_deref(),
        quiet: true,
    }
    .spawn(&live.bins, &live.logs)?;
    // Some traffic before anything moves: the baseline of the timeline.
    std::thread::sleep(SETTLE);
    let mut reshard = Command::new(live.repo.join("vitess/reshard.sh"));
    reshard
        .arg("--dir")
        .arg(cluster_dir())
        .arg("--live")
        .env("RESHARD_EVENTS", live.events_file());
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
