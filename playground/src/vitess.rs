//! A local Vitess cluster started through vitess/cluster.sh.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::procs::{Cleanup, registry_add, registry_remove, run_logged};

/// The two layouts of the story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Unsharded,
    Sharded,
}

impl Layout {
    pub fn as_str(self) -> &'static str {
        match self {
            Layout::Unsharded => "unsharded",
            Layout::Sharded => "sharded",
        }
    }
}

/// A running cluster; dropping it brings the cluster down.
#[derive(Debug)]
pub struct Cluster {
    script: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    pub vtgate_port: u16,
    pub layout: Layout,
}

impl Cluster {
    /// `buffer`: vtgate holds primary traffic through a shard's primary change (a
    /// Reshard's traffic switch) instead of failing it.
    pub fn up(
        repo: &Path,
        layout: Layout,
        dir: &Path,
        vtgate_port: u16,
        buffer: bool,
    ) -> Result<Self> {
        let script = repo.join("vitess/cluster.sh");
        let log = dir.with_extension("log");
        registry_add(Cleanup::Cluster(dir.to_path_buf()));
        let mut cmd = Command::new(&script);
        cmd.args(["up", "--layout", layout.as_str(), "--vtgate-port"])
            .arg(vtgate_port.to_string())
            .arg("--dir")
            .arg(dir);
        if buffer {
            cmd.arg("--vtgate-buffer");
        }
        let cluster = Cluster {
            script,
            dir: dir.to_path_buf(),
            log,
            vtgate_port,
            layout,
        };
        // On failure `cluster` drops here and takes down whatever half-started.
        run_logged(&format!("vitess {}", layout.as_str()), cmd, &cluster.log)?;
        Ok(cluster)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        down(&self.script, &self.dir, &self.log);
        registry_remove(&Cleanup::Cluster(self.dir.clone()));
    }
}

/// Stops a cluster by directory (also used by `playground down` after a crash).
pub fn down(script: &Path, dir: &Path, log: &Path) {
    let mut cmd = Command::new(script);
    cmd.arg("down").arg("--dir").arg(dir);
    if let Err(e) = run_logged("vitess down", cmd, log) {
        eprintln!(
            "warning: stopping the Vitess cluster in {}: {e:#}",
            dir.display()
        );
    }
}
