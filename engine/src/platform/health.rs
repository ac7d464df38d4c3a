//! How a process's background loops are doing: the job workers, the sequence ticker and
//! the model scheduler each report here, and `/readyz` reads it.
//!
//! A loop that fails (a database outage, a worker that stopped on an error) is restarted
//! by its supervisor after a back-off; meanwhile it reports as restarting, with the
//! error, so an operator — or a load balancer — sees that the process is not doing its
//! work even though it still answers requests.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The state of one loop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoopState {
    /// Doing its work.
    Running,
    /// It failed and is waiting to start again.
    Restarting {
        /// Why it stopped, for the operator.
        error: String,
        /// When it stopped.
        since: DateTime<Utc>,
        /// How long until the next start.
        retry_in: Duration,
    },
    /// Shut down on purpose.
    Stopped,
}

/// The loops of this process, by name.
#[derive(Debug, Default)]
pub struct Health {
    loops: Mutex<BTreeMap<&'static str, LoopState>>,
}

/// A loop's back-off between restarts: doubling from one second to a minute, starting
/// over once a run lasted a minute.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Backoff {
    const FIRST: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(60);

    /// The wait before the next start, after a run that lasted `ran`.
    pub fn after(&mut self, ran: Duration) -> Duration {
        if ran >= Self::MAX {
            self.next = Self::FIRST;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        wait
    }
}

impl Health {
    /// Records that `name` is running.
    pub fn running(&self, name: &'static str) {
        self.set(name, LoopState::Running);
    }

    /// Records that `name` failed with `error` and starts again in `retry_in`.
    pub fn failed(&self, name: &'static str, error: impl Into<String>, retry_in: Duration) {
        self.set(
            name,
            LoopState::Restarting {
                error: error.into(),
                since: crate::clock::now(),
                retry_in,
            },
        );
    }

    /// Records that `name` was shut down.
    pub fn stopped(&self, name: &'static str) {
        self.set(name, LoopState::Stopped);
    }

    fn set(&self, name: &'static str, state: LoopState) {
        self.loops.lock().expect("health").insert(name, state);
    }

    /// Every loop reported so far, by name.
    pub fn snapshot(&self) -> BTreeMap<&'static str, LoopState> {
        self.loops.lock().expect("health").clone()
    }

    /// Whether every loop that reported is running.
    pub fn all_running(&self) -> bool {
        self.loops
            .lock()
            .expect("health")
            .values()
            .all(|s| *s == LoopState::Running)
    }
}

/// Runs `pass` every `every` (the first at once) until `shutdown` resolves, reporting to
/// `health` as `name`: a failed pass is logged and reported, and the next runs as usual.
/// A pass says how many rows it handled, logged when there were any.
pub async fn periodic<F, Fut>(
    name: &'static str,
    every: Duration,
    health: std::sync::Arc<Health>,
    shutdown: impl std::future::Future<Output = ()>,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::error::Result<u64>>,
{
    health.running(name);
    tokio::pin!(shutdown);
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut shutdown => {
                health.stopped(name);
                return;
            }
            _ = interval.tick() => match pass().await {
                Ok(n) => {
                    health.running(name);
                    if n > 0 {
                        tracing::info!(rows = n, "{name} ran");
                    }
                }
                Err(e) => {
                    tracing::warn!(error = ?e, "{name} failed");
                    health.failed(name, describe(&e), every);
                }
            },
        }
    }
}

/// An error with its causes, for the operator: a client sees "internal error", the health
/// report says which database error it was.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_and_starts_over_after_a_long_run() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(10);
        let waits: Vec<u64> = (0..8).map(|_| b.after(short).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.after(Duration::from_secs(120)).as_secs(), 1);
    }

    #[test]
    fn a_failed_loop_is_not_ready_until_it_runs_again() {
        let h = Health::default();
        assert!(h.all_running());
        h.running("jobs");
        h.running("ticker");
        assert!(h.all_running());
        h.failed("jobs", "database is locked", Duration::from_secs(2));
        assert!(!h.all_running());
        assert!(matches!(
            h.snapshot()["jobs"],
            LoopState::Restarting { ref error, .. } if error == "database is locked"
        ));
        h.running("jobs");
        assert!(h.all_running());
    }
}
