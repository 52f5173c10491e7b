//! `playground demo`: the whole story, one stage at a time.
//!
//! seed → serve the shop through the recorder → drive it → replay the capture at each
//! speed against MariaDB, Vitess unsharded and Vitess sharded (each seeded identically
//! before every replay, so the captured writes land on the same rows) → compare.
//!
//! The stages are data: [`plan`] lists them from the arguments, and [`run`] runs the
//! list in one loop, so the `[i/N]` count is the list's length.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::dashboard::{ClassNames, Dashboard};
use crate::events::{EventLog, around_replay};
use crate::live::{self, Live, LiveRun};
use crate::procs::{Proc, free_addr, run_logged};
use crate::replay::ReplayRun;
use crate::stage::Stages;
use crate::targets::{SHOP_DB, SeedSpec, VitessTarget, reseed_mariadb, reseed_vitess};
use crate::tools::{self, Binaries};
use crate::vitess::{Cluster, Layout};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Mariadb,
    VitessUnsharded,
    VitessSharded,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Mariadb => "mariadb",
            Target::VitessUnsharded => "vitess-unsharded",
            Target::VitessSharded => "vitess-sharded",
        }
    }

    /// The Vitess cluster a replay against this target needs, if any.
    fn layout(self) -> Option<Layout> {
        match self {
            Target::Mariadb => None,
            Target::VitessUnsharded => Some(Layout::Unsharded),
            Target::VitessSharded => Some(Layout::Sharded),
        }
    }

    /// As the stage lines name it.
    fn name(self) -> String {
        match self.layout() {
            None => "MariaDB".into(),
            Some(layout) => format!("Vitess {}", layout.as_str()),
        }
    }
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the capture, results, report and every server's log go
    /// (default: ./sqlreplay-demo-<date>-<time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// How long the shop is driven (and so how long the capture is).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Virtual users driving the shop.
    #[arg(long, default_value_t = 16)]
    pub users: u32,
    /// Shopping scenarios started per second (open loop). The default keeps MariaDB
    /// well below saturation while recording, so replays at 1× measure latency, not
    /// queueing, and the whole demo stays within about ten minutes.
    #[arg(long, default_value_t = 60.0)]
    pub rate: f64,
    /// Drive closed loop instead (each user starts a scenario as soon as the last
    /// ended): records the most traffic the stack can take.
    #[arg(long)]
    pub closed_loop: bool,
    /// Replay speeds, each against every target (1 = as recorded).
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub speeds: Vec<f64>,
    /// Replay targets, in report column order (the first run is the baseline).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "mariadb,vitess-unsharded,vitess-sharded"
    )]
    pub targets: Vec<Target>,
    #[command(flatten)]
    pub dataset: SeedSpec,
    /// Skip Telegraf and InfluxDB (and so the live dashboard).
    #[arg(long)]
    pub no_metrics: bool,
    /// Port of the live dashboard (0: any free port; the address is printed).
    #[arg(long, default_value_t = 0)]
    pub dashboard_port: u16,
    /// Do not run the install scripts (everything is already installed).
    #[arg(long)]
    pub skip_install: bool,
    /// vtgate buffers primary traffic through resharding cut-overs (`--enable_buffer`)
    /// instead of failing it; off by default, as in Vitess.
    #[arg(long)]
    pub vtgate_buffer: bool,
    /// Finally, replay against Vitess while vitess/reshard.sh moves and splits the
    /// customer tables, and chart the latency through each cut-over (live-reshard.html).
    #[arg(long)]
    pub live_reshard: bool,
    /// Replay speed during the live reshard (default: slowed so the capture lasts about
    /// as long as the reshard, ~200 s).
    #[arg(long, requires = "live_reshard")]
    pub live_reshard_speed: Option<f64>,
    /// Repository checkout holding the scripts and configs.
    #[arg(long)]
    pub repo: Option<PathBuf>,
}

/// One stage of the story; [`plan`] lists them in the order they run.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Install,
    StartMetrics,
    StartMariadb,
    SeedMariadb,
    StartRecorder,
    StartShop,
    Drive,
    StopRecording,
    Inspect,
    /// Starts the cluster the next replays run against (stopped after them).
    StartVitess(Layout),
    Replay(Target, f64),
    Compare,
    Live(live::Stage),
}

