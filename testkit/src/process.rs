//! Finding programs, picking ports and starting children that die with the test process.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;

use crate::{Error, Result};

/// Directories searched after `$PATH`: `mariadbd` lives in /usr/sbin, which is not on an
/// unprivileged user's `$PATH` on Debian.
const EXTRA_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin", "/sbin"];

/// Finds `name` on `$PATH` or in the sbin directories.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A port that was free a moment ago. Another process can take it before the server
/// binds it; callers retry with a new port when the server reports the address in use.
pub(crate) fn free_port() -> Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| Error::io("binding 127.0.0.1:0 to find a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| Error::io("reading the probe listener's address", e))?
        .port();
    Ok(port)
}

/// Whether a process with this pid exists (used to recognise directories left behind by
/// test processes that are gone).
pub(crate) fn pid_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

type SpawnRequest = (Command, mpsc::SyncSender<std::io::Result<Child>>);

/// Spawns `cmd` so that the kernel kills it (SIGKILL) when the test process goes away,
/// even if the process is killed or a `static` server is never dropped.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the
/// process; test harnesses run each test on its own short-lived thread. So every child is
/// forked by one spawner thread that lives as long as the process.
pub fn spawn_tied_to_process(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    set_parent_death_signal(&mut cmd);
                    // The requester may have given up; nothing else to do then.
                    let _ = reply.send(cmd.spawn());
                }
            })
            .ok()
            .map(|_| tx)
    });
    let Some(spawner) = spawner else {
        return Err(std::io::Error::other(
            "could not start the testkit spawner thread",
        ));
    };
    // Capacity 1: exactly one answer per request.
    let (reply_tx, reply_rx) = mpsc::sync_channel(1);
    spawner
        .send((cmd, reply_tx))
        .map_err(|_| std::io::Error::other("testkit spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| std::io::Error::other("testkit spawner thread did not answer"))?
}

#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls prctl(2),
    // which is async-signal-safe; it touches no memory shared with the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
