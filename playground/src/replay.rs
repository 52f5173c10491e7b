//! The `replayer run` command line, built in one place for the demo's replays and the
//! live reshard's.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;

use crate::procs::{Proc, run_logged};
use crate::tools::Binaries;

/// One `replayer run`: its options, its progress name and its log file.
#[derive(Debug, Clone, Copy)]
pub struct ReplayRun<'a> {
    pub capture: &'a Path,
    /// The target's URL (`--target`).
    pub target: &'a str,
    /// `--db-map`: the capture's databases renamed for the target.
    pub db_map: Option<&'a str>,
    pub speed: f64,
    /// The run's name in results, reports, metrics and events (`--label`).
    pub label: &'a str,
    /// The results file (`--out`).
    pub out: &'a Path,
    pub statsd: Option<&'a str>,
    /// No progress output (`--quiet`).
    pub quiet: bool,
}

impl ReplayRun<'_> {
    pub fn command(&self, bins: &Binaries) -> Command {
        let mut cmd = Command::new(&bins.replayer);
        cmd.arg("run")
            .arg(self.capture)
            .arg("--target")
            .arg(self.target)
            .arg("--out")
            .arg(self.out)
            .arg("--speed")
            .arg(self.speed.to_string())
            .arg("--label")
            .arg(self.label);
        if let Some(map) = self.db_map {
            cmd.arg("--db-map").arg(map);
        }
        if self.quiet {
            cmd.arg("--quiet");
        }
        if let Some(statsd) = self.statsd {
            cmd.arg("--statsd").arg(statsd);
        }
        cmd
    }

    /// `logs/replay-<label>.log`.
    pub fn log(&self, logs: &Path) -> PathBuf {
        logs.join(format!("replay-{}.log", self.label))
    }

    /// Runs the replay to completion, its output in [`Self::log`].
    pub fn run(&self, bins: &Binaries, logs: &Path) -> Result<()> {
        run_logged(&self.name(), self.command(bins), &self.log(logs))
    }

    /// Starts the replay in the background, its output in [`Self::log`].
    pub fn spawn(&self, bins: &Binaries, logs: &Path) -> Result<Proc> {
        Proc::spawn(&self.name(), self.command(bins), &self.log(logs))
    }

    fn name(&self) -> String {
        format!("replayer run {}", self.label)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(run: &ReplayRun<'_>) -> Vec<String> {
        let bins = Binaries {
            shop: "shop".into(),
            recorder: "recorder".into(),
            replayer: "replayer".into(),
        };
        let cmd = run.command(&bins);
        assert_eq!(cmd.get_program(), "replayer");
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_command_line_has_every_option_given_and_no_other() {
        let run = ReplayRun {
            capture: Path::new("shop.sqlcap"),
            target: "mysql://root@127.0.0.1:1/shop",
            db_map: None,
            speed: 4.0,
            label: "mariadb-4x",
            out: Path::new("mariadb-4x.results"),
            statsd: None,
            quiet: false,
        };
        assert_eq!(
            args(&run).join(" "),
            "run shop.sqlcap --target mysql://root@127.0.0.1:1/shop --out mariadb-4x.results \
             --speed 4 --label mariadb-4x"
        );
        let all = ReplayRun {
            db_map: Some("shop="),
            speed: 0.25,
            statsd: Some("127.0.0.1:8125"),
            quiet: true,
            ..run
        };
        assert_eq!(
            args(&all)[8..].join(" "),
            "--label mariadb-4x --db-map shop= --quiet --statsd 127.0.0.1:8125"
        );
        assert_eq!(
            all.log(Path::new("logs")),
            Path::new("logs/replay-mariadb-4x.log")
        );
    }
}