/// The stages the arguments ask for, in order.
fn plan(args: &DemoArgs) -> Vec<Stage> {
    let mut plan = vec![Stage::Install];
    if !args.no_metrics {
        plan.push(Stage::StartMetrics);
    }
    plan.extend([
        Stage::StartMariadb,
        Stage::SeedMariadb,
        Stage::StartRecorder,
        Stage::StartShop,
        Stage::Drive,
        Stage::StopRecording,
        Stage::Inspect,
    ]);
    for &target in &args.targets {
        if let Some(layout) = target.layout() {
            plan.push(Stage::StartVitess(layout));
        }
        plan.extend(
            args.speeds
                .iter()
                .map(|&speed| Stage::Replay(target, speed)),
        );
    }
    plan.push(Stage::Compare);
    if args.live_reshard {
        plan.extend(live::Stage::ALL.map(Stage::Live));
    }
    plan
}

pub fn run(args: DemoArgs) -> Result<()> {
    validate(&args)?;
    let plan = plan(&args);
    let mut demo = Demo::setup(args)?;
    let mut stages = Stages::new(plan.len());
    for &stage in &plan {
        let title = demo.prepare(stage)?;
        stages.run(&title, || demo.run(stage))?;
        if stage == Stage::StartMetrics {
            stages.set_events(demo.start_dashboard()?);
        }
    }
    demo.report(stages.elapsed_secs());
    Ok(())
}

fn validate(args: &DemoArgs) -> Result<()> {
    if args.speeds.is_empty() || args.speeds.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        bail!("--speeds must be positive numbers, e.g. 1,4");
    }
    if args
        .live_reshard_speed
        .is_some_and(|s| !s.is_finite() || s <= 0.0)
    {
        bail!("--live-reshard-speed must be a positive number");
    }
    if args.targets.is_empty() {
        bail!("--targets needs at least one of mariadb, vitess-unsharded, vitess-sharded");
    }
    Ok(())
}

/// The demo as it runs: where everything goes, and what the stages started so far.
/// Fields drop in declaration order: servers stop before the metrics that watch them.
struct Demo {
    args: DemoArgs,
    repo: PathBuf,
    out: PathBuf,
    logs: PathBuf,
    bins: Binaries,
    seed: SeedSpec,
    capture: PathBuf,
    live: Option<LiveRun>,
    vitess: Option<(Cluster, VitessTarget)>,
    /// Ports picked when a stage is prepared (its line shows them), used when it runs.
    recorder_addr: Option<SocketAddr>,
    shop_addr: Option<SocketAddr>,
    vtgate_addr: Option<SocketAddr>,
    shop: Option<Proc>,
    recorder: Option<Proc>,
    results: Vec<PathBuf>,
    mariadb: Option<testkit::MariaDb>,
    events: Option<EventLog>,
    dashboard: Option<Dashboard>,
    metrics: Option<testkit::MetricsStack>,
}

impl Demo {
    /// Creates the output directory and finds the tools.
    fn setup(args: DemoArgs) -> Result<Self> {
        let repo = tools::repo_root(args.repo.as_deref());
        let out = match &args.out {
            Some(dir) => dir.clone(),
            None => default_out_dir(),
        };
        let logs = out.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let out = out.canonicalize().unwrap_or(out);
        let bins = Binaries::locate()?;
        println!("sqlreplay demo → {}", out.display());
        Ok(Demo {
            seed: args.dataset.clone(),
            capture: out.join("shop.sqlcap"),
            logs,
            args,
            repo,
            out,
            bins,
            live: None,
            vitess: None,
            recorder_addr: None,
            shop_addr: None,
            vtgate_addr: None,
            shop: None,
            recorder: None,
            results: Vec::new(),
            mariadb: None,
            events: None,
            dashboard: None,
            metrics: None,
        })
    }

    /// Gets ready for `stage` and returns its progress line: a Vitess cluster lives
    /// through its target's replays only, and servers get their ports here.
    fn prepare(&mut self, stage: Stage) -> Result<String> {
        if !matches!(stage, Stage::Replay(target, _) if target.layout().is_some()) {
            self.vitess = None;
        }
        let seed = &self.seed;
        Ok(match stage {
            Stage::Install => "install what is missing".into(),
            Stage::StartMetrics => "start Telegraf → InfluxDB".into(),
            Stage::StartMariadb => "start MariaDB".into(),
            Stage::SeedMariadb => format!(
                "seed MariaDB ({} customers, {} products, seed {})",
                seed.customers, seed.products, seed.seed
            ),
            Stage::StartRecorder => {
                format!("start the recorder on {}", pick(&mut self.recorder_addr)?)
            }
            Stage::StartShop => format!("start the shop on http://{}", pick(&mut self.shop_addr)?),
            Stage::Drive => format!(
                "drive the shop: {} users for {}",
                self.args.users,
                humantime::format_duration(self.args.duration)
            ),
            Stage::StopRecording => "stop recording".into(),
            Stage::Inspect => "inspect the capture".into(),
            Stage::StartVitess(layout) => format!(
                "start Vitess {} (vtgate on 127.0.0.1:{})",
                layout.as_str(),
                pick(&mut self.vtgate_addr)?.port()
            ),
            Stage::Replay(target, speed) => {
                format!("reseed and replay at {speed}× against {}", target.name())
            }
            Stage::Compare => "compare the runs".into(),
            Stage::Live(stage) => self.live_run().prepare(stage)?,
        })
    }

