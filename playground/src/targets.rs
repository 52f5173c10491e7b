//! The databases a replay targets, and how each is seeded: shared by `demo`, its live
//! reshard and `up`, so none of them depends on another for it.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::procs::run_logged;
use crate::tools::Binaries;
use crate::vitess::{Cluster, Layout};

/// The database the shop uses on MariaDB (and the one its capture names).
pub const SHOP_DB: &str = "shop";

/// The dataset every target is seeded with, identically, before every replay (the
/// command-line options `demo` and `up` share).
#[derive(Debug, Clone, clap::Args)]
pub struct SeedSpec {
    /// Customers seeded.
    #[arg(long, default_value_t = 2000)]
    pub customers: u64,
    /// Products seeded.
    #[arg(long, default_value_t = 500)]
    pub products: u64,
    /// Seed of the deterministic dataset.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl SeedSpec {
    fn apply(&self, cmd: &mut Command) {
        cmd.arg("--customers")
            .arg(self.customers.to_string())
            .arg("--products")
            .arg(self.products.to_string())
            .arg("--seed")
            .arg(self.seed.to_string());
    }
}

/// Drops and re-creates the shop database, then seeds it: the state the capture began in.
pub fn reseed_mariadb(
    bins: &Binaries,
    db: &testkit::MariaDb,
    seed: &SeedSpec,
    log: &Path,
) -> Result<()> {
    db.sql(&format!(
        "DROP DATABASE IF EXISTS `{SHOP_DB}`; CREATE DATABASE `{SHOP_DB}`"
    ))?;
    let mut cmd = Command::new(&bins.shop);
    cmd.arg("seed").arg("--db").arg(db.url_for(SHOP_DB));
    seed.apply(&mut cmd);
    run_logged("shop seed", cmd, log)
}

/// How the shop's capture maps onto a Vitess cluster.
#[derive(Debug)]
pub struct VitessTarget {
    /// For `shop seed` (a keyspace-qualified database, or none).
    pub url: String,
    /// The capture's `shop` database renamed for vtgate (`--db-map`).
    pub db_map: Option<String>,
}

impl VitessTarget {
    pub fn new(cluster: &Cluster) -> Self {
        match cluster.layout {
            // One keyspace named like the shop's database: Vitess as a pure proxy.
            Layout::Unsharded => VitessTarget {
                url: format!("mysql://root@127.0.0.1:{}/{SHOP_DB}", cluster.vtgate_port),
                db_map: None,
            },
            // Two keyspaces (commerce, customer): no default database, vtgate routes
            // each table by its unique name.
            Layout::Sharded => VitessTarget {
                url: format!("mysql://root@127.0.0.1:{}", cluster.vtgate_port),
                db_map: Some(format!("{SHOP_DB}=")),
            },
        }
    }
}

/// Empties the shop's tables through vtgate and seeds them again.
pub fn reseed_vitess(
    bins: &Binaries,
    vt: &VitessTarget,
    seed: &SeedSpec,
    log: &Path,
) -> Result<()> {
    let mut cmd = Command::new(&bins.shop);
    cmd.arg("seed").arg("--db").arg(&vt.url).arg("--reset");
    seed.apply(&mut cmd);
    run_logged("shop seed (vtgate)", cmd, log)
}
