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
    /// Plugins, for sequences' plugin steps; `None` where plugins do not run (such a step
    /// then takes its `else`).
    pub plugins: Option<Arc<dyn PluginScores>>,
}

/// Asks a plugin for a contact's score now, for a sequence's plugin step. Plugins sit in
/// `intelligence`, above this layer, which implements it; the composition root hands it
/// over.
pub trait PluginScores: Send + Sync {
    /// Runs the workspace's plugin `name` for the contact now (storing the score as any
    /// run does) and gives the score; `None` when there is no such enabled plugin, or it
    /// failed or declined to score this contact.
    fn score_now<'a>(
        &'a self,
        workspace_id: i64,
        name: &'a str,
        contact_id: i64,
    ) -> futures_util::future::BoxFuture<'a, crate::error::Result<Option<f64>>>;
}