    fn run(&mut self, stage: Stage) -> Result<()> {
        match stage {
            Stage::Install => self.install(),
            Stage::StartMetrics => {
                let dir = self.out.join("metrics");
                self.metrics = Some(testkit::MetricsStack::start_in(&dir, true)?);
                Ok(())
            }
            Stage::StartMariadb => {
                self.mariadb = Some(testkit::MariaDb::start_with(testkit::MariaDbOptions {
                    parent_dir: Some(self.out.join("servers")),
                    keep_dir: true,
                    ..Default::default()
                })?);
                Ok(())
            }
            Stage::SeedMariadb => {
                let db = started(&self.mariadb, "MariaDB")?;
                reseed_mariadb(&self.bins, db, &self.seed, &self.logs.join("seed.log"))
            }
            Stage::StartRecorder => self.start_recorder(),
            Stage::StartShop => self.start_shop(),
            Stage::Drive => self.drive(),
            Stage::StopRecording => self.stop_recording(),
            Stage::Inspect => self.inspect(),
            Stage::StartVitess(layout) => self.start_vitess(layout),
            Stage::Replay(target, speed) => self.replay(target, speed),
            Stage::Compare => self.compare(),
            Stage::Live(stage) => self.live_run().run(stage),
        }
    }

    fn install(&self) -> Result<()> {
        if self.args.skip_install {
            return Ok(());
        }
        let log = self.logs.join("install.log");
        tools::install(&self.repo, "scripts/install-deps.sh", &log)?;
        let vitess = self.args.targets.iter().any(|t| t.layout().is_some());
        if vitess || self.args.live_reshard {
            tools::install(&self.repo, "vitess/install.sh", &log)?;
        }
        Ok(())
    }

    /// After the metrics stage: the dashboard (which prints its address) and the event
    /// log, returned for the stages' markers.
    fn start_dashboard(&mut self) -> Result<Option<EventLog>> {
        let Some(metrics) = &self.metrics else {
            return Ok(None);
        };
        let influx = metrics.influx_url();
        self.dashboard = Some(crate::dashboard::start(&influx, self.args.dashboard_port)?);
        self.events = Some(EventLog::new(&influx, testkit::MetricsStack::DATABASE)?);
        Ok(self.events.clone())
    }

    fn statsd(&self) -> Option<String> {
        self.metrics.as_ref().map(|m| m.statsd_addr().to_string())
    }

    fn add_statsd(&self, cmd: &mut Command) {
        if let Some(statsd) = self.statsd() {
            cmd.arg("--statsd").arg(statsd);
        }
    }

    /// Record: shop → recorder → MariaDB.
    fn start_recorder(&mut self) -> Result<()> {
        let addr = *started(&self.recorder_addr, "the recorder's port")?;
        let upstream = started(&self.mariadb, "MariaDB")?.addr();
        let mut cmd = Command::new(&self.bins.recorder);
        cmd.arg("--listen")
            .arg(addr.to_string())
            .arg("--upstream")
            .arg(upstream.to_string())
            .arg("--out")
            .arg(&self.capture);
        self.add_statsd(&mut cmd);
        let mut proc = Proc::spawn("recorder", cmd, &self.logs.join("recorder.log"))?;
        proc.wait_listening(addr, Duration::from_secs(10))?;
        self.recorder = Some(proc);
        Ok(())
    }

    fn start_shop(&mut self) -> Result<()> {
        let addr = *started(&self.shop_addr, "the shop's port")?;
        let recorder = started(&self.recorder_addr, "the recorder's port")?;
        let mut cmd = Command::new(&self.bins.shop);
        cmd.arg("serve")
            .arg("--db")
            .arg(format!("mysql://root@{recorder}/{SHOP_DB}"))
            .arg("--listen")
            .arg(addr.to_string());
        self.add_statsd(&mut cmd);
        let mut proc = Proc::spawn("shop serve", cmd, &self.logs.join("shop.log"))?;
        proc.wait_listening(addr, Duration::from_secs(10))?;
        self.shop = Some(proc);
        Ok(())
    }

