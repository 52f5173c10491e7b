//! Where the repository, its scripts and the sibling binaries are.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The repository root: `--repo`, else `$SQLREPLAY_REPO`, else where this binary was
/// built from (scripts and configs are read from the checkout, not installed copies).
pub fn repo_root(flag: Option<&Path>) -> PathBuf {
    if let Some(path) = flag {
        return path.to_path_buf();
    }
    if let Some(path) = std::env::var_os("SQLREPLAY_REPO") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The tools are built together (`cargo build --release`), so they sit beside us.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub shop: PathBuf,
    pub recorder: PathBuf,
    pub replayer: PathBuf,
}

impl Binaries {
    pub fn locate() -> Result<Self> {
        let exe = std::env::current_exe().context("finding the playground binary")?;
        let dir = exe
            .parent()
            .context("the playground binary has no directory")?
            .to_path_buf();
        let find = |name: &str| -> Result<PathBuf> {
            let path = dir.join(name);
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "{} not found beside the playground; build everything with \
                     `cargo build --release` (or run `make demo`)",
                    path.display()
                )
            }
        };
        Ok(Binaries {
            shop: find("shop")?,
            recorder: find("recorder")?,
            replayer: find("replayer")?,
        })
    }
}

/// Runs one of the repository's install scripts (idempotent; instant when done).
pub fn install(repo: &Path, script: &str, log: &Path) -> Result<()> {
    let path = repo.join(script);
    let mut cmd = Command::new(&path);
    cmd.current_dir(repo);
    crate::procs::run_logged(script, cmd, log)
}
