//! `playground up|down|status`: the stack for people who want to experiment by hand.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;

use crate::procs::{self, Cleanup, Proc};
use crate::targets::{self, SHOP_DB, SeedSpec, VitessTarget};
use crate::tools::{self, Binaries};
use crate::vitess::{Cluster, Layout};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StackLayout {
    Mariadb,
    Unsharded,
    Sharded,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The database behind the recorder.
    #[arg(long, value_enum, default_value = "mariadb")]
    pub layout: StackLayout,
    /// Where servers keep data and logs (default ./sqlreplay-stack).
    #[arg(long, default_value = "sqlreplay-stack")]
    pub dir: PathBuf,
    /// Recorder listen port (the shop and your own clients connect here).
    #[arg(long, default_value_t = 6033)]
    pub recorder_port: u16,
    /// Shop HTTP port.
    #[arg(long, default_value_t = 8080)]
    pub shop_port: u16,
    /// vtgate MySQL port (Vitess layouts).
    #[arg(long, default_value_t = 15306)]
    pub vtgate_port: u16,
    /// vtgate buffers primary traffic through resharding cut-overs (`--enable_buffer`).
    #[arg(long)]
    pub vtgate_buffer: bool,
    #[command(flatten)]
    pub dataset: SeedSpec,
    /// Port of the live dashboard (0: any free port; the address is printed).
    #[arg(long, default_value_t = 0)]
    pub dashboard_port: u16,
    #[arg(long)]
    pub repo: Option<PathBuf>,
}