    fn drive(&self) -> Result<()> {
        let shop = started(&self.shop_addr, "the shop's port")?;
        let mut cmd = Command::new(&self.bins.shop);
        cmd.arg("drive")
            .arg("--url")
            .arg(format!("http://{shop}"))
            .arg("--users")
            .arg(self.args.users.to_string())
            .arg("--duration")
            .arg(format!("{}s", self.args.duration.as_secs_f64()));
        if !self.args.closed_loop {
            cmd.arg("--rate").arg(self.args.rate.to_string());
        }
        self.add_statsd(&mut cmd);
        run_logged("shop drive", cmd, &self.logs.join("drive.log"))
    }

    fn stop_recording(&mut self) -> Result<()> {
        if let Some(shop) = self.shop.take() {
            shop.kill();
        }
        let recorder = self
            .recorder
            .take()
            .context("the recorder is not running")?;
        let status = recorder.stop(Duration::from_secs(30))?;
        if !status.success() {
            bail!("the recorder exited with {status}; see logs/recorder.log");
        }
        Ok(())
    }

    fn inspect(&self) -> Result<()> {
        let mut cmd = Command::new(&self.bins.replayer);
        cmd.arg("inspect").arg(&self.capture);
        run_logged("replayer inspect", cmd, &self.out.join("inspect.txt"))?;
        if let Some(dashboard) = &self.dashboard {
            teach_classes(&self.bins, &self.capture, &dashboard.classes);
        }
        Ok(())
    }

    fn start_vitess(&mut self, layout: Layout) -> Result<()> {
        let port = started(&self.vtgate_addr, "the vtgate port")?.port();
        // Not under --out: Vitess runs as the unprivileged `vitess` user, which cannot
        // enter a root-owned home directory. The cluster script keeps its logs there
        // until the cluster is stopped.
        let dir = std::env::temp_dir().join(format!(
            "sqlreplay-vitess-{}-{}",
            layout.as_str(),
            std::process::id()
        ));
        let cluster = Cluster::up(&self.repo, layout, &dir, port, self.args.vtgate_buffer)?;
        let vt = VitessTarget::new(&cluster);
        self.vitess = Some((cluster, vt));
        Ok(())
    }

    /// Seeds the target as the capture began, replays, and keeps the results' path.
    fn replay(&mut self, target: Target, speed: f64) -> Result<()> {
        let label = format!("{}-{speed}x", target.label());
        let out = self.out.join(format!("{label}.results"));
        let seed_log = self.logs.join("seed.log");
        let (url, db_map) = if target.layout().is_none() {
            let db = started(&self.mariadb, "MariaDB")?;
            reseed_mariadb(&self.bins, db, &self.seed, &seed_log)?;
            (db.url_for(SHOP_DB), None)
        } else {
            let (_, vt) = started(&self.vitess, "Vitess")?;
            reseed_vitess(&self.bins, vt, &self.seed, &seed_log)?;
            (vt.url.clone(), vt.db_map.clone())
        };
        let statsd = self.statsd();
        let replay = ReplayRun {
            capture: &self.capture,
            target: &url,
            db_map: db_map.as_deref(),
            speed,
            label: &label,
            out: &out,
            statsd: statsd.as_deref(),
            quiet: false,
        };
        around_replay(self.events.as_ref(), &label, || {
            replay.run(&self.bins, &self.logs)
        })?;
        self.results.push(out);
        Ok(())
    }

    fn compare(&self) -> Result<()> {
        let mut cmd = Command::new(&self.bins.replayer);
        cmd.arg("compare")
            .args(&self.results)
            .arg("--html")
            .arg(self.out.join("report.html"))
            .arg("--json")
            .arg(self.out.join("report.json"));
        run_logged("replayer compare", cmd, &self.out.join("report.txt"))
    }

    /// The live reshard's own state, made when its first stage is prepared (everything
    /// it needs from the demo exists by then).
    fn live_run(&mut self) -> &mut LiveRun {
        let live = match self.live.take() {
            Some(live) => live,
            None => LiveRun::new(Live {
                repo: self.repo.clone(),
                bins: self.bins.clone(),
                capture: self.capture.clone(),
                captured: self.args.duration,
                speed: self.args.live_reshard_speed,
                vtgate_buffer: self.args.vtgate_buffer,
                seed: self.seed.clone(),
                statsd: self.statsd(),
                influx: self.metrics.as_ref().map(|m| m.influx_url()),
                events: self.events.clone(),
                out: self.out.clone(),
                logs: self.logs.clone(),
            }),
        };
        self.live.insert(live)
    }

