//! Graceful shutdown: one trigger (SIGTERM, SIGINT, or a test), many listeners.
//!
//! On the signal the listener stops accepting, idle sessions get `421 4.3.0`, sessions receiving
//! a message finish it (and get their `250`), and the delivery worker finishes the request in
//! flight; whatever is left when the deadline passes stays in the spool for the next start.

use tokio::sync::watch;

/// The sending side: trigger once, every [`ShutdownSignal`] sees it.
#[derive(Debug, Clone)]
pub struct Shutdown {
    tx: watch::Sender<bool>,
}

/// The receiving side, cheap to clone into every task.
#[derive(Debug, Clone)]
pub struct ShutdownSignal {
    rx: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A new, untriggered shutdown.
    pub fn new() -> Self {
        Self { tx: watch::Sender::new(false) }
    }

    /// Starts the shutdown.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// A receiver for tasks.
    pub fn signal(&self) -> ShutdownSignal {
        ShutdownSignal { rx: self.tx.subscribe() }
    }
}

impl ShutdownSignal {
    /// Whether shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown has begun (at once if it already has). Cancel-safe.
    pub async fn wait(&mut self) {
        while !*self.rx.borrow_and_update() {
            if self.rx.changed().await.is_err() {
                // The trigger is gone: nobody can start a shutdown any more; never resolve.
                std::future::pending::<()>().await;
            }
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn os_signal() -> std::io::Result<&'static str> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::select! {
            _ = term.recv() => Ok("SIGTERM"),
            _ = int.recv() => Ok("SIGINT"),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await?;
        Ok("Ctrl-C")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn wait_resolves_after_trigger_and_immediately_afterwards() {
        let shutdown = Shutdown::new();
        let mut signal = shutdown.signal();
        assert!(!signal.is_triggered());
        let waiter = tokio::spawn(async move {
            signal.wait().await;
            signal
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiter.is_finished());
        shutdown.trigger();
        let mut signal = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("wait() did not resolve")
            .expect("task panicked");
        assert!(signal.is_triggered());
        tokio::time::timeout(Duration::from_secs(1), signal.wait()).await.expect("second wait() must resolve at once");
    }
}