/// Starts everything in the foreground and waits for Ctrl-C (which stops it all).
pub fn up(args: UpArgs) -> Result<()> {
    let stack = Stack::new(args)?;
    let metrics = testkit::MetricsStack::start_in(&stack.dir.join("metrics"), true)?;
    let statsd = metrics.statsd_addr().to_string();
    let dashboard = crate::dashboard::start(&metrics.influx_url(), stack.args.dashboard_port)?;
    let backend = stack.start_backend()?;
    let recorder_addr = format!("127.0.0.1:{}", stack.args.recorder_port);
    let _recorder = stack.start_recorder(&recorder_addr, &backend.upstream, &statsd)?;
    let shop_addr = format!("127.0.0.1:{}", stack.args.shop_port);
    let shop_db = format!("mysql://root@{recorder_addr}/{}", backend.shop_db);
    let _shop = stack.start_shop(&shop_addr, &shop_db, &statsd)?;

    println!(
        "stack is up ({:?}); Ctrl-C stops everything",
        stack.args.layout
    );
    println!(
        "  shop      http://{shop_addr}   (try: shop drive --url http://{shop_addr} --users 8 --duration 30s)"
    );
    println!(
        "  recorder  mysql://root@{recorder_addr}  → {}  (plain proxy; restart with --out to capture)",
        backend.upstream
    );
    println!(
        "  statsd    {statsd} → Telegraf → InfluxDB {} (database {})",
        metrics.influx_url(),
        testkit::MetricsStack::DATABASE
    );
    println!(
        "  dashboard http://{}/  (live charts of all of the above)",
        dashboard.addr
    );
    println!("  logs      {}", stack.logs.display());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// What `up` starts things with.
struct Stack {
    args: UpArgs,
    repo: PathBuf,
    bins: Binaries,
    /// `--dir`, absolute.
    dir: PathBuf,
    logs: PathBuf,
    seed: SeedSpec,
}

/// The seeded database behind the recorder, running while this lives.
struct Backend {
    /// Where the recorder forwards to (host:port).
    upstream: String,
    /// The database in the shop's URL (none on sharded Vitess: vtgate routes by table).
    shop_db: &'static str,
    _mariadb: Option<testkit::MariaDb>,
    _cluster: Option<Cluster>,
}

impl Stack {
    /// Creates `--dir` and its logs directory, and finds the tools.
    fn new(args: UpArgs) -> Result<Self> {
        let repo = tools::repo_root(args.repo.as_deref());
        let bins = Binaries::locate()?;
        let logs = args.dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        let dir = args.dir.canonicalize().unwrap_or(args.dir.clone());
        let seed = args.dataset.clone();
        Ok(Stack {
            args,
            repo,
            bins,
            dir,
            logs,
            seed,
        })
    }

    fn start_backend(&self) -> Result<Backend> {
        match self.args.layout {
            StackLayout::Mariadb => self.start_mariadb(),
            StackLayout::Unsharded => self.start_vitess(Layout::Unsharded),
            StackLayout::Sharded => self.start_vitess(Layout::Sharded),
        }
    }

    fn start_mariadb(&self) -> Result<Backend> {
        let db = testkit::MariaDb::start_with(testkit::MariaDbOptions {
            parent_dir: Some(self.dir.join("servers")),
            keep_dir: true,
            ..Default::default()
        })?;
        targets::reseed_mariadb(&self.bins, &db, &self.seed, &self.logs.join("seed.log"))?;
        Ok(Backend {
            upstream: db.addr().to_string(),
            shop_db: SHOP_DB,
            _mariadb: Some(db),
            _cluster: None,
        })
    }

    fn start_vitess(&self, layout: Layout) -> Result<Backend> {
        let cluster = Cluster::up(
            &self.repo,
            layout,
            &self.dir.join(format!("vitess-{}", layout.as_str())),
            self.args.vtgate_port,
            self.args.vtgate_buffer,
        )?;
        let vt = VitessTarget::new(&cluster);
        targets::reseed_vitess(&self.bins, &vt, &self.seed, &self.logs.join("seed.log"))?;
        Ok(Backend {
            upstream: format!("127.0.0.1:{}", self.args.vtgate_port),
            shop_db: if layout == Layout::Sharded {
                ""
            } else {
                SHOP_DB
            },
            _mariadb: None,
            _cluster: Some(cluster),
        })
    }

    fn start_recorder(&self, addr: &str, upstream: &str, statsd: &str) -> Result<Proc> {
        let mut cmd = std::process::Command::new(&self.bins.recorder);
        cmd.args(["--listen", addr, "--upstream", upstream, "--statsd", statsd]);
        let mut recorder = Proc::spawn("recorder", cmd, &self.logs.join("recorder.log"))?;
        recorder.wait_listening(addr.parse()?, Duration::from_secs(10))?;
        Ok(recorder)
    }

    fn start_shop(&self, addr: &str, db_url: &str, statsd: &str) -> Result<Proc> {
        let mut cmd = std::process::Command::new(&self.bins.shop);
        cmd.arg("serve")
            .arg("--db")
            .arg(db_url)
            .args(["--listen", addr, "--statsd", statsd]);
        let mut shop = Proc::spawn("shop serve", cmd, &self.logs.join("shop.log"))?;
        shop.wait_listening(addr.parse()?, Duration::from_secs(10))?;
        Ok(shop)
    }
}

/// Stops what a crashed or interrupted playground left behind.
pub fn down(repo: Option<PathBuf>) -> Result<()> {
    let repo = tools::repo_root(repo.as_deref());
    let Some(state) = procs::load_state() else {
        println!(
            "nothing to stop (no state at {})",
            procs::state_file().display()
        );
        return Ok(());
    };
    if state.owner_pid != std::process::id() && procs::pid_alive(state.owner_pid) {
        println!(
            "note: playground {} is still running; stopping what it started",
            state.owner_pid
        );
    }
    for item in &state.items {
        match item {
            Cleanup::Pid(pid) if procs::pid_alive(*pid) => {
                println!("killing process {pid}");
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
            Cleanup::Pid(_) => {}
            Cleanup::Cluster(dir) => {
                println!("stopping the Vitess cluster in {}", dir.display());
                crate::vitess::down(
                    &repo.join("vitess/cluster.sh"),
                    dir,
                    &dir.with_extension("down.log"),
                );
            }
        }
    }
    let _ = std::fs::remove_file(procs::state_file());
    Ok(())
}

/// Shows what the last playground started and whether it still runs.
pub fn status() -> Result<()> {
    let Some(state) = procs::load_state() else {
        println!("no playground state at {}", procs::state_file().display());
        return Ok(());
    };
    let owner = if procs::pid_alive(state.owner_pid) {
        "running"
    } else {
        "gone"
    };
    println!("playground pid {} ({owner})", state.owner_pid);
    for item in &state.items {
        match item {
            Cleanup::Pid(pid) => {
                let alive = if procs::pid_alive(*pid) {
                    "running"
                } else {
                    "gone"
                };
                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                    .unwrap_or_default();
                println!("  pid {pid:<7} {alive:<8} {}", cmdline.trim());
            }
            Cleanup::Cluster(dir) => println!("  vitess cluster in {}", dir.display()),
        }
    }
    Ok(())
}
