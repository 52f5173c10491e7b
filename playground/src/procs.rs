//! Child processes the playground starts: logged to files, tied to our lifetime, and
//! remembered so Ctrl-C and `playground down` can stop what a crash left behind.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// A running child with its output going to a log file.
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `cmd` with stdout and stderr appended to `log`. The kernel kills it if the
    /// playground dies (PR_SET_PDEATHSIG), so a crash leaves no orphan.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Result<Self> {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening {}", log.display()))?;
        let err = out.try_clone().context("duplicating a log handle")?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let program = cmd.get_program().to_string_lossy().into_owned();
        let child = testkit::spawn_tied_to_process(cmd)
            .with_context(|| format!("starting {name} ({program})"))?;
        registry_add(Cleanup::Pid(child.id()));
        Ok(Proc {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
        })
    }

    /// Waits until `addr` accepts TCP connections; fails early if the process exits.
    pub fn wait_listening(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before listening on {addr}; see {}\n{}",
                    self.name,
                    self.log.display(),
                    log_tail(&self.log, 15)
                );
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not listen on {addr} within {timeout:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for the process to exit on its own and checks it succeeded.
    pub fn wait_success(mut self) -> Result<()> {
        let status = self.child.wait()?;
        registry_remove(&Cleanup::Pid(self.child.id()));
        self.check(status)
    }

    /// Asks the process to stop (SIGTERM), waits up to `grace`, then kills it. Returns
    /// its exit status; a process that had to be killed is an error.
    pub fn stop(mut self, grace: Duration) -> Result<ExitStatus> {
        let pid = self.child.id();
        if self.child.try_wait()?.is_none() {
            // `kill` the command: no unsafe libc call needed for one signal.
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let deadline = Instant::now() + grace;
        let status = loop {
            if let Some(status) = self.child.try_wait()? {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                registry_remove(&Cleanup::Pid(pid));
                bail!(
                    "{} did not stop within {grace:?} of SIGTERM and was killed; see {}",
                    self.name,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        registry_remove(&Cleanup::Pid(pid));
        Ok(status)
    }

    /// Kills the process without ceremony (for servers whose state does not matter).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        registry_remove(&Cleanup::Pid(self.child.id()));
    }

    fn check(&self, status: ExitStatus) -> Result<()> {
        if status.success() {
            return Ok(());
        }
        bail!(
            "{} failed ({status}); see {}\n{}",
            self.name,
            self.log.display(),
            log_tail(&self.log, 15)
        )
    }
}

/// Runs a command to completion with output appended to `log`; an error names the log.
pub fn run_logged(name: &str, cmd: Command, log: &Path) -> Result<()> {
    Proc::spawn(name, cmd, log)?.wait_success()
}

/// A port free right now on 127.0.0.1, for a server about to be started.
pub fn free_addr() -> Result<SocketAddr> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// The last `lines` lines of a log, indented, for error messages.
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Things to undo if the playground is interrupted or crashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Cleanup {
    /// A direct child (also tied by PDEATHSIG; listed for `status`).
    Pid(u32),
    /// A Vitess cluster started by vitess/cluster.sh in this directory: its daemons are
    /// not our children, so only `cluster.sh down --dir` stops them.
    Cluster(PathBuf),
}

static REGISTRY: Mutex<Vec<Cleanup>> = Mutex::new(Vec::new());

pub fn registry_add(item: Cleanup) {
    if let Ok(mut items) = REGISTRY.lock() {
        items.push(item);
        save_state(&items);
    }
}

pub fn registry_remove(item: &Cleanup) {
    if let Ok(mut items) = REGISTRY.lock() {
        items.retain(|i| i != item);
        save_state(&items);
    }
}

/// Where the registry is mirrored, so `playground down` in another shell finds it.
pub fn state_file() -> PathBuf {
    std::env::temp_dir()
        .join("sqlreplay-playground")
        .join("state.json")
}

#[derive(Debug, Serialize, Deserialize, Default)]
pub struct State {
    pub owner_pid: u32,
    pub items: Vec<Cleanup>,
}

fn save_state(items: &[Cleanup]) {
    let path = state_file();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let state = State {
        owner_pid: std::process::id(),
        items: items.to_vec(),
    };
    // Best effort: losing the state file only costs `playground down` its memory.
    if let Ok(json) = serde_json::to_vec_pretty(&state) {
        let tmp = path.with_extension("tmp");
        if std::fs::write(&tmp, json).is_ok() {
            let _ = std::fs::rename(tmp, &path);
        }
    }
}

pub fn load_state() -> Option<State> {
    let text = std::fs::read_to_string(state_file()).ok()?;
    serde_json::from_str(&text).ok()
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}
