//! The signals that end a run early.

/// Resolves at the next SIGINT (Ctrl-C) or SIGTERM; an error if they cannot be watched.
pub async fn first() -> std::io::Result<()> {
    cli::shutdown_signal()?.await;
    Ok(())
}
