//! How engagement email leaves — the transport, the public URL its links point to, the
//! limits around sending — and the [`Context`] the jobs of campaigns and sequences run in.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::platform::email::Mailer;
use crate::platform::queue::Queue;

/// How campaign email leaves, and the limits around it.
#[derive(Clone)]
pub struct Outbound {
    /// The mail transport.
    pub mailer: Mailer,
    /// Base URL of this Rapport as recipients reach it, for unsubscribe and tracking links.
    pub public_url: String,
    /// Consecutive failed sends after which a campaign pauses itself.
    pub failure_limit: i32,
    /// How long a claimed message may stay unanswered before it counts as interrupted.
    pub claim_timeout: Duration,
    /// This process's job worker, as the queue's worker table names it; claims carry it.
    pub worker: String,
    /// How long a worker may go without a heartbeat before it counts as dead (and its
    /// claims as interrupted).
    pub dead_after: Duration,
    /// First wait before checking whether the mail server is back, after a campaign paused
    /// itself; doubled on each failed check, up to ten minutes.
    pub probe_delay: Duration,
}

/// Everything the jobs of campaigns and sequences need.
#[derive(Clone)]
pub struct Context {
    /// The database.
    pub db: DatabaseConnection,
    /// The queue, for jobs that enqueue more.
    pub queue: Queue,
    /// How email leaves.
    pub outbound: Outbound,
    /// The time sequences run on.
    pub clock: Arc<dyn Clock>,
}