    /// The comparison, the live reshard's table, and where everything is.
    fn report(&self, elapsed_secs: f64) {
        println!();
        print!(
            "{}",
            std::fs::read_to_string(self.out.join("report.txt")).unwrap_or_default()
        );
        if let Some(live) = self.live.as_ref().and_then(LiveRun::outcome) {
            println!();
            print!("{}", live.table);
            println!("chart: {}", live.html.display());
        }
        println!();
        println!(
            "done in {elapsed_secs:.0}s. Report: {}  (JSON: report.json, logs: logs/)",
            self.out.join("report.html").display()
        );
        if let Some(metrics) = &self.metrics {
            println!(
                "metrics are in InfluxDB at {} (database {}), stopped now; data kept in {}",
                metrics.influx_url(),
                testkit::MetricsStack::DATABASE,
                metrics.dir().display()
            );
        }
    }
}

/// A free port for the server a stage starts, kept in `slot` for when it runs.
fn pick(slot: &mut Option<SocketAddr>) -> Result<SocketAddr> {
    let addr = free_addr()?;
    *slot = Some(addr);
    Ok(addr)
}

/// What an earlier stage started: [`plan`] orders the stages so that it exists.
fn started<'a, T>(slot: &'a Option<T>, what: &str) -> Result<&'a T> {
    slot.as_ref()
        .with_context(|| format!("{what}: not started (a stage is out of order)"))
}

/// Gives the dashboard the capture's class fingerprints, for its slowest-classes
/// legend. Best effort: without them the legend shows class ids only.
fn teach_classes(bins: &Binaries, capture: &Path, names: &ClassNames) {
    let output = Command::new(&bins.replayer)
        .args(["inspect", "--json", "--top", "10000"])
        .arg(capture)
        .output();
    let learnt = match output {
        Ok(o) if o.status.success() => names
            .learn(&String::from_utf8_lossy(&o.stdout))
            .map_err(|e| e.to_string()),
        Ok(o) => Err(String::from_utf8_lossy(&o.stderr).into_owned()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = learnt {
        eprintln!("playground: the dashboard will show class ids only ({e})");
    }
}

/// `./sqlreplay-demo-20261124-225359`, from the wall clock in UTC.
fn default_out_dir() -> PathBuf {
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = stamp
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect::<String>()
        .replace('T', "-");
    PathBuf::from(format!("sqlreplay-demo-{compact}"))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        demo: DemoArgs,
    }

    fn plan_of(args: &[&str]) -> Vec<Stage> {
        let cli = Cli::try_parse_from(std::iter::once("demo").chain(args.iter().copied()));
        plan(&cli.expect("valid arguments").demo)
    }

    #[test]
    fn the_plan_has_a_stage_per_replay_and_per_cluster() {
        // Install, metrics, MariaDB, seed, recorder, shop, drive, stop, inspect,
        // 2 clusters, 3 targets × 2 speeds, compare.
        assert_eq!(plan_of(&[]).len(), 18);
        let small = plan_of(&["--no-metrics", "--targets", "mariadb", "--speeds", "1"]);
        assert_eq!(small.len(), 10);
        assert_eq!(
            small[8..],
            [Stage::Replay(Target::Mariadb, 1.0), Stage::Compare]
        );
        let live = plan_of(&["--targets", "mariadb", "--speeds", "1", "--live-reshard"]);
        assert_eq!(live.len(), 11 + live::Stage::ALL.len());
        assert_eq!(live[11], Stage::Live(live::Stage::StartVitess));
    }

    #[test]
    fn each_cluster_starts_right_before_its_targets_replays() {
        let plan = plan_of(&["--targets", "vitess-sharded,mariadb", "--speeds", "1,4"]);
        let at = plan
            .iter()
            .position(|s| *s == Stage::StartVitess(Layout::Sharded))
            .expect("a sharded cluster");
        assert_eq!(
            plan[at + 1..at + 5],
            [
                Stage::Replay(Target::VitessSharded, 1.0),
                Stage::Replay(Target::VitessSharded, 4.0),
                Stage::Replay(Target::Mariadb, 1.0),
                Stage::Replay(Target::Mariadb, 4.0),
            ]
        );
    }
}
