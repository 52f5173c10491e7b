//! `playground demo`: the whole story, one stage at a time.
//!
//! seed → serve the shop through the recorder → drive it → replay the capture at each
//! speed against MariaDB, Vitess unsharded and Vitess sharded (each seeded identically
//! before every replay, so the captured writes land on the same rows) → compare.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::dashboard::ClassNames;
use crate::events::{EventLog, around_replay};
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
    /// Customers seeded.
    #[arg(long, default_value_t = 2000)]
    pub customers: u64,
    /// Products seeded.
    #[arg(long, default_value_t = 500)]
    pub products: u64,
    /// Seed of the deterministic dataset.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
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

pub fn run(args: DemoArgs) -> Result<()> {
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

    let vitess_layouts: Vec<Layout> = args
        .targets
        .iter()
        .filter_map(|t| match t {
            Target::Mariadb => None,
            Target::VitessUnsharded => Some(Layout::Unsharded),
            Target::VitessSharded => Some(Layout::Sharded),
        })
        .collect();
    let replays = args.targets.len() * args.speeds.len();
    let total = 9
        + usize::from(!args.no_metrics)
        + replays
        + vitess_layouts.len()
        + if args.live_reshard {
            crate::live::STAGES
        } else {
            0
        };
    let mut stages = Stages::new(total);

    stages.run("install what is missing", || {
        if args.skip_install {
            return Ok(());
        }
        let log = logs.join("install.log");
        tools::install(&repo, "scripts/install-deps.sh", &log)?;
        if !vitess_layouts.is_empty() || args.live_reshard {
            tools::install(&repo, "vitess/install.sh", &log)?;
        }
        Ok(())
    })?;

    let metrics = if args.no_metrics {
        None
    } else {
        Some(stages.run("start Telegraf → InfluxDB", || {
            Ok(testkit::MetricsStack::start_in(&out.join("metrics"), true)?)
        })?)
    };
    let statsd = metrics.as_ref().map(|m| m.statsd_addr().to_string());
    let dashboard = match &metrics {
        Some(m) => Some(crate::dashboard::start(
            &m.influx_url(),
            args.dashboard_port,
        )?),
        None => None,
    };
    let events = match &metrics {
        Some(m) => Some(EventLog::new(
            &m.influx_url(),
            testkit::MetricsStack::DATABASE,
        )?),
        None => None,
    };
    stages.set_events(events.clone());

    let mariadb = stages.run("start MariaDB", || {
        Ok(testkit::MariaDb::start_with(testkit::MariaDbOptions {
            parent_dir: Some(out.join("servers")),
            keep_dir: true,
            ..Default::default()
        })?)
    })?;
    let seed = SeedSpec {
        customers: args.customers,
        products: args.products,
        seed: args.seed,
    };
    stages.run(
        &format!(
            "seed MariaDB ({} customers, {} products, seed {})",
            seed.customers, seed.products, seed.seed
        ),
        || reseed_mariadb(&bins, &mariadb, &seed, &logs.join("seed.log")),
    )?;

    // Record: shop → recorder → MariaDB.
    let capture = out.join("shop.sqlcap");
    let recorder_addr = free_addr()?;
    let recorder = stages.run(&format!("start the recorder on {recorder_addr}"), || {
        let mut cmd = Command::new(&bins.recorder);
        cmd.arg("--listen")
            .arg(recorder_addr.to_string())
            .arg("--upstream")
            .arg(mariadb.addr().to_string())
            .arg("--out")
            .arg(&capture);
        if let Some(statsd) = &statsd {
            cmd.arg("--statsd").arg(statsd);
        }
        let mut proc = Proc::spawn("recorder", cmd, &logs.join("recorder.log"))?;
        proc.wait_listening(recorder_addr, Duration::from_secs(10))?;
        Ok(proc)
    })?;
    let shop_addr = free_addr()?;
    let shop = stages.run(&format!("start the shop on http://{shop_addr}"), || {
        let mut cmd = Command::new(&bins.shop);
        cmd.arg("serve")
            .arg("--db")
            .arg(format!("mysql://root@{recorder_addr}/{SHOP_DB}"))
            .arg("--listen")
            .arg(shop_addr.to_string());
        if let Some(statsd) = &statsd {
            cmd.arg("--statsd").arg(statsd);
        }
        let mut proc = Proc::spawn("shop serve", cmd, &logs.join("shop.log"))?;
        proc.wait_listening(shop_addr, Duration::from_secs(10))?;
        Ok(proc)
    })?;
    let drive_log = logs.join("drive.log");
    stages.run(
        &format!(
            "drive the shop: {} users for {}",
            args.users,
            humantime::format_duration(args.duration)
        ),
        || {
            let mut cmd = Command::new(&bins.shop);
            cmd.arg("drive")
                .arg("--url")
                .arg(format!("http://{shop_addr}"))
                .arg("--users")
                .arg(args.users.to_string())
                .arg("--duration")
                .arg(format!("{}s", args.duration.as_secs_f64()));
            if !args.closed_loop {
                cmd.arg("--rate").arg(args.rate.to_string());
            }
            if let Some(statsd) = &statsd {
                cmd.arg("--statsd").arg(statsd);
            }
            run_logged("shop drive", cmd, &drive_log)
        },
    )?;
    stages.run("stop recording", || {
        shop.kill();
        let status = recorder.stop(Duration::from_secs(30))?;
        if !status.success() {
            bail!("the recorder exited with {status}; see logs/recorder.log");
        }
        Ok(())
    })?;

    stages.run("inspect the capture", || {
        let mut cmd = Command::new(&bins.replayer);
        cmd.arg("inspect").arg(&capture);
        run_logged("replayer inspect", cmd, &out.join("inspect.txt"))?;
        if let Some(dashboard) = &dashboard {
            teach_classes(&bins, &capture, &dashboard.classes);
        }
        Ok(())
    })?;

    let mut results = Vec::new();
    for target in &args.targets {
        match target {
            Target::Mariadb => {
                for &speed in &args.speeds {
                    let label = run_label(*target, speed);
                    let path = out.join(format!("{label}.results"));
                    stages.run(
                        &format!("reseed and replay at {speed}× against MariaDB"),
                        || {
                            reseed_mariadb(&bins, &mariadb, &seed, &logs.join("seed.log"))?;
                            around_replay(events.as_ref(), &label, || {
                                ReplayRun {
                                    capture: &capture,
                                    target: &mariadb.url_for(SHOP_DB),
                                    db_map: None,
                                    speed,
                                    label: &label,
                                    out: &path,
                                    statsd: statsd.as_deref(),
                                    quiet: false,
                                }
                                .run(&bins, &logs)
                            })
                        },
                    )?;
                    results.push(path);
                }
            }
            Target::VitessUnsharded | Target::VitessSharded => {
                let layout = if *target == Target::VitessSharded {
                    Layout::Sharded
                } else {
                    Layout::Unsharded
                };
                let port = free_addr()?.port();
                // Not under --out: Vitess runs as the unprivileged `vitess` user, which
                // cannot enter a root-owned home directory. The cluster script keeps its
                // logs there until the cluster is stopped.
                let dir = std::env::temp_dir().join(format!(
                    "sqlreplay-vitess-{}-{}",
                    layout.as_str(),
                    std::process::id()
                ));
                let cluster = stages.run(
                    &format!(
                        "start Vitess {} (vtgate on 127.0.0.1:{port})",
                        layout.as_str()
                    ),
                    || Cluster::up(&repo, layout, &dir, port, args.vtgate_buffer),
                )?;
                let vt = VitessTarget::new(&cluster);
                for &speed in &args.speeds {
                    let label = run_label(*target, speed);
                    let path = out.join(format!("{label}.results"));
                    stages.run(
                        &format!(
                            "reseed and replay at {speed}× against Vitess {}",
                            layout.as_str()
                        ),
                        || {
                            reseed_vitess(&bins, &vt, &seed, &logs.join("seed.log"))?;
                            around_replay(events.as_ref(), &label, || {
                                ReplayRun {
                                    capture: &capture,
                                    target: &vt.url,
                                    db_map: vt.db_map.as_deref(),
                                    speed,
                                    label: &label,
                                    out: &path,
                                    statsd: statsd.as_deref(),
                                    quiet: false,
                                }
                                .run(&bins, &logs)
                            })
                        },
                    )?;
                    results.push(path);
                }
                drop(cluster);
            }
        }
    }

    let report_txt = out.join("report.txt");
    stages.run("compare the runs", || {
        let mut cmd = Command::new(&bins.replayer);
        cmd.arg("compare")
            .args(&results)
            .arg("--html")
            .arg(out.join("report.html"))
            .arg("--json")
            .arg(out.join("report.json"));
        run_logged("replayer compare", cmd, &report_txt)
    })?;

    let live = if args.live_reshard {
        Some(crate::live::run(
            &crate::live::Live {
                repo: &repo,
                bins: &bins,
                capture: &capture,
                captured: args.duration,
                speed: args.live_reshard_speed,
                vtgate_buffer: args.vtgate_buffer,
                seed: &seed,
                statsd: statsd.as_deref(),
                influx: metrics.as_ref().map(|m| m.influx_url()),
                events: events.as_ref(),
                out: &out,
                logs: &logs,
            },
            &mut stages,
        )?)
    } else {
        None
    };

    println!();
    print!(
        "{}",
        std::fs::read_to_string(&report_txt).unwrap_or_default()
    );
    if let Some(live) = &live {
        println!();
        print!("{}", live.table);
        println!("chart: {}", live.html.display());
    }
    println!();
    println!(
        "done in {:.0}s. Report: {}  (JSON: report.json, logs: logs/)",
        stages.elapsed_secs(),
        out.join("report.html").display()
    );
    if let Some(metrics) = &metrics {
        println!(
            "metrics are in InfluxDB at {} (database {}), stopped now; data kept in {}",
            metrics.influx_url(),
            testkit::MetricsStack::DATABASE,
            metrics.dir().display()
        );
    }
    Ok(())
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

fn run_label(target: Target, speed: f64) -> String {
    format!("{}-{speed}x", target.label())
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
