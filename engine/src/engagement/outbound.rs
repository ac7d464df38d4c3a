//! How engagement email leaves — the transport, the public URL its links point to, the
//! limits around sending — and the [`Context`] the jobs of campaigns and sequences run in.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::{Condition, DatabaseConnection};

use crate::clock::Clock;
use crate::error::Result;
use crate::platform::email::Mailer;
use crate::platform::queue::Queue;

/// Turns a saved segment filter into a condition on contacts. The filter language belongs
/// to the API, so the API provides this.
pub trait Audience: Send + Sync {
    /// The condition the filter stands for, over the contacts of `workspace_id` (a filter
    /// that looks at other records, such as the company, sees only that workspace's).
    fn condition(&self, workspace_id: i64, filter: &serde_json::Value) -> Result<Condition>;
}

/// How campaign email leaves, and the limits around it.
#[derive(Clone)]
pub struct Outbound {
    /// The mail transport.
    pub mailer: Mailer,
    /// Base URL of this Rapport as recipients reach it, for unsubscribe and tracking links.
    pub public_url: String,
    /// Evaluates segment filters.
    pub audience: Arc<dyn Audience>,
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
