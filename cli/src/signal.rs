//! The signals that ask a process to stop.

use std::future::Future;

/// A future that resolves at the first SIGINT or SIGTERM, with both handlers installed
/// when this returns, not when the future is first polled: a signal that arrives in
/// between (say, after a server binds its port and before it serves) stops the process
/// the clean way instead of killing it with the default action. Call it inside a tokio
/// runtime, before listening.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_sent_before_the_future_is_polled_is_caught() {
        let stop = shutdown_signal().unwrap();
        // Sent to this test process before anything awaits `stop`: without the handler
        // installed already, SIGTERM's default action would end the process here.
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), stop)
            .await
            .expect("the future resolves");
    }
}
