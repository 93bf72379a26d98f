//! Process liveness (SPEC §3 Liveness): the first failure of any part of the
//! pipeline (the consumer, the alert loop, the state store, the HTTP server),
//! whether an error or a panic. Once a part has failed, `/healthz` answers
//! 503, the root cancellation token is cancelled so every other part drains,
//! and the command returns the failure, so the process exits non-zero and a
//! supervisor restarts it. Nothing lingers half alive.

use std::sync::Mutex;

use tokio::task::{JoinError, JoinHandle};
use tokio_util::sync::CancellationToken;

pub struct Health {
    failure: Mutex<Option<String>>,
    shutdown: CancellationToken,
}

impl Health {
    /// Failures cancel `shutdown`, the process's root token.
    pub fn new(shutdown: CancellationToken) -> Health {
        Health {
            failure: Mutex::new(None),
            shutdown,
        }
    }

    /// Records that `part` stopped working; the first failure is the one
    /// reported. Cancels the root token.
    pub fn fail(&self, part: &str, why: impl std::fmt::Display) {
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            let msg = format!("{part} failed: {why}");
            tracing::error!("{msg}; stopping the process");
            *f = Some(msg);
        }
        drop(f);
        self.shutdown.cancel();
    }

    /// Why the process is failing, if it is.
    pub fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn is_healthy(&self) -> bool {
        self.failure().is_none()
    }

    /// `Err` with the first failure, for the command's exit status.
    pub fn check(&self) -> anyhow::Result<()> {
        match self.failure() {
            None => Ok(()),
            Some(f) => Err(anyhow::anyhow!(f)),
        }
    }

    /// Awaits a task of `part`; an error or a panic marks the process failed.
    /// A task that ends normally while the process is not shutting down is
    /// a failure too: every part runs until shutdown.
    pub async fn watch<T>(&self, part: &str, task: JoinHandle<anyhow::Result<T>>) {
        match task.await {
            Ok(Ok(_)) => {
                if !self.shutdown.is_cancelled() {
                    self.fail(part, "stopped unexpectedly");
                }
            }
            Ok(Err(e)) => self.fail(part, format!("{e:#}")),
            Err(e) => self.fail(part, join_error(&e)),
        }
    }
}

/// A task's panic message, or why it did not finish.
pub fn join_error(e: &JoinError) -> String {
    if e.is_panic() {
        format!("panicked: {e}")
    } else {
        format!("task cancelled: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_fails_the_process_and_cancels_the_root() {
        let token = CancellationToken::new();
        let health = Health::new(token.clone());
        assert!(health.is_healthy());
        let task = tokio::spawn(async {
            if true {
                panic!("boom");
            }
            Ok::<(), anyhow::Error>(())
        });
        health.watch("consumer", task).await;
        assert!(token.is_cancelled());
        let f = health.failure().expect("failed");
        assert!(f.starts_with("consumer failed: panicked"), "{f}");
        assert!(health.check().is_err());
    }

    #[tokio::test]
    async fn the_first_failure_is_kept_and_a_clean_stop_during_shutdown_is_fine() {
        let token = CancellationToken::new();
        let health = Health::new(token.clone());
        token.cancel();
        health
            .watch(
                "alert loop",
                tokio::spawn(async { Ok::<(), anyhow::Error>(()) }),
            )
            .await;
        assert!(health.is_healthy());
        health.fail("state store", "disk full");
        health.fail("consumer", "later");
        assert_eq!(
            health.failure().as_deref(),
            Some("state store failed: disk full")
        );
    }

    #[tokio::test]
    async fn a_part_that_stops_before_shutdown_is_a_failure() {
        let token = CancellationToken::new();
        let health = Health::new(token.clone());
        health
            .watch(
                "alert loop",
                tokio::spawn(async { Ok::<(), anyhow::Error>(()) }),
            )
            .await;
        assert!(token.is_cancelled());
        assert!(!health.is_healthy());
    }
}
