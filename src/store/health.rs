//! Whether the database answers, as a probe sees it. While it does not, requests that need it
//! are answered 503 at once (`http::outage`) instead of each waiting the pool's acquire
//! timeout; the probe keeps asking, and the first answer lets them through again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Store;

/// How often the probe asks while the database answers, and while it does not.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
pub const PROBE_EVERY_WHILE_DOWN: Duration = Duration::from_millis(250);
/// How long the probe waits for an answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
pub struct Health {
    down: AtomicBool,
}

impl Store {
    /// The probe's last verdict: the database did not answer.
    pub fn database_down(&self) -> bool {
        self.health.down.load(Ordering::Relaxed)
    }

    /// Probes the database until the task is aborted, and logs each change. Down takes two
    /// probes in a row without an answer (one slow answer under load is not an outage); up
    /// takes one answer. Only PostgreSQL is probed: an embedded SQLite file has no server to
    /// lose.
    pub async fn watch_health(self) {
        if self.engine() != "postgres" {
            return;
        }
        let mut failed_in_a_row = 0;
        loop {
            let down = self.database_down();
            tokio::time::sleep(if down || failed_in_a_row > 0 {
                PROBE_EVERY_WHILE_DOWN
            } else {
                PROBE_EVERY
            })
            .await;
            let answered = matches!(
                tokio::time::timeout(PROBE_TIMEOUT, self.ping()).await,
                Ok(Ok(()))
            );
            failed_in_a_row = if answered { 0 } else { failed_in_a_row + 1 };
            let now_down = failed_in_a_row >= 2 || (down && !answered);
            self.health.down.store(now_down, Ordering::Relaxed);
            match (down, now_down) {
                (false, true) => tracing::error!(
                    event = "database_down",
                    "the database does not answer: requests that need it get 503 at once until \
                     it does"
                ),
                (true, false) => {
                    tracing::info!(event = "database_up", "the database answers again")
                }
                _ => {}
            }
        }
    }
}
