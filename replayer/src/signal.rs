//! The signals that end a run early.

/// Resolves at the next SIGINT (Ctrl-C) or SIGTERM; an error if neither can be watched.
pub async fn first() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
