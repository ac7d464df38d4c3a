//! The job queue's workers, the sequence ticker, the webhook dispatcher and the audit log's
//! pruner, with what only the API can give them:
//! the plugin host, whose input queries run through the API's GraphQL schema.

use std::sync::Arc;
use std::time::Duration;

use rapport_engine::clock::{self, Clock};
use rapport_engine::engagement::outbound::{Context, Outbound};
use rapport_engine::engagement::sequences::runner::{self, Ticking};
use rapport_engine::integrations::{imports, webhooks};
use rapport_engine::intelligence::plugins::call_records::{self, Capture};
use rapport_engine::intelligence::plugins::hooks as plugin_hooks;
use rapport_engine::intelligence::plugins::steps as plugin_steps;
use rapport_engine::platform::audit;
use rapport_engine::platform::email::Mailer;
use rapport_engine::platform::health::Health;
use rapport_engine::platform::queue::{Queue, WorkerOptions};
use rapport_engine::worker::{self, Worker};
use sea_orm::DatabaseConnection;

/// How campaign email leaves and how workers behave.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The mail transport.
    pub mailer: Mailer,
    /// Base URL for unsubscribe and tracking links.
    pub public_url: String,
    /// Consecutive failed sends after which a campaign pauses itself.
    pub failure_limit: i32,
    /// How long a claimed message may go unanswered before it counts as interrupted.
    pub claim_timeout: Duration,
    /// First wait before checking whether the mail server is back after a campaign paused
    /// itself (doubling, up to ten minutes).
    pub probe_delay: Duration,
    /// The queue's worker settings.
    pub options: WorkerOptions,
    /// Where compiled plugins are cached on disk (in memory only when `None`).
    pub plugin_cache: Option<std::path::PathBuf>,
    /// A plugin host built by the caller and shared with the API; when `None`, the
    /// workers build their own.
    pub plugins: Option<rapport_engine::intelligence::plugins::Host>,
    /// Which plugin calls are recorded as runs (for a host the workers build), and how
    /// long the records are kept.
    pub plugin_capture: Capture,
    /// The time drip sequences run on.
    pub clock: Arc<dyn Clock>,
    /// How often due sequence steps and triggers are looked for.
    pub ticking: Ticking,
    /// Where the workers and the ticker report whether they run.
    pub health: Arc<Health>,
    /// How webhooks are delivered.
    pub webhooks: webhooks::Settings,
    /// How long the audit log keeps its rows.
    pub audit_retention: chrono::Duration,
}

/// Consecutive failed sends after which a campaign pauses itself, by default.
pub const DEFAULT_FAILURE_LIMIT: i32 = 10;
/// How long a claimed message may go unanswered, by default.
pub const DEFAULT_CLAIM_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// First wait before a self-paused campaign checks the mail server again, by default.
pub const DEFAULT_PROBE_DELAY: Duration = Duration::from_secs(30);

impl WorkerConfig {
    /// Defaults around a mailer and a public URL.
    pub fn new(mailer: Mailer, public_url: impl Into<String>) -> Self {
        WorkerConfig {
            mailer,
            public_url: public_url.into(),
            failure_limit: DEFAULT_FAILURE_LIMIT,
            claim_timeout: DEFAULT_CLAIM_TIMEOUT,
            probe_delay: DEFAULT_PROBE_DELAY,
            options: WorkerOptions::default(),
            plugin_cache: None,
            plugins: None,
            plugin_capture: Capture::default(),
            clock: clock::system(),
            ticking: Ticking::default(),
            health: Arc::default(),
            webhooks: webhooks::Settings::new(),
            audit_retention: chrono::Duration::days(audit::DEFAULT_RETENTION_DAYS as i64),
        }
    }
}

/// Runs workers on `db`'s queue, and the sequence ticker, webhook and plugin hook dispatchers and the
/// audit log's, imports' and plugin runs' pruners beside them, until `shutdown` resolves.
pub async fn run(
    db: DatabaseConnection,
    config: WorkerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> rapport_engine::Result<()> {
    let plugins = match config.plugins.clone() {
        Some(host) => Some(host),
        None => {
            let keys = Arc::new(crate::keys::VerifiedKeys::new(Duration::ZERO));
            let public =
                crate::graphql::PublicUrl(config.public_url.trim_end_matches('/').to_string());
            crate::graphql::plugin_host(&db, keys, public, config.plugin_cache.clone())
                .inspect_err(|e| tracing::error!(error = %e, "workers run without plugins"))
                .ok()
                .map(|mut host| {
                    host.capture = config.plugin_capture.clone();
                    host
                })
        }
    };
    let sender =
        webhooks::delivery::Sender::new(config.webhooks.clone(), Some(config.mailer.clone()))?;
    let context = Context {
        queue: Queue::new(&db)?,
        outbound: Outbound {
            mailer: config.mailer,
            public_url: config.public_url.trim_end_matches('/').to_string(),
            failure_limit: config.failure_limit,
            claim_timeout: config.claim_timeout,
            probe_delay: config.probe_delay,
            worker: config.options.name.clone(),
            // The queue presumes a worker dead after three missed heartbeats.
            dead_after: config.options.heartbeat * 3,
        },
        clock: config.clock,
        plugins: plugins.clone().map(|host| {
            Arc::new(plugin_steps::StepScores::new(db.clone(), host))
                as Arc<dyn rapport_engine::engagement::outbound::PluginScores>
        }),
        db,
    };
    // One signal stops every loop beside the workers once they are done.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let on_stop = || {
        let mut rx = stopping.clone();
        async move {
            let _ = rx.wait_for(|stopped| *stopped).await;
        }
    };
    // Hooked events are taken as often as sequences' triggers are read.
    let hook_every = config.ticking.every;
    let loops = [
        tokio::spawn(runner::run_ticker(
            Arc::new(context.clone()),
            config.ticking,
            config.health.clone(),
            on_stop(),
        )),
        tokio::spawn(webhooks::delivery::run_dispatcher(
            context.db.clone(),
            context.queue.clone(),
            config.webhooks,
            config.health.clone(),
            on_stop(),
        )),
        tokio::spawn(audit::run_pruner(
            context.db.clone(),
            config.audit_retention,
            config.health.clone(),
            on_stop(),
        )),
        tokio::spawn(imports::run_pruner(
            context.db.clone(),
            config.health.clone(),
            on_stop(),
        )),
        tokio::spawn(call_records::run_pruner(
            context.db.clone(),
            config.plugin_capture.retention,
            config.health.clone(),
            on_stop(),
        )),
    ];
    // Hooks are dispatched only where their jobs can be worked.
    let hook_loop = plugins.is_some().then(|| {
        tokio::spawn(plugin_hooks::run_dispatcher(
            context.db.clone(),
            context.queue.clone(),
            hook_every,
            config.health.clone(),
            on_stop(),
        ))
    });
    let worker = Worker {
        engagement: context,
        plugins,
        webhooks: sender,
    };
    let outcome = worker::work(worker, config.options, config.health, shutdown).await;
    let _ = stop.send(true);
    for running in loops.into_iter().chain(hook_loop) {
        let _ = running.await;
    }
    outcome
}
